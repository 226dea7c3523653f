"""Partner profiles (contracts/partners/*.yaml) and their bearer tokens (database, hashed).

Profiles are configuration as code: reviewed and versioned with the contracts. Tokens are secrets:
only their SHA-256 is stored (tokens are 256-bit random, so a plain hash is the right tool; a slow
password hash would only slow every request).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Connection

from hub.store.db import utcnow
from hub.ids import new_token
from hub.store.tables import partner_tokens

ROLES = ("jobcenter", "municipal", "provider", "operator")


@dataclass(frozen=True)
class Partner:
    id: str
    name: str
    role: str
    format: str
    version: str
    delivery: str = "inbox"
    purposes: tuple[str, ...] = ()
    sends: tuple[str, ...] = ()
    receives: tuple[str, ...] = ()
    #: per message type overrides of `version` (a partner may move to a new version type by type)
    versions: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    profile: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def version_for(self, message_type: str, available: list[str]) -> str:
        """The contract version this partner receives `message_type` in.

        An explicit per-type version wins; else the partner's version if the type has it; else the
        newest version of the same major that is not newer than the partner's; else the oldest.
        """
        if message_type in self.versions:
            return self.versions[message_type]
        if self.version in available:
            return self.version

        def key(v: str) -> tuple[int, ...]:
            return tuple(int(p) for p in v.split("."))

        mine = key(self.version)
        same_major = [v for v in available if key(v)[0] == mine[0] and key(v) <= mine]
        return max(same_major, key=key) if same_major else min(available, key=key)


def _partner(data: dict[str, Any]) -> Partner:
    return Partner(
        id=data["id"],
        name=data.get("name", data["id"]),
        role=data["role"],
        format=data.get("format", "none"),
        version=str(data.get("version", "1.0")),
        delivery=data.get("delivery", "inbox"),
        purposes=tuple(data.get("purposes", ())),
        sends=tuple(data.get("sends", ())),
        receives=tuple(data.get("receives", ())),
        versions={str(k): str(v) for k, v in (data.get("versions") or {}).items()},
        profile=data,
    )


@lru_cache(maxsize=None)
def load_partners(contracts_dir: Path) -> dict[str, Partner]:
    partners = {}
    for path in sorted((contracts_dir / "partners").glob("*.yaml")):
        partner = _partner(yaml.safe_load(path.read_text(encoding="utf-8")))
        if partner.role not in ROLES:
            raise ValueError(f"{path}: unknown role {partner.role!r} (one of {', '.join(ROLES)})")
        partners[partner.id] = partner
    return partners


def write_profile(contracts_dir: Path, data: dict[str, Any]) -> Path:
    path = contracts_dir / "partners" / f"{data['id']}.yaml"
    if path.exists():
        raise FileExistsError(f"partner {data['id']!r} already exists ({path})")
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    load_partners.cache_clear()
    return path


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(conn: Connection, partner_id: str) -> str:
    """A new bearer token for a partner; earlier tokens stay valid until revoked (rotation)."""
    token = new_token()
    conn.execute(partner_tokens.insert().values(token_hash=token_hash(token), partner_id=partner_id, created_at=utcnow()))
    return token


def revoke_tokens(conn: Connection, partner_id: str) -> int:
    result = conn.execute(
        partner_tokens.update()
        .where(partner_tokens.c.partner_id == partner_id, partner_tokens.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount


def partner_for_token(conn: Connection, token: str) -> str | None:
    row = conn.execute(
        sa.select(partner_tokens.c.partner_id).where(
            partner_tokens.c.token_hash == token_hash(token), partner_tokens.c.revoked_at.is_(None)
        )
    ).first()
    return row[0] if row else None
