"""Database engines for SQLite (embedded default) and PostgreSQL, chosen by URL.

SQLite runs in WAL mode with `BEGIN IMMEDIATE` for writing transactions: several threads and
processes share one file, and taking the write lock up front avoids the deadlock-prone lock upgrade
of a deferred transaction. Readers use deferred transactions and never block writers.
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

_engines: dict[str, Engine] = {}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; everything the hub stores is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create(url: str) -> Engine:
    if url.startswith("sqlite"):
        db_path = sa.engine.make_url(url).database
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, pool_size=20, max_overflow=20)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("readonly") else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return sa.create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True, pool_recycle=1800)


def get_engine(url: str) -> Engine:
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = create(url)
    return engine


def dispose_all() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


_sqlite_write_locks: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _sqlite_write_lock(engine: Engine) -> threading.RLock:
    with _locks_guard:
        lock = _sqlite_write_locks.get(engine)
        if lock is None:
            lock = _sqlite_write_locks[engine] = threading.RLock()
        return lock


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """One writing transaction: committed on success, rolled back on any exception.

    On SQLite the threads of one process queue for the write lock on a Python lock first: SQLite's
    own busy handler polls with sleeps of up to 100 ms, which under contention turns a 1 ms wait
    into a 100 ms one (the p99 of HTTP accepts). Other processes still meet at BEGIN IMMEDIATE.
    """
    if is_sqlite(engine):
        with _sqlite_write_lock(engine), engine.begin() as conn:
            yield conn
        return
    with engine.begin() as conn:
        yield conn


def is_outage(engine: Engine, exc: BaseException) -> bool:
    """A database error means "database away" only if the database does not answer a trivial query now."""
    if not isinstance(exc, SQLAlchemyError):
        return False
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return False
    except Exception:  # noqa: BLE001
        return True


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    with engine.connect().execution_options(readonly=True) as conn:
        with conn.begin():
            yield conn
