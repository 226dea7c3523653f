"""Unit of work: the append-only writes of one transaction, collected and written together.

Processing one message appends a dozen rows (history events, audit entries, deliveries, outbox items,
a status change). Executed one at a time, each costs a statement execution with SQLAlchemy's
per-call overhead and, on PostgreSQL, a round trip; that was most of the pipeline's time. While a
consumer processes a batch of queue items it therefore opens a unit of work on the connection: the
writers (`history.record`, `history.audit`, `pipeline.write_delivery`, `Transport.publish`, status
changes) add their rows here, and just before the commit each statement runs once as an executemany
with all its rows. Writers outside a unit of work execute at once, as before.

Rows that later statements of the same transaction must *read* (cases, case members, the person
index) are written at once; where a check would read a collected row (a report's fingerprint, a
message already handled in this batch) the caller's own state on the unit answers instead: a typed
object per concern (`extension`), e.g. the pipeline's read-ahead, rewound with the item's savepoint.

A failed item must leave nothing behind: `savepoint()` drops the rows the item added to the unit of
work when it raises, and rolls the database back to a savepoint -- issued lazily, only if the item
wrote at once.

A statement may be *sealed* (`seal`): its rows are completed by a function of the store just before
they are written -- at the flush, or at once outside a unit -- and a flush writes them after every
other statement. The audit log's hash chain (hub.store.audit_chain) is computed so: still one
executemany per batch, and the chain's head row is locked only for the last moments before the commit.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from sqlalchemy import Insert, Table, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable

from hub.errors import NeedsWriter

# per Connection object (not `conn.info`, which lives on the pooled DBAPI connection and cannot be
# read once the connection is invalidated): the open unit of work
_units: weakref.WeakKeyDictionary[Connection, UnitOfWork] = weakref.WeakKeyDictionary()


class Extension(Protocol):
    """State a caller keeps on the unit (one object per type): what its batch read ahead and what it
    already did. A failed item's savepoint rewinds it to the snapshot taken before the item."""

    def snapshot(self) -> Any: ...

    def restore(self, snapshot: Any) -> None: ...


E = TypeVar("E", bound=Extension)
Mark = tuple[dict[Executable, int], dict[type, Any]]
#: completes the rows of a sealed statement in place, on the connection that writes them
Sealer = Callable[[Connection, list[dict[str, Any]]], None]
_sealers: dict[Executable, Sealer] = {}


def seal(statement: Executable, sealer: Sealer) -> None:
    """Have `sealer(conn, rows)` complete the rows of `statement` just before they are written: at the
    flush of a unit (after every unsealed statement of it) or, outside a unit, at once. The store
    registers its sealers at import; upper layers only write rows."""
    _sealers[statement] = sealer


class UnitOfWork:
    def __init__(self) -> None:
        self._rows: dict[Executable, list[dict[str, Any]]] = {}
        self._extensions: dict[type, Extension] = {}
        #: a statement other than SELECT ran at once on the connection since the unit opened
        self.wrote_at_once = False

    def reads_current(self) -> bool:
        """Rows read ahead for the batch are still what the database holds for this transaction:
        nothing was written at once since (collected rows change nothing until the flush)."""
        return not self.wrote_at_once

    def add(self, statement: Executable, params: dict[str, Any]) -> None:
        self._rows.setdefault(statement, []).append(params)

    def collected(self, statement: Executable) -> list[dict[str, Any]]:
        """The rows collected for `statement` so far (not yet in the database): for a reader that
        must see this transaction's appends, e.g. the chain's record counting earlier entries, or
        the deadlines a report meets that an earlier report of the batch expected."""
        return list(self._rows.get(statement, ()))

    def extension(self, kind: type[E]) -> E:
        """The caller's state of type `kind` on this unit, made on first use."""
        found = self._extensions.get(kind)
        if found is None:
            found = self._extensions[kind] = kind()
        return found  # type: ignore[return-value]

    def mark(self) -> Mark:
        return {s: len(rows) for s, rows in self._rows.items()}, {k: e.snapshot() for k, e in self._extensions.items()}

    def rollback_to(self, mark: Mark) -> None:
        lengths, snapshots = mark
        for statement, rows in self._rows.items():
            del rows[lengths.get(statement, 0) :]
        for kind in list(self._extensions):
            if kind in snapshots:
                self._extensions[kind].restore(snapshots[kind])
            else:  # made after the mark
                del self._extensions[kind]

    def flush(self, conn: Connection) -> None:
        """One executemany per statement (on PostgreSQL a COPY per table where it can): the inserts
        first, then the updates (an update collected for a row that an insert of the same unit adds
        must find the row), sealed statements last, each sealed just before; otherwise in the order
        the statements were first used."""
        copy = conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"
        pending = [(statement, rows) for statement, rows in self._rows.items() if rows]
        pending.sort(key=lambda item: (item[0] in _sealers, not isinstance(item[0], Insert)))  # stable
        for statement, rows in pending:
            sealer = _sealers.get(statement)
            if sealer is not None:
                sealer(conn, rows)
            if not (copy and len(rows) > 1 and _copy(conn, statement, rows)):
                conn.execute(statement, rows)
        self._rows.clear()


def _copy(conn: Connection, statement: Executable, rows: list[dict[str, Any]]) -> bool:
    """Append `rows` with PostgreSQL's COPY; False (nothing done) where the statement is not a plain
    INSERT of whole rows.

    psycopg's executemany sends one INSERT per row through its pipeline, and with SQLAlchemy's
    per-row parameter processing that costs ~15 µs of CPU a row; COPY costs ~5. A message writes a
    dozen rows, so this is a tenth of a PostgreSQL worker's CPU. Values go through the same bind
    processors SQLAlchemy would apply; driver errors are raised as SQLAlchemy's, so callers (the group
    commit's resend path, `db.is_outage`) see what an executemany would have raised."""
    if not isinstance(statement, Insert) or not isinstance(statement.table, Table) or statement._values or statement._returning:
        return False
    table, dialect = statement.table, conn.dialect
    names = list(rows[0])
    if any(len(row) != len(names) or any(n not in row for n in names) for row in rows):
        return False
    defaults: dict[str, Any] = {}
    for column in table.columns:
        if column.name not in rows[0] and column.default is not None:
            if not column.default.is_scalar:
                return False
            defaults[column.name] = column.default.arg
    columns = [*names, *defaults]
    processors = [table.c[name].type._cached_bind_processor(dialect) for name in columns]
    quote = dialect.identifier_preparer
    sql = f"COPY {quote.format_table(table)} ({', '.join(quote.quote(n) for n in columns)}) FROM STDIN"
    with direct(conn, sql) as driver, driver.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            values = [row[n] for n in names] + list(defaults.values())
            copy.write_row([p(v) if p is not None else v for p, v in zip(processors, values)])
    return True


@contextmanager
def direct(conn: Connection, sql: str) -> Iterator[Any]:
    """The driver connection under `conn`, for statements of the store's own that are worth the
    bypass (a COPY; the audit chain's head, a dozen µs of SQLAlchemy per statement on SQLite). What
    the engine event does for `sql` is done first -- refused in a read-only block, lazy savepoints
    issued before a write -- and driver errors are raised as SQLAlchemy's (see `_copy`)."""
    _before_write(conn, None, sql, None, None, False)
    driver = conn.connection.driver_connection
    dialect = conn.dialect
    try:
        yield driver
    except dialect.loaded_dbapi.Error as exc:
        invalidated = dialect.is_disconnect(exc, driver, None)
        if invalidated:
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error, connection_invalidated=invalidated) from exc


def current(conn: Connection) -> UnitOfWork | None:
    return _units.get(conn)


def collected(conn: Connection, statement: Executable) -> list[dict[str, Any]]:
    """The rows collected for `statement` in the connection's open unit of work (none without one)."""
    unit = _units.get(conn)
    return unit.collected(statement) if unit is not None else []


def execute(conn: Connection, statement: Executable, params: dict[str, Any]) -> None:
    """Write one row: into the connection's unit of work if one is open, else at once."""
    unit = _units.get(conn)
    if unit is None:
        sealer = _sealers.get(statement)
        if sealer is not None:
            sealer(conn, [params])
        conn.execute(statement, params)
    else:
        unit.add(statement, params)


@contextmanager
def collecting(conn: Connection, unit: UnitOfWork | None = None, *, flush: bool = True) -> Iterator[UnitOfWork]:
    """Collect the writes of the block; flush them when it ends without an exception.

    `unit` continues a unit of work collected on another connection (see `read_only`); with
    `flush=False` the rows stay in the unit for the caller to hand on."""
    _watch(conn.engine)
    unit = _units[conn] = unit if unit is not None else UnitOfWork()
    try:
        yield unit
        if flush:
            unit.flush(conn)
    finally:
        _units.pop(conn, None)


@contextmanager
def read_only(conn: Connection) -> Iterator[None]:
    """Refuse every statement but SELECT on `conn` for the block (raising `NeedsWriter` before it runs).

    For speculative work in a reading transaction: collected rows are fine (they are written later,
    by whoever flushes the unit under the write lock), but a statement that would write at once
    cannot run there -- on SQLite a deferred transaction would quietly take the write lock."""
    _watch(conn.engine)
    _read_only.add(conn)
    try:
        yield
    finally:
        _read_only.discard(conn)


class _Savepoint:
    __slots__ = ("name", "issued")

    def __init__(self, name: str) -> None:
        self.name, self.issued = name, False


@contextmanager
def savepoint(conn: Connection) -> Iterator[None]:
    """A savepoint that also forgets the rows collected inside it when the block raises -- issued
    only if the block writes to the database at once.

    Most items write nothing at once (their rows wait in the unit of work), so SAVEPOINT and RELEASE
    would be two round trips per item for nothing: on PostgreSQL they were a third of the pipeline's
    time. The savepoint is therefore lazy: an engine event issues it (and any enclosing lazy ones)
    just before the first statement inside the block that is not a SELECT. Issued on the driver
    connection (sqlite3 and psycopg both have `execute`): SQLAlchemy's `begin_nested` costs about
    as much bookkeeping as the pipeline's real work for one message.
    """
    _watch(conn.engine)
    unit = _units.get(conn)
    mark = unit.mark() if unit is not None else None
    stack = _savepoints.setdefault(conn, [])
    point = _Savepoint(f"hub_sp_{len(stack)}")
    stack.append(point)
    try:
        yield
    except BaseException:
        stack.pop()
        if unit is not None and mark is not None:
            unit.rollback_to(mark)
        if point.issued:
            try:
                driver = conn.connection.driver_connection
                driver.execute(f"ROLLBACK TO SAVEPOINT {point.name}")
                driver.execute(f"RELEASE SAVEPOINT {point.name}")
            except Exception:  # noqa: BLE001 - the connection is gone; the enclosing transaction fails anyway
                pass
        raise
    stack.pop()
    if point.issued:
        conn.connection.driver_connection.execute(f"RELEASE SAVEPOINT {point.name}")


_savepoints: weakref.WeakKeyDictionary[Connection, list[_Savepoint]] = weakref.WeakKeyDictionary()
_read_only: weakref.WeakSet[Connection] = weakref.WeakSet()
_watched: weakref.WeakSet[Engine] = weakref.WeakSet()


def _watch(engine: Engine) -> None:
    if engine not in _watched:
        event.listen(engine, "before_cursor_execute", _before_write)
        _watched.add(engine)


def _before_write(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    """Before a statement that is not a SELECT: refuse it in a read-only block; else note it in the
    unit of work (its read-ahead rows may be stale now) and issue the lazy savepoints."""
    if statement.lstrip()[:6].upper() == "SELECT":
        return
    if conn in _read_only:
        raise NeedsWriter(statement.split(None, 1)[0])
    unit = _units.get(conn)
    if unit is not None:
        unit.wrote_at_once = True
    stack = _savepoints.get(conn)
    if not stack or stack[-1].issued:
        return
    driver = conn.connection.driver_connection
    for point in stack:  # outermost first
        if not point.issued:
            driver.execute(f"SAVEPOINT {point.name}")
            point.issued = True
