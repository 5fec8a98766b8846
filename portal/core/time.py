"""Time helpers: store UTC, count days in the competition's timezone."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def parse_day(text: str) -> date:
    """A calendar day written YYYY-MM-DD, or a ValueError saying what to write."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"'{text}' is not a date; use YYYY-MM-DD, a day from {date.min} to {date.max}."
        ) from None


def utcnow() -> datetime:
    return datetime.now(UTC)


def competition_day(now: datetime, timezone: str) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


def next_midnight(now: datetime, timezone: str) -> datetime:
    """The next reset instant (local midnight in `timezone`), as an aware UTC datetime."""
    zone = ZoneInfo(timezone)
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time.min, tzinfo=zone).astimezone(UTC)


def day_range(
    first: date | None, last: date | None, timezone: str
) -> tuple[datetime | None, datetime | None]:
    """The instants [start, end) covering whole days `first` to `last` (inclusive) in
    `timezone`; None leaves that side open.

    The end is the midnight after `last`. The last date Python can hold, 9999-12-31,
    has none (computing it overflowed); nothing can be later, so that side stays open.
    """
    zone = ZoneInfo(timezone)
    start = datetime.combine(first, time.min, tzinfo=zone) if first else None
    end = None
    if last and last < date.max:
        end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone)
    return start, end
