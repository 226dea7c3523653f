"""Purpose profiles (contracts/purposes.yaml): the fields a recipient may see, per purpose and type.

Minimisation works on allow-lists: what a purpose does not name is removed before encoding, so a new
field added to a message type reaches nobody until someone decides who may see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Purpose:
    code: str
    legal_basis: str
    description: str
    fields: dict[str, tuple[str, ...]]

    def allowed(self, message_type: str) -> tuple[str, ...] | None:
        for pattern, paths in self.fields.items():
            if fnmatchcase(message_type, pattern):
                return paths
        return None


def _select(data: dict[str, Any], paths: list[list[str]]) -> dict[str, Any]:
    if any(not p for p in paths):
        return data  # an empty remainder means: the whole subtree
    out: dict[str, Any] = {}
    for key in {p[0] for p in paths}:
        if key not in data:
            continue
        rest = [p[1:] for p in paths if p[0] == key]
        value = data[key]
        if any(not r for r in rest):
            out[key] = value
        elif isinstance(value, dict):
            out[key] = _select(value, rest)
        elif isinstance(value, list):
            out[key] = [_select(v, rest) if isinstance(v, dict) else v for v in value]
    return out


@dataclass(frozen=True)
class PurposeProfiles:
    purposes: dict[str, Purpose]

    @classmethod
    def load(cls, path: Path) -> PurposeProfiles:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return cls(
            {
                code: Purpose(
                    code=code,
                    legal_basis=raw.get("legal_basis", ""),
                    description=raw.get("description", ""),
                    fields={t: tuple(paths) for t, paths in (raw.get("fields") or {}).items()},
                )
                for code, raw in data["purposes"].items()
            }
        )

    def legal_basis(self, purpose: str) -> str:
        """The legal basis a transmission for `purpose` rests on, for its audit entry. A purpose that
        names none (or was removed since a delivery was queued for it) says so, rather than failing
        the partner's read of its inbox: the entry then shows the gap to the auditor."""
        profile = self.purposes.get(purpose)
        if profile is None or not profile.legal_basis:
            return f"nicht festgelegt: Zweck {purpose} ohne Rechtsgrundlage in contracts/purposes.yaml"
        return profile.legal_basis

    def minimise(self, purpose: str, message_type: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The body reduced to what `purpose` allows for `message_type`; None if nothing is allowed."""
        profile = self.purposes.get(purpose)
        allowed = profile.allowed(message_type) if profile else None
        if not allowed:
            return None
        if "*" in allowed:
            return dict(body)
        return _select(body, [p.split(".") for p in allowed])
