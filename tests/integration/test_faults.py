"""Fault injection on the real services: nothing lost, nothing twice, and the hub heals by itself.

The production path as deployed: `hub serve --role api` plus separate `hub worker` processes on
RabbitMQ (own vhost) and PostgreSQL (own database). Clients behave as partners must under
at-least-once: a message whose 202/200 they did not see is sent again with the same message UUID.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from hub.store import db
from hub.store.tables import dead_letters, deliveries, messages, outbox
from tests.conftest import JOBCENTER, PROVIDER, LiveHub, encode, free_port, hub_for, issue_tokens, outbox_rows, provider_sample, wait_until
from tests.integration.conftest import WorkerProcess
from tests.integration.services import broker_queue_settled
from tests.test_end_to_end import assign_case

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


class Sender:
    """Concurrent partner clients that post each body until it is accepted (202/200), recording every status."""

    def __init__(self, live: LiveHub, bodies: list[bytes], clients: int = 8, pace: float = 0.0) -> None:
        self.live, self.bodies, self.clients, self.pace = live, bodies, clients, pace
        self.accepted: dict[int, str] = {}
        self.statuses: Counter = Counter()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.stop = threading.Event()

    def _run(self, indices: list[int]) -> None:
        headers = {"Authorization": f"Bearer {self.live.tokens[PROVIDER]}", "Content-Type": "application/json"}
        with httpx.Client(base_url=self.live.url, headers=headers, timeout=10) as client:
            pending = list(indices)
            while pending and not self.stop.is_set():
                i = pending[0]
                try:
                    r = client.post("/v1/messages", content=self.bodies[i])
                    status = r.status_code
                except httpx.HTTPError:
                    status = -1
                with self.lock:
                    self.statuses[status] += 1
                    if status in (200, 202):
                        self.accepted[i] = r.json()["id"]
                if status in (200, 202):
                    pending.pop(0)
                    if self.pace:
                        time.sleep(self.pace)
                else:
                    time.sleep(0.1)  # the hub said "later": send the same message again

    def start(self) -> Sender:
        n = len(self.bodies)
        self.threads = [threading.Thread(target=self._run, args=(list(range(k, n, self.clients)),)) for k in range(self.clients)]
        for t in self.threads:
            t.start()
        return self

    def join(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.time()))
        self.stop.set()


def count_status(hub, status: str) -> int:  # type: ignore[no-untyped-def]
    with db.read(hub.engine) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(messages).where(messages.c.status == status)).scalar_one()


def assert_exactly_once(hub, accepted: dict[int, str], n: int) -> None:  # type: ignore[no-untyped-def]
    assert len(accepted) == n, f"{n - len(accepted)} messages were never accepted"
    ids = set(accepted.values())
    assert len(ids) == n, "two different messages were given one id"
    wait_until(lambda: count_status(hub, "routed") >= n, 120, f"{n} messages routed")
    # a copy the fault made the broker deliver again is processed again, and a duplicate would show
    # only then: count once nothing is left to deliver -- the outbox relayed, the pipeline queue empty
    # with nothing unacknowledged
    pipeline = hub.transport.topology.queue("pipeline")
    wait_until(
        lambda: outbox_rows(hub) == 0 and broker_queue_settled(hub.settings.broker_url, pipeline),
        60,
        lambda: f"the outbox ({outbox_rows(hub)} rows) and {pipeline} to be drained",
        interval=0.2,
    )
    with db.read(hub.engine) as conn:
        statuses = Counter(r.status for r in conn.execute(sa.select(messages.c.status).where(messages.c.id.in_(ids))))
        reports = Counter(
            r.message_id
            for r in conn.execute(
                sa.select(deliveries.c.message_id).where(deliveries.c.recipient == JOBCENTER, deliveries.c.message_type == "teilnahme.mitwirkung.2040")
            )
        )
        receipts = Counter(
            r.message_id
            for r in conn.execute(
                sa.select(deliveries.c.message_id).where(deliveries.c.recipient == PROVIDER, deliveries.c.message_type == "administration.quittung.0020")
            )
        )
        left = conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one()
        dead = conn.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar_one()
    assert dead == 0, f"{dead} items became dead letters: a fault must never count as a failed attempt"
    assert statuses == {"routed": n}, f"not every message was processed: {statuses}"
    assert not [m for m in ids if reports[m] != 1], f"reports not delivered exactly once: {Counter(reports[m] for m in ids)}"
    assert not [m for m in ids if receipts[m] != 1], "receipts not written exactly once"
    assert left == 0, f"{left} rows are still in the outbox"


def start_cluster(env: dict[str, str], workers: list[WorkerProcess] | None = None):  # type: ignore[no-untyped-def]
    hub = hub_for(env)
    live = LiveHub(env, hub, issue_tokens(hub), args=["--role", "api"])
    live.start()
    workers = workers if workers is not None else [WorkerProcess(env, role="all")]
    for w in workers:
        w.start()
    return hub, live, workers


def stop_cluster(hub, live: LiveHub, workers: list[WorkerProcess]) -> None:  # type: ignore[no-untyped-def]
    for w in workers:
        w.stop()
    live.stop()
    hub.close()


def reports(live: LiveHub, case_id: str, n: int) -> list[bytes]:
    return [encode(live.hub, "provider-json", provider_sample("teilnahme.mitwirkung.2040", case_id, facts=f"Bericht {i}")) for i in range(n)]


def test_kill_9_a_worker_with_1000_messages_in_flight_then_every_message_is_delivered_exactly_once(amqp_pg_env: dict[str, str]) -> None:
    n = 1000
    slow = {"HUB_FAULT_PIPELINE_DELAY": "0.01"}  # hold each message's transaction open, so the kill lands mid-batch
    workers = [WorkerProcess(amqp_pg_env, role="pipeline", extra_env=slow), WorkerProcess(amqp_pg_env, role="pipeline", extra_env=slow)]
    hub, live, workers = start_cluster(amqp_pg_env, workers)
    try:
        case_id = assign_case(live)
        sender = Sender(live, reports(live, case_id, n)).start()
        wait_until(lambda: count_status(hub, "routed") >= 150, 60, "the workers to get going")
        victim = workers[0]
        victim.kill9()
        routed_at_kill = count_status(hub, "routed")
        sender.join()
        assert routed_at_kill < n, "the worker was killed too late to test anything"
        assert count_status(hub, "received") > 0, "the kill must leave messages in flight"
        victim.extra_env = {}
        victim.start()  # the restarted worker and the survivor finish the job
        assert_exactly_once(hub, sender.accepted, n)
    finally:
        stop_cluster(hub, live, workers)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def test_rabbitmq_stopped_and_restarted_mid_flow_workers_reconnect_and_nothing_is_lost(amqp_pg_env: dict[str, str]) -> None:
    n = 800
    hub, live, workers = start_cluster(amqp_pg_env)
    try:
        case_id = assign_case(live)
        # slow senders (about 40/s), so the flow outlasts stop_app (which takes seconds itself)
        sender = Sender(live, reports(live, case_id, n), clients=2, pace=0.05).start()
        wait_until(lambda: len(sender.accepted) >= 40, 60, "the first messages to be accepted")
        try:
            _rabbitmqctl("stop_app")
            during = len(sender.accepted)
            wait_until(lambda: len(sender.accepted) - during >= 10, 30, "the API to accept messages (into the outbox) while the broker is away")
            accepted_while_down = len(sender.accepted) - during
            with live.client(None) as anon:
                ready = anon.get("/readyz")
        finally:
            _rabbitmqctl("start_app")
            _rabbitmqctl("await_startup")
        sender.pace = 0.0
        assert accepted_while_down > 0, "the API must keep accepting (into the outbox) while the broker is away"
        assert ready.status_code == 503 and ready.json()["checks"]["broker"] is False, "readiness must report the broker down"
        sender.join()
        assert sender.statuses[500] == 0, f"the API answered 500: {sender.statuses}"
        assert_exactly_once(hub, sender.accepted, n)
    finally:
        stop_cluster(hub, live, workers)


class TcpProxy:
    """A cuttable TCP proxy in front of PostgreSQL: `cut()` drops every connection and refuses new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.open()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self.lock:
            self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                if listener is not self.listener:  # cut while this one was being accepted: drop it too
                    client.close()
                    upstream.close()
                    continue
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        assert self.listener is not None
        with self.lock:
            self.listener.close()
            self.listener = None
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def close(self) -> None:
        if self.listener is not None:
            self.cut()


def test_postgres_unavailable_api_answers_503_loses_nothing_and_recovers_by_itself(amqp_pg_env: dict[str, str], tmp_path: Path) -> None:
    n = 300
    url = sa.engine.make_url(amqp_pg_env["HUB_DATABASE_URL"])
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    env = {**amqp_pg_env, "HUB_DATABASE_URL": url.set(port=proxy.port).render_as_string(hide_password=False)}
    observer = hub_for(amqp_pg_env)  # the test's own view of the database, not through the proxy
    hub, live, workers = start_cluster(env)
    try:
        case_id = assign_case(live)
        sender = Sender(live, reports(live, case_id, n), clients=4, pace=0.02).start()
        wait_until(lambda: len(sender.accepted) >= 60, 60, "the first messages to be accepted")
        refused_before_cut = sender.statuses[503]
        proxy.cut()
        # the senders are told 503 once the API notices the database is gone; from then on it is away for all
        wait_until(lambda: sender.statuses[503] > refused_before_cut, 30, "the first 503 to a sender after the database went away")
        before = dict(sender.statuses)
        with live.client(PROVIDER) as pr, live.client(None) as anon:
            down = pr.post("/v1/messages", content=reports(live, case_id, 1)[0], headers={"Content-Type": "application/json"})
            inbox = pr.get("/v1/inbox")
            ready = anon.get("/readyz")
        wait_until(lambda: sender.statuses[503] > before.get(503, 0), 30, "the senders to be told 503 again while the database is away")
        refused_while_down = sender.statuses[503] - before.get(503, 0)
        proxy.open()
        sender.join()
        assert down.status_code == 503, f"with the database away the API must answer 503, not {down.status_code}: {down.text}"
        assert down.headers["content-type"].startswith("application/problem+json") and "Retry-After" in down.headers
        assert inbox.status_code == 503 and ready.status_code == 503
        assert refused_while_down > 0, "the senders must have been told 503 while the database was away"
        assert sender.statuses[500] == 0, f"the API answered 500: {sender.statuses}"
        assert_exactly_once(observer, sender.accepted, n)
        with live.client(None) as anon:
            assert anon.get("/readyz").status_code == 200, "the hub must be ready again by itself"
    finally:
        stop_cluster(hub, live, workers)
        observer.close()
        proxy.close()
