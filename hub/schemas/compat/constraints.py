"""Constraint comparisons that JSON Schema and XSD have in common: bounds, patterns, value lists, counts.

Why a module of its own: a ``minimum`` and an ``xs:minInclusive``, a ``maxItems`` and a ``maxOccurs``,
an ``enum`` and an ``xs:enumeration`` narrow or widen the accepted documents in the same way; judging
them once here keeps the two differs from drifting apart in their verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hub.schemas.compat.changes import (
    ENUM_VALUE_ADDED,
    ENUM_VALUE_REMOVED,
    OCCURS_LOOSENED,
    OCCURS_TIGHTENED,
    Change,
    Direction,
    type_change,
)

Bound = tuple[Any, bool]  # (value, exclusive)


def cmp_lower(old: Bound | None, new: Bound | None) -> Direction | None:
    if old == new:
        return None
    if old is None:
        return "narrowed"
    if new is None:
        return "widened"
    try:
        if new[0] == old[0]:
            return "narrowed" if new[1] and not old[1] else "widened"
        return "narrowed" if new[0] > old[0] else "widened"
    except TypeError:
        return "changed"


def cmp_upper(old: Bound | None, new: Bound | None) -> Direction | None:
    if old == new:
        return None
    if old is None:
        return "narrowed"
    if new is None:
        return "widened"
    try:
        if new[0] == old[0]:
            return "narrowed" if new[1] and not old[1] else "widened"
        return "narrowed" if new[0] < old[0] else "widened"
    except TypeError:
        return "changed"


def cmp_patterns(old: Sequence[str], new: Sequence[str]) -> Direction | None:
    """Patterns are ANDed; we can only decide added/removed ones, a replaced regex is 'changed'."""
    o, n = set(old), set(new)
    if o == n:
        return None
    if o < n:
        return "narrowed"
    if n < o:
        return "widened"
    return "changed"


def enum_changes(path: str, old: Sequence[Any] | None, new: Sequence[Any] | None) -> list[Change]:
    if old is None and new is None:
        return []
    if old is None:
        return [type_change(path, f"restricted to the values {list(new or [])!r}", "narrowed")]
    if new is None:
        return [type_change(path, f"value list {list(old)!r} lifted", "widened")]
    out: list[Change] = []
    old_keys = {_key(v) for v in old}
    new_keys = {_key(v) for v in new}
    for v in new:
        if _key(v) not in old_keys:
            out.append(Change(ENUM_VALUE_ADDED, path, f"value {v!r} added", False, True))
    for v in old:
        if _key(v) not in new_keys:
            out.append(Change(ENUM_VALUE_REMOVED, path, f"value {v!r} removed", True, False))
    return out


def _key(value: Any) -> str:
    """Enumeration identity: 1 and 1.0 are the same JSON number, True and 1 are not."""
    return f"{type(value).__name__ if isinstance(value, (bool, str)) else 'num'}:{value!r}"


def occurs_changes(
    path: str, old: tuple[int, int | None], new: tuple[int, int | None], what: str = "occurrence"
) -> list[Change]:
    """Changes to (min, max) counts; max None = unbounded. Both ends may move at once."""
    out: list[Change] = []
    (omin, omax), (nmin, nmax) = old, new
    if nmin > omin:
        out.append(Change(OCCURS_TIGHTENED, path, f"minimum {what} {omin} -> {nmin}", True, False))
    elif nmin < omin:
        out.append(Change(OCCURS_LOOSENED, path, f"minimum {what} {omin} -> {nmin}", False, True))
    if omax != nmax:
        fmt = lambda m: "unbounded" if m is None else str(m)  # noqa: E731
        tighter = nmax is not None and (omax is None or nmax < omax)
        out.append(
            Change(
                OCCURS_TIGHTENED if tighter else OCCURS_LOOSENED,
                path,
                f"maximum {what} {fmt(omax)} -> {fmt(nmax)}",
                tighter,
                not tighter,
            )
        )
    return out
