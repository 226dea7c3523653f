"""Nothing lost, nothing twice: kill -9 the hub in the middle of a flow, restart it, count.

The client behaves as partners must under at-least-once: a message whose 202/200 it did not see is
sent again (same message UUID). After the restart every report reaches the Jobcenter exactly once.
"""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import sqlalchemy as sa

from hub.store import db
from hub.store.tables import deliveries, messages
from tests.conftest import JOBCENTER, PROVIDER, LiveHub, encode, outbox_rows, provider_sample, wait_until
from tests.test_end_to_end import assign_case

N = 300


def test_kill_9_mid_flow_loses_nothing_and_duplicates_nothing(live_hub: LiveHub) -> None:
    case_id = assign_case(live_hub)
    # restart slowed down, so the kill lands with messages claimed and transactions open in the pipeline
    live_hub.stop()
    live_hub.env["HUB_FAULT_PIPELINE_DELAY"] = "0.02"
    live_hub.start()
    bodies = [encode(live_hub.hub, "provider-json", provider_sample("teilnahme.mitwirkung.2040", case_id, facts=f"Bericht {i}")) for i in range(N)]
    accepted: dict[int, str] = {}
    lock = threading.Lock()

    def send(indices: list[int]) -> None:
        with httpx.Client(base_url=live_hub.url, headers={"Authorization": f"Bearer {live_hub.tokens[PROVIDER]}"}, timeout=5) as c:
            for i in indices:
                try:
                    r = c.post("/v1/messages", content=bodies[i], headers={"Content-Type": "application/json"})
                except httpx.HTTPError:
                    continue  # the hub died under us: this one is resent after the restart
                if r.status_code in (200, 202):
                    with lock:
                        accepted[i] = r.json()["id"]

    senders = [threading.Thread(target=send, args=(list(range(k, N, 4)),)) for k in range(4)]
    for t in senders:
        t.start()
    wait_until(lambda: len(accepted) >= N // 2, 60, lambda: f"half of the {N} messages accepted ({len(accepted)} are)", interval=0.01)
    live_hub.kill9()
    for t in senders:
        t.join()
    killed_at = len(accepted)
    assert killed_at < N, "the hub was killed too late to test anything"
    with db.read(live_hub.hub.engine) as conn:
        in_flight = conn.execute(sa.select(sa.func.count()).select_from(messages).where(messages.c.status == "received")).scalar_one()
    assert in_flight > 0, "the kill did not hit the pipeline mid-flow"

    live_hub.env["HUB_FAULT_PIPELINE_DELAY"] = "0"

    live_hub.start()
    send([i for i in range(N) if i not in accepted])  # at-least-once from the partner's side
    assert len(accepted) == N, f"{N - len(accepted)} messages were never accepted"

    def routed() -> int:
        with db.read(live_hub.hub.engine) as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(messages).where(messages.c.status == "routed")).scalar_one()

    wait_until(lambda: routed() >= N, 60, lambda: f"all {N} messages routed ({routed()} are)", interval=0.25)
    # a claim the kill left stale comes back after the visibility timeout and is processed again: only
    # when the outbox is empty has every claim been processed and acked, so a duplicate would show now
    wait_until(lambda: outbox_rows(live_hub.hub) == 0, 60, lambda: f"the outbox to drain ({outbox_rows(live_hub.hub)} items left)", interval=0.25)

    with db.read(live_hub.hub.engine) as conn:
        ids = list(set(accepted.values()))
        assert len(ids) == N, "two different messages were given one id"
        statuses = Counter(r.status for r in conn.execute(sa.select(messages.c.status).where(messages.c.id.in_(ids))))
        per_message = Counter(
            r.message_id
            for r in conn.execute(
                sa.select(deliveries.c.message_id).where(
                    deliveries.c.message_type == "teilnahme.mitwirkung.2040", deliveries.c.recipient == JOBCENTER
                )
            )
        )
    assert statuses == {"routed": N}, f"after the restart not every message was processed: {statuses} (killed after {killed_at} accepted)"
    missing = [m for m in ids if per_message[m] == 0]
    doubled = {m: n for m, n in per_message.items() if n > 1}
    assert not missing, f"{len(missing)} accepted messages never reached the Jobcenter"
    assert not doubled, f"messages delivered more than once: {doubled}"
    with live_hub.client(JOBCENTER) as jc:
        # each feedback also opened a task for the Jobcenter (steuerung.aufgabe): its system takes
        # those first, so that the reports fit into one page of the inbox
        while tasks := [d for d in jc.get("/v1/inbox", params={"limit": 500}).json()["deliveries"] if d["message_type"] == "steuerung.aufgabe.5010"]:
            for task in tasks:
                assert jc.post(f"/v1/inbox/{task['id']}/ack").status_code == 200
        inbox = jc.get("/v1/inbox", params={"limit": 500}).json()["deliveries"]
    facts = Counter(d["body"].split("<fk:sachverhalt>")[1].split("<")[0] for d in inbox if d["message_type"] == "teilnahme.mitwirkung.2040")
    assert len(facts) == N and set(facts.values()) == {1}, "the Jobcenter's inbox must hold each report exactly once"
