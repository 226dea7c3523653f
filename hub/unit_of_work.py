"""Unit of work: the append-only writes of one transaction, collected and written together.

Processing one message appends a dozen rows (history events, audit entries, deliveries, outbox items,
a status change). Executed one at a time, each costs a statement execution with SQLAlchemy's
per-call overhead and, on PostgreSQL, a round trip; that was most of the pipeline's time. While a
consumer processes a batch of queue items it therefore opens a unit of work on the connection: the
writers (`history.record`, `history.audit`, `pipeline.write_delivery`, `Transport.publish`, status
changes) add their rows here, and just before the commit each statement runs once as an executemany
with all its rows. Writers outside a unit of work execute at once, as before.

Rows that later statements of the same transaction must *read* (cases, case members, report
fingerprints, the person index) are not collected: they are written at once.

A failed item must leave nothing behind: `savepoint()` wraps the database savepoint and drops the rows
the item added to the unit of work when it raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import weakref
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.sql import Executable

# per Connection object (not `conn.info`, which lives on the pooled DBAPI connection and cannot be
# read once the connection is invalidated): the open unit of work and the savepoint depth
_units: weakref.WeakKeyDictionary[Connection, UnitOfWork] = weakref.WeakKeyDictionary()
_depths: weakref.WeakKeyDictionary[Connection, int] = weakref.WeakKeyDictionary()


class UnitOfWork:
    def __init__(self) -> None:
        self._rows: dict[Executable, list[dict[str, Any]]] = {}
        #: keys of work already done in this unit (e.g. message ids the pipeline handled), for the
        #: idempotency checks that would otherwise read rows still waiting here
        self.done: set[Any] = set()

    def add(self, statement: Executable, params: dict[str, Any]) -> None:
        self._rows.setdefault(statement, []).append(params)

    def mark(self) -> tuple[dict[Executable, int], frozenset[Any]]:
        return {s: len(rows) for s, rows in self._rows.items()}, frozenset(self.done)

    def rollback_to(self, mark: tuple[dict[Executable, int], frozenset[Any]]) -> None:
        lengths, done = mark
        for statement, rows in self._rows.items():
            del rows[lengths.get(statement, 0) :]
        self.done = set(done)

    def flush(self, conn: Connection) -> None:
        """One executemany per statement, in the order the statements were first used."""
        for statement, rows in self._rows.items():
            if rows:
                conn.execute(statement, rows)
        self._rows.clear()


def current(conn: Connection) -> UnitOfWork | None:
    return _units.get(conn)


def execute(conn: Connection, statement: Executable, params: dict[str, Any]) -> None:
    """Write one row: into the connection's unit of work if one is open, else at once."""
    unit = _units.get(conn)
    if unit is None:
        conn.execute(statement, params)
    else:
        unit.add(statement, params)


@contextmanager
def collecting(conn: Connection) -> Iterator[UnitOfWork]:
    """Collect the writes of the block; flush them when it ends without an exception."""
    unit = _units[conn] = UnitOfWork()
    try:
        yield unit
        unit.flush(conn)
    finally:
        _units.pop(conn, None)


@contextmanager
def savepoint(conn: Connection) -> Iterator[None]:
    """A database savepoint that also forgets the rows collected inside it when the block raises.

    Issued on the driver connection (sqlite3 and psycopg both have `execute`): SQLAlchemy's
    `begin_nested` costs about as much bookkeeping as the pipeline's real work for one message.
    Savepoints nest (a counter per connection names them); the enclosing transaction is SQLAlchemy's.
    """
    unit = _units.get(conn)
    mark = unit.mark() if unit is not None else None
    depth = _depths.get(conn, 0)
    name = f"hub_sp_{depth}"
    driver = conn.connection.driver_connection
    driver.execute(f"SAVEPOINT {name}")
    _depths[conn] = depth + 1
    try:
        yield
    except BaseException:
        _depths[conn] = depth
        if unit is not None and mark is not None:
            unit.rollback_to(mark)
        try:
            driver.execute(f"ROLLBACK TO SAVEPOINT {name}")
            driver.execute(f"RELEASE SAVEPOINT {name}")
        except Exception:  # noqa: BLE001 - the connection is gone; the enclosing transaction fails anyway
            pass
        raise
    _depths[conn] = depth
    driver.execute(f"RELEASE SAVEPOINT {name}")
