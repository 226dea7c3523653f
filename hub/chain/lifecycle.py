"""The lifecycle of a link as data (contracts/chain/lifecycle.yaml): which message moves a link from
which state to which, what it records and which body fields it keeps.

The table is validated when it loads: unknown message types, fields or states, and states no
message can reach, are errors naming file and line (`hub contracts check` shows them; the hub does
not start with them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from hub.canonical import BODY_TYPES
from hub.chain import conditions
from hub.yaml_lines import ContractError, line, load

NEW = "new"
LINK_FIELDS = ("branch", "period_start", "period_end", "weekly_hours", "start_date", "end_date", "outcome", "outcome_reason", "destination")
_ENTRY_KEYS = {"message", "if", "from", "to", "record", "set", "keep", "not_past"}
_PER_LINE_KEYS = {"message", "lines", "record", "keep", "keep_line"}


@dataclass(frozen=True)
class State:
    name: str
    label: str
    final: bool = False


@dataclass(frozen=True)
class Transition:
    message: str
    sources: tuple[str, ...]
    to: str | None
    record: str
    condition: dict[str, Any] | None = None
    sets: dict[str, str] = field(default_factory=dict)
    keep: tuple[str, ...] = ()
    not_past: tuple[str, ...] = ()
    line: int = 0

    def applies(self, message_type: str, body: dict[str, Any]) -> bool:
        return self.message == message_type and conditions.holds(self.condition, body)


@dataclass(frozen=True)
class PerLine:
    """A message about several cases (the monthly invoice): each line is recorded on the link of the
    case it names, without moving the link. `keep` fields of the message and `keep_line` fields of
    the line go into each entry (what controlling's cost per participant sums)."""

    message: str
    lines: str
    record: str
    keep: tuple[str, ...] = ()
    keep_line: tuple[str, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class Lifecycle:
    states: dict[str, State]
    transitions: tuple[Transition, ...]
    path: str = ""
    per_line: dict[str, PerLine] = field(default_factory=dict)

    @cached_property
    def message_types(self) -> frozenset[str]:
        return frozenset(t.message for t in self.transitions)

    def candidates(self, message_type: str, body: dict[str, Any]) -> list[Transition]:
        """The entries for this message (type and condition), in the table's order."""
        return [t for t in self.transitions if t.applies(message_type, body)]

    def decide(self, state: str, message_type: str, body: dict[str, Any]) -> Transition | None:
        """The entry that applies to a link in `state`, or None: the message does not fit the state."""
        return next((t for t in self.candidates(message_type, body) if state in t.sources), None)

    def accepts(self, state: str, message_type: str) -> bool:
        """Could a message of this type still arrive for a link in `state` (any condition)?"""
        return any(t.message == message_type and state in t.sources for t in self.transitions)

    def is_final(self, state: str) -> bool:
        found = self.states.get(state)
        return bool(found and found.final)

    def label(self, state: str) -> str:
        found = self.states.get(state)
        return found.label if found else state

    @classmethod
    def load(cls, path: Path) -> Lifecycle:
        data = load(path)
        if not isinstance(data, dict) or not isinstance(data.get("states"), dict) or not isinstance(data.get("transitions"), list):
            raise ContractError(path, line(data), "needs 'states' (a mapping) and 'transitions' (a list)")
        states = {}
        for name, spec in data["states"].items():
            spec = spec or {}
            states[name] = State(name, str(spec.get("label", name)), bool(spec.get("final", False)))
        transitions = [_transition(path, raw, data["transitions"].line_of(i), states) for i, raw in enumerate(data["transitions"])]
        _check_reachable(path, data, states, transitions)
        raw_lines = data.get("per_line") or []
        if not isinstance(raw_lines, list):
            raise ContractError(path, line(data, "per_line"), "'per_line' is a list of entries")
        per_line = {p.message: p for p in (_per_line(path, raw, raw_lines.line_of(i)) for i, raw in enumerate(raw_lines))}
        return cls(states, tuple(transitions), str(path), per_line)


def _transition(path: Path, raw: Any, at: int, states: dict[str, State]) -> Transition:
    if not isinstance(raw, dict):
        raise ContractError(path, at, "a transition is a mapping with 'message' and 'from'")
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise ContractError(path, line(raw, key), f"unknown key {key!r} in a transition (known: {', '.join(sorted(_ENTRY_KEYS))})")
    message = raw.get("message")
    model = BODY_TYPES.get(message)
    if model is None:
        raise ContractError(path, line(raw, "message"), f"unknown message type {message!r}")
    sources = raw.get("from") or []
    for state in sources:
        if state != NEW and state not in states:
            raise ContractError(path, line(raw, "from"), f"unknown state {state!r} in 'from' of {message}")
    to = raw.get("to")
    if to is not None and to not in states:
        raise ContractError(path, line(raw, "to"), f"unknown state {to!r} in 'to' of {message}")
    if to is None and NEW in sources:
        raise ContractError(path, line(raw, "from"), f"{message}: an entry from 'new' opens a link and needs a 'to'")
    problems = conditions.check(raw.get("if"), [model], message)
    sets = dict(raw.get("set") or {})
    for target, source in sets.items():
        if target not in LINK_FIELDS:
            problems.append((line(raw.get("set"), target), f"{message}: 'set' names {target!r}, not a link field ({', '.join(LINK_FIELDS)})"))
        if conditions.field_type(model, source) is None:
            problems.append((line(raw.get("set"), target), f"{message}: unknown field {source!r} in 'set'"))
    for name in [*(raw.get("keep") or []), *(raw.get("not_past") or [])]:
        if conditions.field_type(model, name) is None:
            problems.append((line(raw, "keep"), f"{message}: unknown field {name!r}"))
    if problems:
        raise ContractError(path, *problems[0])
    return Transition(
        message=message, sources=tuple(sources), to=to, record=str(raw.get("record") or (to or "report")),
        condition=raw.get("if"), sets=sets, keep=tuple(raw.get("keep") or ()), not_past=tuple(raw.get("not_past") or ()), line=at,
    )


def _per_line(path: Path, raw: Any, at: int) -> PerLine:
    if not isinstance(raw, dict) or not raw.get("message") or not raw.get("lines"):
        raise ContractError(path, at, "a per_line entry is a mapping with 'message' and 'lines'")
    unknown = set(raw) - _PER_LINE_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise ContractError(path, line(raw, key), f"unknown key {key!r} in a per_line entry (known: {', '.join(sorted(_PER_LINE_KEYS))})")
    message, lines = raw["message"], str(raw["lines"])
    model = BODY_TYPES.get(message)
    if model is None:
        raise ContractError(path, line(raw, "message"), f"unknown message type {message!r}")
    if conditions.field_type(model, lines) is None:
        raise ContractError(path, line(raw, "lines"), f"{message}: unknown field {lines!r} in 'lines'")
    for key, prefix in (("keep", ""), ("keep_line", lines + ".")):
        for name in raw.get(key) or []:
            if conditions.field_type(model, prefix + name) is None:
                raise ContractError(path, line(raw, key), f"{message}: unknown field {prefix + name!r} in {key!r}")
    return PerLine(message, lines, str(raw.get("record") or "report"), tuple(raw.get("keep") or ()), tuple(raw.get("keep_line") or ()), at)


def _check_reachable(path: Path, data: Any, states: dict[str, State], transitions: list[Transition]) -> None:
    """Every state can be reached from `new`; a final state has no way out but reports."""
    reached, frontier = {NEW}, [NEW]
    while frontier:
        state = frontier.pop()
        for t in transitions:
            if state in t.sources and t.to and t.to not in reached:
                reached.add(t.to)
                frontier.append(t.to)
    for name, state in states.items():
        if name not in reached:
            raise ContractError(path, data["states"].line_of(name), f"state {name!r} cannot be reached from 'new' by any transition")
    for t in transitions:
        if t.to and t.to != NEW and any(states[s].final for s in t.sources if s in states):
            raise ContractError(path, t.line, f"{t.message}: a transition leaves the final state(s) {[s for s in t.sources if s in states and states[s].final]}")
