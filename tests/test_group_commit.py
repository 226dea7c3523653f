"""Concurrent accepts share transactions (hub.group_commit): each is stored and queued exactly once,
a resend inside the same group still answers with the first id, and a failing write fails alone."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from hub.store import db
from hub.endpoints import ingress
from hub.runtime import Hub
from hub.samples import samples
from hub.store.tables import messages, outbox
from tests.conftest import JOBCENTER, encode


def test_concurrent_accepts_and_resends_in_one_group_are_each_stored_once(hub: Hub) -> None:
    bodies = [encode(hub, "agency-xml", samples("agency-xml", fresh=True)["zuweisung.anmeldung.1020"]) for _ in range(15)]
    start = threading.Barrier(30)

    def send(body: bytes) -> ingress.Accepted:
        start.wait()  # all at once: the writer thread finds them queued together
        return ingress.accept(hub, hub.partners[JOBCENTER], body, "application/xml")

    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(send, bodies + bodies))  # every message twice, concurrently
    firsts, seconds = results[:15], results[15:]
    for a, b in zip(firsts, seconds):
        assert a.id == b.id, "a resend must answer with the first message's id"
        assert sorted([a.created, b.created]) == [False, True], "exactly one of the two sends creates the message"
    with db.read(hub.engine) as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()
        queued = conn.execute(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.queue == "pipeline")).scalar_one()
    assert (stored, queued) == (15, 15), f"stored {stored}, queued {queued}: each message must be stored and queued once"


def test_a_write_that_fails_fails_alone_and_the_group_commits(hub: Hub) -> None:
    group = hub.group_commit
    start = threading.Barrier(8)

    def write(n: int) -> int:
        def work(conn: sa.Connection) -> int:
            hub.transport.publish(conn, "group-test", {"n": n})
            if n == 3:
                raise ValueError("this write is refused")
            return n

        start.wait()
        return group.run(work)

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(write, n) for n in range(8)]
    with pytest.raises(ValueError):
        futures[3].result()
    assert [f.result() for i, f in enumerate(futures) if i != 3] == [0, 1, 2, 4, 5, 6, 7]
    with db.read(hub.engine) as conn:
        ns = sorted(r[0]["n"] for r in conn.execute(sa.select(outbox.c.payload).where(outbox.c.queue == "group-test")))
    assert ns == [0, 1, 2, 4, 5, 6, 7], f"the failed write's row must be gone and the others kept: {ns}"


def test_the_stored_message_is_logged_with_the_requests_id_and_partner(hub: Hub, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows of an accept are written on the group-commit thread; its log lines must still carry
    the request's id and partner, so one grep follows a request into the store."""
    import structlog
    from fastapi.testclient import TestClient

    from hub.api.app import create_app
    from hub.store import history

    capture = structlog.testing.LogCapture()
    before = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture], cache_logger_on_first_use=False)
    # the store's logger: an earlier in-process hub configured logging with loggers cached on first
    # use, which a later configure does not reach; a fresh proxy logs through the capture
    monkeypatch.setattr(history, "log", structlog.get_logger("hub"))
    try:
        client = TestClient(create_app(hub, role="api"))
        body = encode(hub, "agency-xml", samples("agency-xml", fresh=True)["zuweisung.anmeldung.1020"])
        headers = {"Authorization": f"Bearer {tokens[JOBCENTER]}", "Content-Type": "application/xml", "X-Request-ID": "req-4711"}
        assert client.post("/v1/messages", content=body, headers=headers).status_code == 202
    finally:
        structlog.configure(**before)
    stored = [e for e in capture.entries if e["event"] == "ingress.received"]
    assert stored, f"no ingress.received line was logged: {[e['event'] for e in capture.entries]}"
    assert stored[0].get("request_id") == "req-4711" and stored[0].get("partner") == JOBCENTER, f"the store's log line lost the request: {stored[0]}"
