"""Console accounts: people, not partners, each with one role, an argon2 password and a lockout.

Partners authenticate machines with bearer tokens; the console is for people, who have passwords and
make mistakes: a password is kept only as an argon2id hash (argon2-cffi; its parameters travel inside
the hash, so raising them later rehashes on the next login), repeated failures lock the account for a
while, a disabled account cannot sign in and its sessions end. A case manager belongs to exactly one
steering agency (a partner whose role owns cases) and sees only that agency's cases.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection

from hub.ids import new_id
from hub.store.db import aware, utcnow
from hub.store.tables import console_sessions, console_users

#: what each role may do (docs/console.md): operators run the flows, case managers steer their
#: agency's cases, auditors read the audit log, admins manage the accounts
ROLES: dict[str, str] = {
    "operator": "flows, messages and their metadata, dead letters and replay, identity reviews",
    "case_manager": "the cases, chains, tasks and controlling of one steering agency",
    "auditor": "the audit log and its verification, read-only",
    "admin": "console accounts",
}

LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 12

_hasher = PasswordHasher()
#: verified against when the login is unknown, so that an unknown login takes as long as a wrong password
_DUMMY_HASH = _hasher.hash("not a password of anyone")


class AccountError(ValueError):
    """A request about an account that cannot be done: the sentence says why."""


@dataclass(frozen=True)
class User:
    id: str
    login: str
    display_name: str
    role: str
    agency: str | None
    locale: str

    @property
    def actor(self) -> str:
        """How the audit log and the history name this person."""
        return f"console:{self.login}"


def _user(row: sa.Row) -> User:
    return User(row.id, row.login, row.display_name, row.role, row.agency, row.locale)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")


def add(conn: Connection, login: str, role: str, password: str, *, display_name: str | None = None,
        agency: str | None = None, agencies: set[str] | None = None, locale: str = "de") -> User:
    """A new account. `agencies` are the steering agencies a case manager may belong to."""
    if not LOGIN.match(login):
        raise AccountError(f"login {login!r} must be 2 to 64 lower-case letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if role == "case_manager":
        if not agency:
            raise AccountError("a case manager belongs to a steering agency: give --agency")
        if agencies is not None and agency not in agencies:
            raise AccountError(f"{agency!r} is not a steering agency (one of {', '.join(sorted(agencies))})")
    elif agency:
        raise AccountError(f"only a case manager belongs to an agency, not a(n) {role}")
    if locale not in ("de", "en"):
        raise AccountError(f"unknown locale {locale!r} (de or en)")
    check_password(password)
    if conn.execute(sa.select(console_users.c.id).where(console_users.c.login == login)).first():
        raise AccountError(f"an account {login!r} exists already")
    now = utcnow()
    row = {"id": new_id(), "login": login, "display_name": display_name or login, "role": role, "agency": agency,
           "password_hash": _hasher.hash(password), "disabled": False, "failed_logins": 0, "locked_until": None,
           "locale": locale, "created_at": now, "password_changed_at": now}
    conn.execute(console_users.insert(), row)
    return User(row["id"], login, row["display_name"], role, agency, locale)


def _row(conn: Connection, login: str) -> sa.Row:
    row = conn.execute(sa.select(console_users).where(console_users.c.login == login)).first()
    if row is None:
        raise AccountError(f"no account {login!r}")
    return row


def set_password(conn: Connection, login: str, password: str) -> None:
    """A new password; it also lifts a lockout and ends the account's sessions (a stolen one too)."""
    row = _row(conn, login)
    check_password(password)
    conn.execute(console_users.update().where(console_users.c.id == row.id).values(
        password_hash=_hasher.hash(password), failed_logins=0, locked_until=None, password_changed_at=utcnow()))
    end_sessions(conn, row.id)


def disable(conn: Connection, login: str) -> None:
    row = _row(conn, login)
    conn.execute(console_users.update().where(console_users.c.id == row.id).values(disabled=True))
    end_sessions(conn, row.id)


def end_sessions(conn: Connection, user_id: str) -> None:
    conn.execute(console_sessions.delete().where(console_sessions.c.user_id == user_id))


def listing(conn: Connection) -> list[dict[str, object]]:
    rows = conn.execute(sa.select(console_users).order_by(console_users.c.login)).all()
    return [{"login": r.login, "display_name": r.display_name, "role": r.role, "agency": r.agency,
             "disabled": r.disabled, "locked": bool(r.locked_until and aware(r.locked_until) > utcnow())} for r in rows]


@dataclass(frozen=True)
class Lockout:
    failures: int = 5
    minutes: float = 15.0


def sign_in(conn: Connection, login: str, password: str, lockout: Lockout) -> User | None:
    """The account, or None: a wrong password, an unknown or disabled login, or a locked account all
    answer alike (the page must not tell an attacker which logins exist). The caller commits the
    failure count even when it answers None."""
    row = conn.execute(sa.select(console_users).where(console_users.c.login == login)).first()
    if row is None:
        _verify(_DUMMY_HASH, password)
        return None
    now = utcnow()
    if row.disabled or (row.locked_until and aware(row.locked_until) > now):
        _verify(_DUMMY_HASH, password)
        return None
    if not _verify(row.password_hash, password):
        failures = row.failed_logins + 1
        locked = now + dt.timedelta(minutes=lockout.minutes) if failures >= lockout.failures else None
        conn.execute(console_users.update().where(console_users.c.id == row.id).values(
            failed_logins=0 if locked else failures, locked_until=locked))
        return None
    values: dict[str, object] = {"failed_logins": 0, "locked_until": None}
    if _hasher.check_needs_rehash(row.password_hash):
        values["password_hash"] = _hasher.hash(password)
    conn.execute(console_users.update().where(console_users.c.id == row.id).values(**values))
    return _user(row)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def by_id(conn: Connection, user_id: str) -> User | None:
    row = conn.execute(sa.select(console_users).where(console_users.c.id == user_id, console_users.c.disabled.is_(False))).first()
    return _user(row) if row else None
