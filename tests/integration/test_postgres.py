"""PostgreSQL through psycopg 3: the same migrations as SQLite, and the database-backed queue shared by workers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.store import db
from hub.store import migrate
from hub.store.tables import message_events, metadata, outbox
from hub.transport.embedded import EmbeddedTransport

pytestmark = pytest.mark.postgres


def _schema_diff(url: str) -> list:
    migrate.upgrade(url)
    with db.get_engine(url).connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def test_the_same_alembic_migrations_build_the_same_schema_on_postgres_and_sqlite(pg_url: str, tmp_path: Path) -> None:
    assert db.get_engine(pg_url).dialect.driver == "psycopg", "PostgreSQL must be reached through psycopg 3"
    assert _schema_diff(pg_url) == [], "the migrations on PostgreSQL differ from hub/store/tables.py"
    assert _schema_diff(f"sqlite:///{tmp_path / 'hub.db'}") == [], "the migrations on SQLite differ from hub/store/tables.py"


def test_embedded_queue_on_postgres_is_shared_by_several_workers_with_skip_locked(pg_url: str) -> None:
    """Four competing consumers, 1,000 items: every item handled (committed) exactly once, all consumers took part."""
    migrate.upgrade(pg_url)
    engine = db.get_engine(pg_url)
    transport = EmbeddedTransport(engine, visibility_timeout=30, max_attempts=5, poll_interval=0.01)
    n = 1000
    with db.write(engine) as conn:
        for i in range(n):
            transport.publish(conn, "pipeline", {"message_id": str(i)})
    by_thread: Counter = Counter()

    def handler(conn: sa.Connection, item) -> None:  # type: ignore[no-untyped-def]
        conn.execute(message_events.insert().values(message_id=item.payload["message_id"], at=db.utcnow(), stage="test", event="handled"))
        by_thread[threading.current_thread().name] += 1
        time.sleep(0.001)  # let the claims interleave

    stop = threading.Event()
    workers = [threading.Thread(target=transport.consume, args=("pipeline", handler, lambda *a: None, stop), name=f"w{k}") for k in range(4)]
    for t in workers:
        t.start()
    deadline = time.time() + 60
    try:
        while time.time() < deadline:
            with db.read(engine) as conn:
                if conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one() == 0:
                    break
            time.sleep(0.1)
    finally:
        stop.set()
        transport.notify()
        for t in workers:
            t.join(10)
    with db.read(engine) as conn:
        handled = Counter(r.message_id for r in conn.execute(sa.select(message_events.c.message_id)))
    assert len(handled) == n and set(handled.values()) == {1}, f"{len(handled)} of {n} handled; twice: {[k for k, v in handled.items() if v > 1][:5]}"
    assert len(by_thread) == 4 and min(by_thread.values()) > 0, f"all four workers must share the queue: {dict(by_thread)}"


def test_collected_rows_are_copied_on_postgres_exactly_as_an_insert_would_write_them(pg_url: str) -> None:
    """The unit of work writes a batch's rows with COPY on PostgreSQL (hub.unit_of_work._copy): the
    stored rows equal what an executemany INSERT stores -- JSON, time zones, bytes, NULLs, column
    defaults -- and a unique violation is SQLAlchemy's IntegrityError, as the resend path expects."""
    from hub.store import unit_of_work
    from hub.store.tables import messages

    migrate.upgrade(pg_url)
    engine = db.get_engine(pg_url)
    at = db.utcnow()
    events = [{"message_id": f"M{i:03d}", "at": at, "stage": "test", "event": "e", "detail": {"n": i, "ä": ["x"]} if i % 2 else None} for i in range(6)]
    stored = [
        {"id": f"ID{i}", "sender": "p", "message_uuid": f"u{i}", "message_type": "t", "version": "1.0", "format": "f", "status": "received",
         "correlation_id": "c", "reference_uuid": None, "content_hash": "h", "raw": b"\x00\xffbytes", "created_at": at, "updated_at": at}
        for i in range(3)
    ]  # no "test": its column default (False) must be filled in
    inserts: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        inserts.append(statement) if statement.startswith("INSERT") else None

    insert_event, insert_message = message_events.insert(), messages.insert()  # built once, as the hub's writers do
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        with db.write(engine) as conn, unit_of_work.collecting(conn):
            for row in events:
                unit_of_work.execute(conn, insert_event, row)
            for row in stored:
                unit_of_work.execute(conn, insert_message, row)
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert inserts == [], "the collected rows went through INSERT, not COPY"
    with db.write(engine) as conn:  # the reference: the same rows through a plain executemany
        conn.execute(message_events.insert(), [{**row, "message_id": "X" + row["message_id"][1:]} for row in events])
    with db.read(engine) as conn:
        copied = conn.execute(sa.select(message_events.c.message_id, message_events.c.at, message_events.c.detail).where(message_events.c.message_id.like("M%")).order_by(message_events.c.message_id)).all()
        inserted = conn.execute(sa.select(message_events.c.message_id, message_events.c.at, message_events.c.detail).where(message_events.c.message_id.like("X%")).order_by(message_events.c.message_id)).all()
        raw = conn.execute(sa.select(messages.c.raw, messages.c.test).order_by(messages.c.id)).all()
    assert [(r.at, r.detail) for r in copied] == [(r.at, r.detail) for r in inserted], "COPY stored other values than INSERT"
    assert [r.at for r in copied] == [at] * 6 and copied[1].detail == {"n": 1, "ä": ["x"]}
    assert raw == [(b"\x00\xffbytes", False)] * 3, "bytes or the column default were not copied as stored by INSERT"
    with pytest.raises(sa.exc.IntegrityError):
        with db.write(engine) as conn, unit_of_work.collecting(conn):
            for row in stored[:2]:
                unit_of_work.execute(conn, insert_message, row)
