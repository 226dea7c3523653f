"""On SQLite the embedded consumer does the pipeline's work outside the single write lock, then checks
and writes under it. Speculation may only move work, never change an outcome: a message processed
meanwhile by someone else is not delivered twice, and whatever must write at once (opening a case)
is done under the lock as before."""

from __future__ import annotations

import json
import threading

import pytest
import sqlalchemy as sa

from hub import pipeline
from hub.store import db
from hub.endpoints import ingress
from hub.store import unit_of_work
from hub.runtime import Hub
from hub.store.tables import deliveries, message_events, messages
from hub.transport import Item
from hub.transport.embedded import EmbeddedTransport
from tests.conftest import JOBCENTER, PROVIDER, agency_sample, encode, provider_sample, send


def handler_for(hub: Hub):  # noqa: ANN201
    return pipeline.consumer(hub)


def a_case(hub: Hub) -> str:
    """An assignment from the Jobcenter to the provider; the provider's own case id."""
    send(hub, JOBCENTER, "agency-xml", agency_sample("zuweisung.anmeldung.1020"))
    with db.read(hub.engine) as conn:
        body = conn.execute(
            sa.select(deliveries.c.body).where(deliveries.c.recipient == PROVIDER, deliveries.c.message_type == "zuweisung.anmeldung.1020")
        ).scalar_one()
    return json.loads(body)["body"]["caseId"]


def accept(hub: Hub, sender: str, fmt: str, data: dict) -> str:
    media = {"agency-xml": "application/xml", "provider-json": "application/json"}[fmt]
    return ingress.accept(hub, hub.partners[sender], encode(hub, fmt, data), media).id


def reports_to_jobcenter(hub: Hub) -> int:
    with db.read(hub.engine) as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(deliveries).where(
                deliveries.c.recipient == JOBCENTER, deliveries.c.message_type == "teilnahme.mitwirkung.2040"
            )
        ).scalar_one()


@pytest.fixture
def transport(hub: Hub) -> EmbeddedTransport:
    assert isinstance(hub.transport, EmbeddedTransport) and db.is_sqlite(hub.engine), "speculation is for the embedded default"
    return hub.transport


def test_a_report_is_processed_while_another_writer_holds_the_lock(hub: Hub, transport: EmbeddedTransport) -> None:
    case_id = a_case(hub)
    accept(hub, PROVIDER, "provider-json", provider_sample("teilnahme.mitwirkung.2040", case_id))
    items = transport.claim("pipeline", lambda *a: None)
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with db.write(hub.engine):
            holding.set()
            release.wait(30)

    other = threading.Thread(target=writer)
    other.start()
    try:
        assert holding.wait(10)
        result: list = []
        worker = threading.Thread(target=lambda: result.append(transport._speculate(items, handler_for(hub))))
        worker.start()
        worker.join(20)
        assert not worker.is_alive(), "the speculative pass waited for the write lock"
    finally:
        release.set()
        other.join(10)
    spec = result[0]
    assert spec is not None and spec.done == items and spec.left == [], "the report should have been processed speculatively"
    assert reports_to_jobcenter(hub) == 0, "a speculative pass wrote to the database"
    assert transport._commit(items, handler_for(hub), spec) == [True]
    assert reports_to_jobcenter(hub) == 1


def test_a_message_that_opens_a_case_is_left_for_the_write_lock(hub: Hub, transport: EmbeddedTransport) -> None:
    message_id = accept(hub, JOBCENTER, "agency-xml", agency_sample("zuweisung.anmeldung.1020"))
    items = transport.claim("pipeline", lambda *a: None)
    spec = transport._speculate(items, handler_for(hub))
    assert spec is not None and spec.done == [] and spec.left == items, "opening a case writes at once: it must wait for the lock"
    assert transport._commit(items, handler_for(hub), spec) == [True]
    with db.read(hub.engine) as conn:
        assert conn.execute(sa.select(messages.c.status).where(messages.c.id == message_id)).scalar_one() == "routed"


def test_a_message_processed_meanwhile_is_not_delivered_twice(hub: Hub, transport: EmbeddedTransport) -> None:
    case_id = a_case(hub)
    message_id = accept(hub, PROVIDER, "provider-json", provider_sample("teilnahme.mitwirkung.2040", case_id))
    items = transport.claim("pipeline", lambda *a: None)
    spec = transport._speculate(items, handler_for(hub))
    assert spec is not None and spec.done == items
    # another worker (its claim came back after a visibility timeout) processes the message first
    transport.speculate = False
    try:
        assert transport.process(Item(items[0].id, "pipeline", items[0].payload, 2), handler_for(hub))
    finally:
        transport.speculate = True
    assert transport._commit(items, handler_for(hub), spec) == [True]
    assert reports_to_jobcenter(hub) == 1, "the speculative pass's stale delivery was written as well"
    with db.read(hub.engine) as conn:
        queued = conn.execute(
            sa.select(sa.func.count()).select_from(message_events).where(
                message_events.c.message_id == message_id, message_events.c.event == "queued"
            )
        ).scalar_one()
    assert queued == 2, "history: one delivery to the Jobcenter and one quittung, each recorded once"


def test_a_read_only_block_refuses_writes_before_they_run(hub: Hub) -> None:
    with db.read(hub.engine) as conn, unit_of_work.read_only(conn):
        assert conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one() == 0
        with pytest.raises(unit_of_work.NeedsWriter):
            conn.execute(sa.delete(messages))
    with db.write(hub.engine) as conn:  # the connection went back to the pool usable
        conn.execute(sa.delete(messages))


def test_a_batch_reads_its_cases_and_fingerprints_in_one_statement_each(hub: Hub, transport: EmbeddedTransport) -> None:
    """pipeline.prefetch reads ahead for the whole batch; a duplicate inside the batch is still caught."""
    case_id = a_case(hub)
    reports = [provider_sample("teilnahme.mitwirkung.2040", case_id, facts=f"Bericht {i}") for i in range(5)]
    again = provider_sample("teilnahme.mitwirkung.2040", case_id, facts="Bericht 0")  # same content, new UUID
    for data in [*reports, again]:
        accept(hub, PROVIDER, "provider-json", data)
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        statements.append(statement)

    items = transport.claim("pipeline", lambda *a: None)
    assert len(items) == 6
    sa.event.listen(hub.engine, "before_cursor_execute", seen)
    try:
        assert transport.process_batch(items, handler_for(hub)) == [True] * 6
    finally:
        sa.event.remove(hub.engine, "before_cursor_execute", seen)
    case_reads = [s for s in statements if "FROM cases" in s]
    fingerprint_reads = [s for s in statements if s.startswith("SELECT") and "report_fingerprints" in s]
    assert len(case_reads) == 1, f"one case read for the batch, not {len(case_reads)}"
    assert len(fingerprint_reads) == 1, f"one fingerprint read for the batch, not {len(fingerprint_reads)}"
    assert reports_to_jobcenter(hub) == 5, "the repeated report inside the batch was delivered again"
    with db.read(hub.engine) as conn:
        statuses = sorted(conn.execute(sa.select(messages.c.status).where(messages.c.message_type == "teilnahme.mitwirkung.2040")).scalars())
    assert statuses == ["duplicate"] + ["routed"] * 5
