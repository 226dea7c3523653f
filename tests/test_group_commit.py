"""Concurrent accepts share transactions (hub.group_commit): each is stored and queued exactly once,
a resend inside the same group still answers with the first id, and a failing write fails alone."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from hub import db, ingress
from hub.runtime import Hub
from hub.samples import samples
from hub.tables import messages, outbox
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
