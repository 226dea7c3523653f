"""Alerts as data (contracts/alerts.yaml), loaded and checked once.

Operators edit this file by hand, and an alert that silently never fires is worse than none: every
alert is checked completely before a worker evaluates it -- its kind, each parameter's name and type,
the severity, the channels it names -- and every problem is an error naming file and line. Secrets
never stand in the file: a webhook names the environment variables its URL and secret are read from.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.yaml_lines import ContractError, line, load

FILE = "alerts.yaml"
SEVERITIES = ("info", "warning", "critical")

#: each kind's parameters: name -> (type, default); a default of None means required
KINDS: dict[str, dict[str, tuple[type, Any]]] = {
    "dead_letters": {"above": (int, 0)},
    "rejection_rate": {"above_percent": (float, None), "min_messages": (int, 20), "window_seconds": (int, 3600)},
    "queue_age": {"above_seconds": (int, None)},
    "sla_breach": {"within_hours": (int, 24)},
    "task_due": {"working_day": (bool, True)},
}
ALERT_KEYS = {"id", "kind", "params", "severity", "channels", "text", "description"}
WEBHOOK_KEYS = {"url_env", "secret_env"}


@dataclass(frozen=True)
class Channel:
    """Where a notification goes: mail recipients, or a signed webhook whose URL and secret are read
    from the named environment variables when it is sent (a rotated secret needs no file change)."""

    name: str
    mail: tuple[str, ...] = ()
    url_env: str | None = None
    secret_env: str | None = None

    @property
    def kind(self) -> str:
        return "mail" if self.mail else "webhook"

    def url(self) -> str | None:
        return os.environ.get(self.url_env or "") or None

    def secret(self) -> str | None:
        return os.environ.get(self.secret_env or "") or None


@dataclass(frozen=True)
class Alert:
    id: str
    kind: str
    params: dict[str, Any]
    severity: str
    channels: tuple[str, ...]
    text: str | None = None
    line: int = 0


@dataclass(frozen=True)
class AlertRules:
    """The alerts and channels of contracts/alerts.yaml; no file: no alerts."""

    alerts: tuple[Alert, ...] = ()
    channels: dict[str, Channel] = field(default_factory=dict)
    #: "<version>-<digest>", as the rules' own
    version: str = "0"

    def alert(self, alert_id: str) -> Alert | None:
        return next((a for a in self.alerts if a.id == alert_id), None)

    @classmethod
    def load(cls, contracts_dir: Path) -> AlertRules:
        path = contracts_dir / FILE
        if not path.exists():
            return cls()
        data = load(path)
        if not isinstance(data, dict) or not isinstance(data.get("alerts"), list):
            raise ContractError(path, line(data), "needs 'version', 'channels' and 'alerts' (a list)")
        if not isinstance(data.get("version"), int):
            raise ContractError(path, line(data, "version"), "'version' must be a whole number, raised with every change")
        unknown = set(data) - {"version", "channels", "alerts"}
        if unknown:
            raise ContractError(path, line(data, sorted(unknown)[0]), f"unknown key {sorted(unknown)[0]!r} (known: version, channels, alerts)")
        channels = _channels(path, data.get("channels") or {}, line(data, "channels"))
        alerts: list[Alert] = []
        for i, raw in enumerate(data["alerts"]):
            alert = _alert(path, raw, data["alerts"].line_of(i), channels)
            if any(a.id == alert.id for a in alerts):
                raise ContractError(path, alert.line, f"alert id {alert.id!r} is used twice")
            alerts.append(alert)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
        return cls(tuple(alerts), channels, f"{data['version']}-{digest}")


def _channels(path: Path, raw: Any, at: int) -> dict[str, Channel]:
    if not isinstance(raw, dict):
        raise ContractError(path, at, "'channels' maps a channel's name to mail: [recipients] or webhook: {url_env, secret_env}")
    found = {}
    for name, spec in raw.items():
        where = line(raw, name)
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ("mail", "webhook"):
            raise ContractError(path, where, f"channel {name!r}: one of mail: [recipients] or webhook: {{url_env, secret_env}}")
        if "mail" in spec:
            recipients = spec["mail"]
            if not isinstance(recipients, list) or not recipients or not all(isinstance(r, str) and "@" in r for r in recipients):
                raise ContractError(path, line(spec, "mail") or where, f"channel {name!r}: 'mail' is a list of e-mail addresses")
            found[name] = Channel(str(name), mail=tuple(recipients))
            continue
        hook = spec["webhook"]
        if not isinstance(hook, dict) or set(hook) != WEBHOOK_KEYS or not all(_env_name(v) for v in hook.values()):
            raise ContractError(path, line(spec, "webhook") or where,
                                f"channel {name!r}: 'webhook' names the environment variables of its URL and secret: {{url_env: NAME, secret_env: NAME}}")
        found[name] = Channel(str(name), url_env=hook["url_env"], secret_env=hook["secret_env"])
    return found


def _env_name(value: Any) -> bool:
    return isinstance(value, str) and value.replace("_", "").isalnum() and value.upper() == value and not value[0].isdigit()


def _alert(path: Path, raw: Any, at: int, channels: dict[str, Channel]) -> Alert:
    if not isinstance(raw, dict) or not raw.get("id"):
        raise ContractError(path, at, "an alert is a mapping with 'id', 'kind', 'severity' and 'channels'")
    aid = str(raw["id"])
    unknown = set(raw) - ALERT_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise ContractError(path, line(raw, key), f"alert {aid!r}: unknown key {key!r} (known: {', '.join(sorted(ALERT_KEYS))})")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ContractError(path, line(raw, "kind"), f"alert {aid!r}: 'kind' is one of {', '.join(KINDS)}")
    params = _params(path, aid, kind, raw.get("params") or {}, line(raw, "params") or line(raw))
    severity = raw.get("severity")
    if severity not in SEVERITIES:
        raise ContractError(path, line(raw, "severity"), f"alert {aid!r}: 'severity' is one of {', '.join(SEVERITIES)}")
    named = raw.get("channels")
    if not isinstance(named, list) or not named:
        raise ContractError(path, line(raw, "channels"), f"alert {aid!r}: 'channels' is a list of the channels it notifies")
    for i, name in enumerate(named):
        if name not in channels:
            raise ContractError(path, line(named, i) or line(raw, "channels"),
                                f"alert {aid!r}: unknown channel {name!r} (channels: {', '.join(channels) or 'none'})")
    text = raw.get("text")
    if text is not None and not isinstance(text, str):
        raise ContractError(path, line(raw, "text"), f"alert {aid!r}: 'text' is a sentence")
    return Alert(aid, kind, params, severity, tuple(named), text, at)


def _fits(value: Any, kind_type: type) -> bool:
    """A parameter's value of its type (YAML's true is no number here, nor 3.5 a whole one), at least 0."""
    if kind_type is bool:
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind_type is float else int):
        return False
    return value >= 0


def _params(path: Path, aid: str, kind: str, raw: Any, at: int) -> dict[str, Any]:
    known = KINDS[kind]
    if not isinstance(raw, dict):
        raise ContractError(path, at, f"alert {aid!r}: 'params' maps names to values ({', '.join(known)})")
    unknown = set(raw) - set(known)
    if unknown:
        key = sorted(unknown)[0]
        raise ContractError(path, line(raw, key) or at, f"alert {aid!r}: kind {kind} has no parameter {key!r} (known: {', '.join(known)})")
    params = {}
    for name, (kind_type, default) in known.items():
        value = raw.get(name, default)
        if value is None:
            raise ContractError(path, at, f"alert {aid!r}: kind {kind} needs the parameter {name!r}")
        if not _fits(value, kind_type):
            what = {bool: "true or false", float: "a number of at least 0", int: "a whole number of at least 0"}[kind_type]
            raise ContractError(path, line(raw, name) or at, f"alert {aid!r}: {name!r} is {what}")
        params[name] = value
    if kind == "rejection_rate" and params["above_percent"] >= 100:
        raise ContractError(path, line(raw, "above_percent") or at, f"alert {aid!r}: 'above_percent' is below 100 (a rate above 100 % never fires)")
    if kind == "rejection_rate" and params["window_seconds"] < 60:
        raise ContractError(path, line(raw, "window_seconds") or at, f"alert {aid!r}: 'window_seconds' is at least 60")
    return params
