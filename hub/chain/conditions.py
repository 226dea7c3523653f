"""Conditions on canonical fields: the `if:` of lifecycle entries and steering rules.

A condition is a mapping of field paths to tests, all of which must hold:

    {exit_kind: abbruch}                                   equal
    {change_kind: {in: [stornierung, entscheidung_beendigung]}}
    {destination: {not_in: [unbekannt]}}
    {exit_date: {present: true}}
    {assessment.rating: {in: ["5"]}}                       a list matches if any of its items does
    {recent: {of: absences, where: {reason: unentschuldigt}, within_days: 30, at_least: 2}}

Paths are the snake_case names of the canonical model (hub/canonical.py), dotted into nested
models. `recent` counts items of a list field over the link's record (this message included):
items dated within `within_days` of the newest one; it is what "a second unexcused absence within
30 days" needs, and nothing more general.

`check` validates a condition against the model when the contracts load, so a misspelt field is an
error naming file and line, not a rule that silently never fires.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from hub.yaml_lines import line

OPERATORS = ("in", "not_in", "present")
RECENT_KEYS = {"of", "where", "within_days", "at_least"}


def _values(data: Any, path: list[str]) -> list[Any]:
    """Every value at `path` in `data` (lists fan out); empty if the path is absent."""
    if not path:
        return [data] if data is not None else []
    if isinstance(data, list):
        return [v for item in data for v in _values(item, path)]
    if isinstance(data, Mapping):
        return _values(data.get(path[0]), path[1:])
    return []


def _plain(value: Any) -> Any:
    """Values compare as the YAML writes them: dates as ISO text, everything else as is."""
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value


def _test(found: list[Any], expected: Any) -> bool:
    found = [_plain(v) for v in found]
    if isinstance(expected, Mapping):
        (op, arg), = expected.items()
        if op == "present":
            return bool(found) == bool(arg)
        if op == "in":
            return any(v in arg for v in found)
        if op == "not_in":
            return bool(found) and all(v not in arg for v in found)
    return any(v == expected for v in found)


def holds(condition: Mapping[str, Any] | None, body: Mapping[str, Any], record: Iterable[Mapping[str, Any]] = ()) -> bool:
    """Does `condition` hold for the message `body` and the link's `record` (kept fields of earlier entries)?"""
    for path, expected in (condition or {}).items():
        if path == "recent":
            if not _recent(expected, body, record):
                return False
        elif not _test(_values(body, path.split(".")), expected):
            return False
    return True


def brings_recent(condition: Mapping[str, Any] | None, body: Mapping[str, Any]) -> bool:
    """Does the message itself bring an item a `recent` count looks for? Only then can the count
    newly reach its threshold, and only then is the link's record worth reading."""
    spec = (condition or {}).get("recent")
    return spec is None or any(holds(spec.get("where"), item) for item in (body.get(spec["of"]) or ()))


def _recent(spec: Mapping[str, Any], body: Mapping[str, Any], record: Iterable[Mapping[str, Any]]) -> bool:
    items = [item for kept in [body, *record] for item in (kept.get(spec["of"]) or ())]
    items = [item for item in items if holds(spec.get("where"), item)]
    dates = sorted({dt.date.fromisoformat(str(_plain(item["date"]))[:10]) for item in items if item.get("date")})
    if not dates:
        return False
    newest = dates[-1]
    window = [d for d in dates if (newest - d).days <= int(spec.get("within_days", 30))]
    return len(window) >= int(spec.get("at_least", 1))


# -- validation --------------------------------------------------------------------------------------
def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    if origin is list:
        return _unwrap(typing.get_args(annotation)[0])
    return annotation


def field_type(model: type[BaseModel], path: str) -> Any | None:
    """The (unwrapped) type at the dotted `path` of `model`, or None if the model has no such field."""
    current: Any = model
    for part in path.split("."):
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        current = _unwrap(current.model_fields[part].annotation)
    return current


def check(condition: Any, models: list[type[BaseModel]], where: str) -> list[tuple[int, str]]:
    """Problems of `condition` as (line, text): a field no model of `models` has, an unknown operator.
    With several models (a rule on several message types) a field must exist in one of them."""
    if condition is None:
        return []
    if not isinstance(condition, Mapping):
        return [(line(condition), f"{where}: 'if' must be a mapping of field to test")]
    problems: list[tuple[int, str]] = []
    for path, expected in condition.items():
        at = line(condition, path)
        if path == "recent":
            if not isinstance(expected, Mapping) or not {"of"} <= set(expected) <= RECENT_KEYS:
                problems.append((at, f"{where}: 'recent' needs 'of' and takes only {sorted(RECENT_KEYS)}"))
                continue
            item = next((field_type(m, expected["of"]) for m in models if field_type(m, expected["of"]) is not None), None)
            if item is None:
                problems.append((at, f"{where}: unknown field {expected['of']!r} in 'recent'"))
            elif expected.get("where"):
                problems += check(expected["where"], [item], f"{where} (recent.where)")
            continue
        if models and all(field_type(m, path) is None for m in models):
            names = ", ".join(m.__name__ for m in models)
            problems.append((at, f"{where}: unknown field {path!r} (not in {names})"))
        if isinstance(expected, Mapping) and (len(expected) != 1 or next(iter(expected)) not in OPERATORS):
            problems.append((at, f"{where}: a test on {path!r} takes one of {', '.join(OPERATORS)}"))
    return problems
