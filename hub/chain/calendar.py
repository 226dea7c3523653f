"""German working days per federal state, and the due dates the service levels describe.

Working days are Monday to Friday except the public holidays of the state (the `holidays` package,
which knows the state-specific ones: Epiphany in BY/BW/ST, Reformation Day in the north and east,
Buß- und Bettag in SN, ...). The state is the responsible partner's (`state:` in its profile);
without one, only the nationwide holidays count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays

#: the day a deadline is judged by is the day in Germany, not in UTC
BERLIN = ZoneInfo("Europe/Berlin")
STATES = frozenset(holidays.country_holidays("DE").subdivisions)


def today(now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.timezone.utc)).astimezone(BERLIN).date()


@lru_cache(maxsize=64)
def _holidays(state: str | None, year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays("DE", subdiv=state or None, years=year))


def is_working_day(day: dt.date, state: str | None = None) -> bool:
    return day.weekday() < 5 and day not in _holidays(state, day.year)


def add_working_days(start: dt.date, days: int, state: str | None = None) -> dt.date:
    """The `days`-th working day after `start` (`start` itself does not count)."""
    day = start
    while days > 0:
        day += dt.timedelta(days=1)
        if is_working_day(day, state):
            days -= 1
    return day


def nth_working_day(year: int, month: int, n: int, state: str | None = None) -> dt.date:
    """The n-th working day of a month (n = 5: "by the 5th working day")."""
    day = dt.date(year, month, 1)
    count = 1 if is_working_day(day, state) else 0
    while count < n:
        day += dt.timedelta(days=1)
        if is_working_day(day, state):
            count += 1
    return day


def month_of(value: Any) -> str:
    """'YYYY-MM' of a date or of a month string."""
    return value.strftime("%Y-%m") if isinstance(value, dt.date) else str(value)[:7]


def next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12}-{mon % 12 + 1:02d}"


def due_date(spec: Mapping[str, Any], anchor: dt.date, state: str | None, month: str | None = None) -> dt.date:
    """The due date of a service level: `working_days` after `anchor`, or the n-th working day of the
    month after `month` (monthly attendance: the month reported on)."""
    if "working_day_of_next_month" in spec:
        following = next_month(month or month_of(anchor))
        return nth_working_day(int(following[:4]), int(following[5:7]), int(spec["working_day_of_next_month"]), state)
    return add_working_days(anchor, int(spec["working_days"]), state)
