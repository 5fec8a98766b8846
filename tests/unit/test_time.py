from datetime import UTC, date, datetime

from portal.core.time import competition_day, day_range, next_midnight


def test_day_and_reset_follow_the_competition_timezone():
    # 23:30 UTC is already the next day in Paris (UTC+1 in November).
    now = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)
    assert str(competition_day(now, "UTC")) == "2026-11-26"
    assert str(competition_day(now, "Europe/Paris")) == "2026-11-27"
    assert next_midnight(now, "UTC") == datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
    assert next_midnight(now, "Europe/Paris") == datetime(2026, 11, 27, 23, 0, tzinfo=UTC)


def test_a_day_range_covers_whole_local_days_and_stays_open_after_the_last_date():
    start, end = day_range(date(2026, 11, 26), date(2026, 11, 27), "Europe/Paris")
    assert start == datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    assert end == datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    assert day_range(date.min, date.max, "Pacific/Kiritimati")[1] is None
    assert day_range(None, None, "UTC") == (None, None)
