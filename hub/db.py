"""Database engines for SQLite (embedded default) and PostgreSQL, chosen by URL.

SQLite runs in WAL mode with `BEGIN IMMEDIATE` for writing transactions: several threads and
processes share one file, and taking the write lock up front avoids the deadlock-prone lock upgrade
of a deferred transaction. Readers use deferred transactions and never block writers.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

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


class _SqliteWriteLock:
    """The write lock of one SQLite database, for the threads of this process AND other processes.

    SQLite's own busy handler polls with sleeps of up to 100 ms: under contention a 1 ms wait becomes
    100 ms (that was the p99 of HTTP accepts, and the throughput of two `hub serve` processes). So
    writers queue here instead: threads on a Python lock, processes on an exclusive `flock` of a file
    beside the database, which the kernel hands to the next waiter the moment it is released. The
    flock is taken once per outermost write and released after the commit; BEGIN IMMEDIATE then finds
    the database free (the busy handler remains the fallback, e.g. for a checkpoint).
    """

    def __init__(self, path: str | None) -> None:
        self.thread_lock = threading.RLock()
        self.path = f"{path}.writelock" if path and path != ":memory:" else None
        self.depth = 0
        self.owner: int | None = None
        self.fd: int | None = None
        self.pid = os.getpid()

    @contextmanager
    def held(self) -> Iterator[None]:
        with self.thread_lock:
            if self.depth == 0 and self.path:
                if self.fd is None or self.pid != os.getpid():  # a forked child needs its own open file
                    self.fd, self.pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            self.depth += 1
            self.owner = threading.get_ident()
            try:
                yield
            finally:
                self.depth -= 1
                if self.depth == 0:
                    self.owner = None
                    if self.fd is not None:
                        fcntl.flock(self.fd, fcntl.LOCK_UN)


_sqlite_write_locks: weakref.WeakKeyDictionary[Engine, _SqliteWriteLock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _sqlite_write_lock(engine: Engine) -> _SqliteWriteLock:
    with _locks_guard:
        lock = _sqlite_write_locks.get(engine)
        if lock is None:
            lock = _sqlite_write_locks[engine] = _SqliteWriteLock(engine.url.database)
        return lock


def holds_write_lock(engine: Engine) -> bool:
    """True in a thread that is inside `write()` on this (SQLite) database."""
    lock = _sqlite_write_locks.get(engine) if is_sqlite(engine) else None
    return lock is not None and lock.owner == threading.get_ident()


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """One writing transaction: committed on success, rolled back on any exception.

    On SQLite, writers first queue on the database's write lock (threads and processes; see
    `_SqliteWriteLock`), then BEGIN IMMEDIATE.
    """
    if is_sqlite(engine):
        with _sqlite_write_lock(engine).held(), engine.begin() as conn:
            yield conn
        return
    with engine.begin() as conn:
        yield conn


def is_outage(engine: Engine, exc: BaseException) -> bool:
    """A database error means "database away" only if the database does not answer a trivial query now."""
    if not isinstance(exc, SQLAlchemyError) or isinstance(exc, IntegrityError):
        return False
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    try:  # a reading transaction: on SQLite the caller may hold the write lock
        with engine.connect().execution_options(readonly=True) as conn:
            conn.exec_driver_sql("SELECT 1")
        return False
    except Exception:  # noqa: BLE001
        return True


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    with engine.connect().execution_options(readonly=True) as conn:
        with conn.begin():
            yield conn
