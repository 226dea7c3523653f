"""Steering rules as data (contracts/chain/rules.yaml) and the catalogue of measures they propose
(contracts/chain/measures.yaml), loaded and checked once.

A rule is a CMMN-style sentry: *on* an event (a message arriving, a link entering a state, a
deadline passing), *if* a condition on the canonical fields, *then* actions. The actions are a
closed vocabulary (`expect`, `task`, `case_status`, `close_chain`, `notify`), so every rule file
can be checked completely before the hub acts on it: unknown fields, message types, states,
service levels, measures or deadline kinds are errors naming file and line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hub.canonical import BODY_TYPES
from hub.chain import conditions
from hub.chain.lifecycle import Lifecycle
from hub.yaml_lines import ContractError, line, load

EVENTS = ("message", "enters", "deadline")
ACTIONS = ("expect", "task", "case_status", "close_chain", "notify")
DUE_KEYS = {"sla", "after", "working_days", "working_day_of_next_month", "field", "otherwise"}
RESPONSIBLE = ("provider", "owner")
TASK_KEYS = {"kind", "title", "due", "decisions", "propose", "closed_by", "deadline", "repeat"}


@dataclass(frozen=True)
class Action:
    kind: str
    spec: dict[str, Any]
    line: int = 0


@dataclass(frozen=True)
class Rule:
    id: str
    event: str
    names: tuple[str, ...]
    condition: dict[str, Any] | None
    actions: tuple[Action, ...]
    line: int = 0

    def fires_on(self, event: str, name: str) -> bool:
        return self.event == event and name in self.names


@dataclass(frozen=True)
class Measure:
    id: str
    title: str
    branch: str | None = None
    provider: str | None = None


@dataclass(frozen=True)
class Steering:
    """Lifecycle, rules, service levels and measures: the case chain's contracts, checked together."""

    lifecycle: Lifecycle
    rules: tuple[Rule, ...]
    slas: dict[str, dict[str, Any]]
    measures: dict[str, Measure]
    #: "<version>-<digest>": what a task remembers of the rules that made it
    version: str
    deadline_kinds: frozenset[str] = field(default_factory=frozenset)

    def firing(self, event: str, name: str) -> list[Rule]:
        return [r for r in self.rules if r.fires_on(event, name)]

    @classmethod
    def load(cls, contracts_dir: Path) -> Steering:
        folder = contracts_dir / "chain"
        lifecycle = Lifecycle.load(folder / "lifecycle.yaml")
        measures = _measures(folder / "measures.yaml")
        path = folder / "rules.yaml"
        data = load(path)
        if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
            raise ContractError(path, line(data), "needs 'version' and 'rules' (a list)")
        if not isinstance(data.get("version"), int):
            raise ContractError(path, line(data, "version"), "'version' must be a whole number, raised with every change")
        slas = dict(data.get("slas") or {})
        for name, spec in slas.items():
            _check_due(path, spec, slas, line(data.get("slas"), name), f"sla {name!r}", allow_sla=False)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
        rules = tuple(_rule(path, raw, data["rules"].line_of(i), lifecycle, slas, measures) for i, raw in enumerate(data["rules"]))
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                raise ContractError(path, rule.line, f"rule id {rule.id!r} is used twice")
            seen.add(rule.id)
        kinds = frozenset(
            a.spec.get("kind") if a.kind == "expect" else a.spec.get("deadline")
            for r in rules for a in r.actions if a.kind == "expect" or (a.kind == "task" and a.spec.get("deadline"))
        )
        for rule in rules:
            if rule.event == "deadline":
                for name in rule.names:
                    if name not in kinds:
                        raise ContractError(path, rule.line, f"rule {rule.id!r}: no rule expects a deadline of kind {name!r}")
        return cls(lifecycle, rules, slas, measures, f"{data['version']}-{digest}", kinds)


def _measures(path: Path) -> dict[str, Measure]:
    data = load(path)
    if not isinstance(data, dict) or not isinstance(data.get("measures"), list):
        raise ContractError(path, line(data), "needs 'measures' (a list)")
    found: dict[str, Measure] = {}
    for i, raw in enumerate(data["measures"]):
        if not isinstance(raw, dict) or not raw.get("id") or not raw.get("title"):
            raise ContractError(path, data["measures"].line_of(i), "a measure needs 'id' and 'title'")
        if raw["id"] in found:
            raise ContractError(path, line(raw, "id"), f"measure id {raw['id']!r} is used twice")
        found[raw["id"]] = Measure(str(raw["id"]), str(raw["title"]), raw.get("branch"), raw.get("provider"))
    return found


def _models_of(event: str, names: tuple[str, ...], lifecycle: Lifecycle) -> list[type[BaseModel]]:
    """The bodies a rule's condition and `field`s may name: of the message types it fires on, or that
    lead a link into the states it fires on. (A deadline rule has no message: no fields.)"""
    if event == "message":
        return [BODY_TYPES[n] for n in names]
    if event == "enters":
        return [BODY_TYPES[t.message] for t in lifecycle.transitions if t.to in names]
    return []


def _rule(path: Path, raw: Any, at: int, lifecycle: Lifecycle, slas: dict, measures: dict[str, Measure]) -> Rule:
    if not isinstance(raw, dict) or not raw.get("id"):
        raise ContractError(path, at, "a rule is a mapping with 'id', 'on' and 'then'")
    rid = str(raw["id"])
    unknown = set(raw) - {"id", "on", "if", "then", "description"}
    if unknown:
        key = sorted(unknown)[0]
        raise ContractError(path, line(raw, key), f"rule {rid!r}: unknown key {key!r} (known: id, on, if, then, description)")
    on = raw.get("on")
    if not isinstance(on, dict) or len(on) != 1 or next(iter(on)) not in EVENTS:
        raise ContractError(path, line(raw, "on"), f"rule {rid!r}: 'on' names one event: {', '.join(EVENTS)}")
    (event, names), = on.items()
    names = tuple(names) if isinstance(names, list) else (names,)
    for name in names:
        if event == "message" and name not in BODY_TYPES:
            raise ContractError(path, line(raw, "on"), f"rule {rid!r}: unknown message type {name!r}")
        if event == "enters" and name not in lifecycle.states:
            raise ContractError(path, line(raw, "on"), f"rule {rid!r}: unknown state {name!r} (lifecycle.yaml)")
    models = _models_of(event, names, lifecycle)
    problems = conditions.check(raw.get("if"), models, f"rule {rid!r}")
    if event == "deadline" and raw.get("if"):
        problems.append((line(raw, "if"), f"rule {rid!r}: a deadline rule has no message to test"))
    if problems:
        raise ContractError(path, *problems[0])
    then = raw.get("then")
    if not isinstance(then, list) or not then:
        raise ContractError(path, line(raw, "then"), f"rule {rid!r}: 'then' is a list of actions")
    actions = []
    for i, item in enumerate(then):
        where = then.line_of(i)
        if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in ACTIONS:
            raise ContractError(path, where, f"rule {rid!r}: an action is one of {', '.join(ACTIONS)}")
        (kind, spec), = item.items()
        action = Action(kind, spec if isinstance(spec, dict) else {"value": spec}, line(spec) or where)
        _check_action(path, rid, action, models, slas, measures)
        actions.append(action)
    return Rule(rid, event, names, raw.get("if"), tuple(actions), at)


def _check_action(path: Path, rid: str, action: Action, models: list, slas: dict, measures: dict[str, Measure]) -> None:
    spec, at, where = action.spec, action.line, f"rule {rid!r}, {action.kind}"

    def need(*keys: str) -> None:
        for key in keys:
            if not spec.get(key):
                raise ContractError(path, at, f"{where}: needs {key!r}")

    def known_field(name: str, key: str) -> None:
        if models and all(conditions.field_type(m, name) is None for m in models):
            raise ContractError(path, line(spec, key) or at, f"{where}: unknown field {name!r}")

    if action.kind == "expect":
        need("kind", "message", "from", "due")
        if spec["message"] not in BODY_TYPES:
            raise ContractError(path, line(spec, "message"), f"{where}: unknown message type {spec['message']!r}")
        if spec["from"] not in RESPONSIBLE:
            raise ContractError(path, line(spec, "from"), f"{where}: 'from' is one of {', '.join(RESPONSIBLE)}")
        month = spec.get("month")
        if month is not None:
            known_field(month["next"] if isinstance(month, dict) else month, "month")
        _check_due(path, spec["due"], slas, line(spec, "due"), where, models=models)
    elif action.kind == "task":
        need("kind", "title", "due", "decisions")
        unknown = set(spec) - TASK_KEYS
        if unknown:
            raise ContractError(path, line(spec, sorted(unknown)[0]) or at, f"{where}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(TASK_KEYS))})")
        if "repeat" in spec and not isinstance(spec["repeat"], bool):
            raise ContractError(path, line(spec, "repeat") or at, f"{where}: 'repeat' is true or false")
        _check_due(path, spec["due"], slas, line(spec, "due"), where, models=models)
        propose = spec.get("propose")
        for measure in ([propose] if isinstance(propose, str) else propose or []):
            if measure not in measures:
                raise ContractError(path, line(spec, "propose"), f"{where}: unknown measure {measure!r} (measures.yaml)")
        if not isinstance(spec["decisions"], dict):
            raise ContractError(path, line(spec, "decisions"), f"{where}: 'decisions' maps each decision to what it does")
        for name, does in spec["decisions"].items():
            does = does or {}
            send = does.get("send")
            if send is not None and send not in BODY_TYPES:
                raise ContractError(path, line(spec["decisions"], name), f"{where}: decision {name!r} sends an unknown message type {send!r}")
            if set(does) - {"send", "change_kind", "close"}:
                raise ContractError(path, line(spec["decisions"], name), f"{where}: decision {name!r} takes send, change_kind, close")
        closed = spec.get("closed_by")
        if isinstance(closed, dict):
            if closed.get("message") not in BODY_TYPES:
                raise ContractError(path, line(spec, "closed_by"), f"{where}: 'closed_by' names an unknown message type {closed.get('message')!r}")
            problems = conditions.check(closed.get("if"), [BODY_TYPES[closed["message"]]], where)
            if problems:
                raise ContractError(path, *problems[0])
        elif closed not in (None, "expected"):
            raise ContractError(path, line(spec, "closed_by"), f"{where}: 'closed_by' is a message with a condition, or 'expected'")
    elif action.kind == "notify":
        need("text")
    elif action.kind == "case_status":
        need("value")


def _check_due(path: Path, due: Any, slas: dict, at: int, where: str, allow_sla: bool = True, models: list | None = None) -> None:
    """A due date is a service level, a number of working days after a date, the N-th working day of
    the next month, or a date field of the message (with a fallback)."""
    if not isinstance(due, dict) or not due or set(due) - DUE_KEYS:
        raise ContractError(path, line(due) or at, f"{where}: 'due' takes {', '.join(sorted(DUE_KEYS))}")
    if "sla" in due:
        if not allow_sla or due["sla"] not in slas:
            raise ContractError(path, line(due, "sla") or at, f"{where}: unknown service level {due['sla']!r} (slas:)")
    elif "field" in due:
        if due.get("otherwise") is not None:
            _check_due(path, due["otherwise"], slas, line(due, "otherwise") or at, where, models=models)
    elif not any(k in due for k in ("working_days", "working_day_of_next_month")):
        raise ContractError(path, line(due) or at, f"{where}: 'due' needs sla, working_days, working_day_of_next_month or field")
    for key in ("after", "field"):
        name = due.get(key)
        if name and models and all(conditions.field_type(m, name) is None for m in models):
            raise ContractError(path, line(due, key) or at, f"{where}: unknown field {name!r} in 'due'")



def profile_problems(steering: Steering, partners: dict[str, Any], contracts_dir: Path) -> list[str]:
    """What the partner profiles say about deadlines, checked: a known federal state, service levels
    the rules define, each in the rules' vocabulary."""
    from hub.chain.calendar import STATES

    problems = []
    for partner in partners.values():
        profile = getattr(partner, "profile", None) or {}
        path = contracts_dir / "partners" / f"{partner.id}.yaml"
        state = profile.get("state")
        if state is not None and state not in STATES:
            problems.append(f"{path}: state {state!r} is not a German federal state ({', '.join(sorted(STATES))})")
        for name, spec in (profile.get("slas") or {}).items():
            if name not in steering.slas:
                problems.append(f"{path}: slas names {name!r}, which contracts/chain/rules.yaml does not define ({', '.join(steering.slas)})")
                continue
            try:
                _check_due(path, spec, steering.slas, 0, f"sla {name!r}", allow_sla=False)
            except ContractError as exc:
                problems.append(str(exc))
    return problems
