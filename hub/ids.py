"""Identifiers the hub issues: sortable message/delivery ids and pseudonymous case ids."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _b32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_id() -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, so ids sort by creation time."""
    return _b32(int(time.time() * 1000), 10) + _b32(int.from_bytes(os.urandom(10), "big"), 16)


def id_floor(epoch_seconds: float) -> str:
    """The smallest id issued at or after this instant: a time range is an id range."""
    return _b32(int(epoch_seconds * 1000), 10) + "0" * 16


def id_time(value: str) -> float | None:
    """The instant (epoch seconds) an id was issued, or None for a value that is no ULID."""
    ms = 0
    for c in value[:10].upper():
        i = _CROCKFORD.find(c)
        if i < 0:
            return None
        ms = ms * 32 + i
    return ms / 1000 if len(value) == 26 else None


def new_case_ref() -> str:
    """A pseudonymous case id for one partner: random, so it reveals nothing and links nothing."""
    return "F-" + "".join(secrets.choice(_CROCKFORD) for _ in range(12))


def new_token() -> str:
    return "cch_" + secrets.token_urlsafe(32)


def floor_id(moment: dt.datetime) -> str:
    """The smallest ULID of `moment`: `id >= floor_id(t)` selects what was made from `t` on, as a
    range of the primary key (no index on a timestamp needed)."""
    return _b32(int(moment.timestamp() * 1000), 10) + "0" * 16


def time_of(ulid: str) -> dt.datetime:
    """When a ULID was made (to the millisecond, UTC)."""
    value = 0
    for char in ulid[:10]:
        value = value * 32 + _CROCKFORD.index(char)
    return dt.datetime.fromtimestamp(value / 1000, dt.timezone.utc)
