"""Partner profiles (contracts/partners/*.yaml) and their bearer tokens (database, hashed).

Profiles are configuration as code: reviewed and versioned with the contracts. Tokens are secrets:
only their SHA-256 is stored (tokens are 256-bit random, so a plain hash is the right tool; a slow
password hash would only slow every request).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Connection

from hub.store.db import aware, utcnow
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


#: days a token issued by `hub partners token` is valid unless --expires-in says otherwise: a partner's
#: token sits in its specialist software, and replacing it takes both organisations; a year is one
#: planned rotation a year (and a leaked token stops working within it), where 90 days would make
#: missed renewals, i.e. outages at partners, the common case
DEFAULT_TOKEN_DAYS = 365
#: hex characters of the stored hash that name a token in listings and `--revoke` (not secret: the
#: hash of a 256-bit token reveals nothing, and 48 bits keep a partner's few tokens apart)
TOKEN_ID_LENGTH = 12


@dataclass(frozen=True)
class Grant:
    """What a bearer token grants: a partner, until `expires_at` (None: no expiry)."""

    partner_id: str
    expires_at: dt.datetime | None = None

    def expired(self, now: dt.datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())


def issue_token(conn: Connection, partner_id: str, expires_in: dt.timedelta | None = None) -> str:
    """A new bearer token for a partner, valid for `expires_in` (None: until revoked); earlier
    tokens stay valid until they expire or are revoked (rotation)."""
    token = new_token()
    now = utcnow()
    conn.execute(
        partner_tokens.insert().values(
            token_hash=token_hash(token), partner_id=partner_id, created_at=now,
            expires_at=None if expires_in is None else now + expires_in,
        )
    )
    return token


def revoke_tokens(conn: Connection, partner_id: str) -> int:
    """Revoke every token of a partner that is not revoked yet; how many."""
    result = conn.execute(
        partner_tokens.update()
        .where(partner_tokens.c.partner_id == partner_id, partner_tokens.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount


def revoke_token(conn: Connection, partner_id: str, token_id: str) -> bool:
    """Revoke the partner's token whose id (a prefix of its stored hash) is `token_id`.

    False if the partner has no such token: another partner's token is not found, whatever its id."""
    token_id = token_id.strip().lower()
    if len(token_id) < TOKEN_ID_LENGTH or not all(c in "0123456789abcdef" for c in token_id):
        return False
    found = conn.execute(
        sa.select(partner_tokens.c.token_hash, partner_tokens.c.revoked_at).where(
            partner_tokens.c.partner_id == partner_id, partner_tokens.c.token_hash.startswith(token_id, autoescape=True)
        )
    ).all()
    if len(found) != 1:
        return False
    if found[0].revoked_at is None:
        conn.execute(partner_tokens.update().where(partner_tokens.c.token_hash == found[0].token_hash).values(revoked_at=utcnow()))
    return True


def list_tokens(conn: Connection, partner_id: str) -> list[dict[str, Any]]:
    """The partner's tokens, oldest first, without secrets: id, created, expires, revoked, status.

    When a token was last used is not recorded: that would be a write per authentication."""
    now = utcnow()
    rows = conn.execute(
        sa.select(partner_tokens.c.token_hash, partner_tokens.c.created_at, partner_tokens.c.expires_at, partner_tokens.c.revoked_at)
        .where(partner_tokens.c.partner_id == partner_id)
        .order_by(partner_tokens.c.created_at, partner_tokens.c.token_hash)
    ).all()
    listed = []
    for row in rows:
        expires = aware(row.expires_at) if row.expires_at else None
        revoked = aware(row.revoked_at) if row.revoked_at else None
        status = "revoked" if revoked else "expired" if Grant(partner_id, expires).expired(now) else "valid"
        listed.append({
            "id": row.token_hash[:TOKEN_ID_LENGTH], "created": aware(row.created_at).isoformat(),
            "expires": expires.isoformat() if expires else None, "revoked": revoked.isoformat() if revoked else None, "status": status,
        })
    return listed


def grant_for_token(conn: Connection, token: str) -> Grant | None:
    """What an unrevoked token grants (expired or not: the caller says which), or None."""
    row = conn.execute(
        sa.select(partner_tokens.c.partner_id, partner_tokens.c.expires_at).where(
            partner_tokens.c.token_hash == token_hash(token), partner_tokens.c.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    return Grant(row.partner_id, aware(row.expires_at) if row.expires_at else None)


def partner_for_token(conn: Connection, token: str) -> str | None:
    """The partner of a valid token (not revoked, not expired), or None."""
    grant = grant_for_token(conn, token)
    return grant.partner_id if grant is not None and not grant.expired() else None
