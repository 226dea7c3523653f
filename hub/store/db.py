"""Database engines for SQLite (embedded default) and PostgreSQL, chosen by URL.

SQLite runs in WAL mode with `BEGIN IMMEDIATE` for writing transactions: several threads and
processes share one file, and taking the write lock up front avoids the deadlock-prone lock upgrade
of a deferred transaction. Readers use deferred transactions and never block writers.

PostgreSQL is reached over a network that can fail silently: a frozen host or a half-open connection
accepts bytes and never answers. Connecting therefore has a timeout, idle connections send TCP
keepalives, and the hub's short transactions (API requests, the group commit of accepts, probes) run
under `deadline()`: no round trip inside waits past it, the connection is dropped and the caller gets
an OperationalError (an outage: 503). Long work (migrations, batch commands, workers) has no deadline.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import inspect
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

_engines: dict[str, Engine] = {}


class Limits(BaseSettings):
    """How long the hub waits for its database: `HUB_DB_CONNECT_TIMEOUT`, `HUB_DB_REQUEST_TIMEOUT`
    (environment or `.env`, like hub.config.Settings)."""

    model_config = SettingsConfigDict(env_prefix="HUB_DB_", env_file=".env", extra="ignore")

    #: seconds to establish a PostgreSQL connection (libpq's connect_timeout; at least 2)
    connect_timeout: float = 5.0
    #: seconds the database work of one API request (or one group commit of accepts) may take before
    #: the request is answered 503; a PostgreSQL round trip still waiting then is cut off
    request_timeout: float = 10.0


@lru_cache(maxsize=1)
def limits() -> Limits:
    return Limits()


#: TCP keepalives on PostgreSQL connections: a peer that went away is noticed after ~25 s idle
#: (10 s, then 3 probes 5 s apart) instead of the kernel's two hours; unacknowledged data gives up
#: after 30 s (tcp_user_timeout, ms)
_PG_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3, "tcp_user_timeout": 30_000}


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
    parsed = sa.engine.make_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_driver_name() in ("psycopg", "psycopg2"):  # libpq's options
        # the URL's own query parameters (e.g. ?connect_timeout=20) win over these defaults
        defaults = {"connect_timeout": max(2, round(limits().connect_timeout)), **_PG_KEEPALIVES}
        connect_args = {k: v for k, v in defaults.items() if k not in parsed.query}
    engine = sa.create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True, pool_recycle=1800, connect_args=connect_args)
    bounded = _bounded_connection_class() if parsed.get_driver_name() == "psycopg" else None
    if bounded is not None:

        @event.listens_for(engine, "do_connect")
        def _connect(dialect, conn_rec, cargs, cparams):  # type: ignore[no-untyped-def]
            return bounded.connect(*cargs, **cparams)

    return engine


# -- deadlines --------------------------------------------------------------------------------------
_deadline: ContextVar[float | None] = ContextVar("hub_db_deadline", default=None)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """No PostgreSQL round trip inside the block waits past `seconds` from now (nested: the earlier
    deadline holds). A round trip that would is abandoned: its connection is closed, and the caller
    gets an OperationalError with `connection_invalidated` (an outage, see `is_unavailable`).

    Only for short work: a statement cut off mid-way leaves its transaction to the server's rollback.
    Connecting is bounded separately (HUB_DB_CONNECT_TIMEOUT); SQLite is local and not affected.
    """
    if not seconds or seconds <= 0:
        yield
        return
    end = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(end if outer is None else min(outer, end))
    try:
        yield
    finally:
        _deadline.reset(token)


def request_deadline() -> AbstractContextManager[None]:
    """`deadline` for the database work of one API request or one group commit (HUB_DB_REQUEST_TIMEOUT)."""
    return deadline(limits().request_timeout)


@lru_cache(maxsize=1)
def _bounded_connection_class() -> type | None:
    """psycopg's Connection, with every wait for the server bounded by the current `deadline()`.

    psycopg runs every round trip (queries, COPY, commit) through `Connection.wait(gen, interval,
    timeout)`; the subclass only fills in `timeout`. None where psycopg is missing or its `wait` has
    another shape (psycopg < 3.2): then only connecting and TCP keepalives are bounded."""
    try:
        import psycopg
        from psycopg import errors
    except ImportError:
        return None
    wait_timeout = getattr(errors, "_WaitTimeout", None)
    if wait_timeout is None or not {"interval", "timeout"} <= set(inspect.signature(psycopg.Connection.wait).parameters):
        return None

    class DeadlineExceeded(psycopg.OperationalError):
        """The database did not answer before the deadline; the connection was closed."""

    class BoundedConnection(psycopg.Connection):
        def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
            end = _deadline.get()
            if end is None or len(args) > 1:
                return super().wait(gen, *args, **kwargs)
            remaining = max(end - time.monotonic(), 0.001)
            given = kwargs.get("timeout")
            kwargs["timeout"] = remaining if given is None else min(given, remaining)
            try:
                return super().wait(gen, *args, **kwargs)
            except wait_timeout as exc:
                if given is not None and given <= remaining:
                    raise  # the caller's own, shorter timeout: its business
                # the protocol stopped mid-exchange: this connection cannot be used again
                self.pgconn.finish()
                raise DeadlineExceeded("the database did not answer before the deadline; the connection was closed") from exc

    return BoundedConnection


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


#: seconds `is_outage` waits for its probe
OUTAGE_PROBE_SECONDS = 3.0


def is_unavailable(exc: BaseException) -> bool:
    """The database cannot serve right now, and the same request may well succeed later: a lost,
    refused or unanswered connection, an exhausted pool, an operator shutdown, a lock timeout or
    serialization failure (OperationalError), SQLite busy. An HTTP request failing so is answered 503
    with Retry-After. Decided from the exception alone (no probe: the caller may be the event loop).

    Not so a value the database refuses (DataError, IntegrityError) or a ProgrammingError: sent again,
    the request fails again, so a 503 would make a partner retry forever.
    """
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))
    return False


def is_outage(engine: Engine, exc: BaseException) -> bool:
    """A database error means "database away" only if the database does not answer a trivial query now
    (asked within OUTAGE_PROBE_SECONDS on PostgreSQL: a silent server must not stall the caller)."""
    if not isinstance(exc, SQLAlchemyError) or isinstance(exc, IntegrityError):
        return False
    if isinstance(exc, PoolTimeout) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return True
    try:  # a reading transaction: on SQLite the caller may hold the write lock
        with deadline(OUTAGE_PROBE_SECONDS), engine.connect().execution_options(readonly=True) as conn:
            conn.exec_driver_sql("SELECT 1")
        return False
    except Exception:  # noqa: BLE001
        return True


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    with engine.connect().execution_options(readonly=True) as conn:
        with conn.begin():
            yield conn


class InsertOnce:
    """`INSERT ... ON CONFLICT DO NOTHING` into `table`, built once per dialect: a row whose unique
    key exists is left as it is. Call it with the connection for the statement of its dialect (the
    same object every time, so a unit of work collects its rows under one statement)."""

    def __init__(self, table: sa.Table) -> None:
        from sqlalchemy.dialects import postgresql, sqlite

        self._by_dialect = {"postgresql": postgresql.insert(table).on_conflict_do_nothing(), "sqlite": sqlite.insert(table).on_conflict_do_nothing()}

    def __call__(self, conn: Connection) -> Any:
        return self._by_dialect["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
