"""Signed-in browsers: a random token in an HttpOnly cookie, its SHA-256 in the database.

Kept server-side rather than in a signed cookie so that signing out, a disabled account and a new
password end a session at once. The idle timeout (HUB_CONSOLE_IDLE_MINUTES) ends a session nobody
used for that long; a session also ends after HUB_CONSOLE_SESSION_HOURS whatever happens. Each
session has its own CSRF token, which every form sends back (hub.console.web checks it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.console.accounts import User, by_id
from hub.store.db import aware, utcnow
from hub.store.tables import console_sessions

#: a session's last use is written at most this often (a page view is a read, not a write)
TOUCH_SECONDS = 30


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    token_hash: str


@dataclass(frozen=True)
class Timeouts:
    idle_minutes: float = 30.0
    max_hours: float = 12.0


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(conn: Connection, user: User) -> tuple[str, Session]:
    """A new session for `user`: (the cookie's token, the session)."""
    token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), utcnow()
    digest = _digest(token)
    conn.execute(console_sessions.insert(), {"token_hash": digest, "user_id": user.id, "csrf": csrf, "created_at": now, "last_seen_at": now})
    return token, Session(user, csrf, digest)


def find(conn: Connection, token: str | None, timeouts: Timeouts) -> tuple[Session | None, Callable[[Connection], None] | None]:
    """The live session of a cookie's token, or None (unknown, idle too long, too old, account gone),
    with what is to be written about it, if anything: its end, or its last use (at most every
    TOUCH_SECONDS). Only reads: a page view waits for no write lock unless a chore is due."""
    if not token or len(token) > 100:
        return None, None
    digest = _digest(token)
    row = conn.execute(sa.select(console_sessions).where(console_sessions.c.token_hash == digest)).first()
    if row is None:
        return None, None
    now = utcnow()
    seen, created = aware(row.last_seen_at), aware(row.created_at)
    user = by_id(conn, row.user_id)
    if user is None or now - seen > dt.timedelta(minutes=timeouts.idle_minutes) or now - created > dt.timedelta(hours=timeouts.max_hours):
        return None, partial(end, token_hash=digest)
    touch = partial(_touch, token_hash=digest, at=now) if (now - seen).total_seconds() > TOUCH_SECONDS else None
    return Session(user, row.csrf, digest), touch


def _touch(conn: Connection, *, token_hash: str, at: dt.datetime) -> None:
    conn.execute(console_sessions.update().where(console_sessions.c.token_hash == token_hash).values(last_seen_at=at))


def end(conn: Connection, token_hash: str) -> None:
    conn.execute(console_sessions.delete().where(console_sessions.c.token_hash == token_hash))


def csrf_matches(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf, sent or "")
