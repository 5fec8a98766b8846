"""Time helpers: store UTC, count days in the competition's timezone."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime

# The instants a setting may take: a day inside Python's datetime range on each side,
# so every timezone can show them. An instant past either end in UTC (year 1 at
# +05:00, 9999-12-31 at -05:00) is stored by PostgreSQL but cannot be read back, which
# made every request that reads it fail.
EARLIEST_INSTANT = datetime(1, 1, 2, tzinfo=UTC)
LATEST_INSTANT = datetime(9999, 12, 30, tzinfo=UTC)


def within_range(value: datetime) -> datetime:
    """`value` in UTC (as the database gives it back, so an answer never echoes the
    offset it was sent with), or a ValueError saying which instants fit."""
    try:
        inside = EARLIEST_INSTANT <= value.astimezone(UTC) <= LATEST_INSTANT
    except OverflowError:
        inside = False
    if not inside:
        raise ValueError(
            f"must be between {EARLIEST_INSTANT:%Y-%m-%d} and {LATEST_INSTANT:%Y-%m-%d} (UTC)"
        )
    return value.astimezone(UTC)


# A timezone-aware instant the database and every timezone can hold.
Instant = Annotated[AwareDatetime, AfterValidator(within_range)]


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
