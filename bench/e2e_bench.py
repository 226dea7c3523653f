"""End-to-end benchmark of the hub through its HTTP API (not part of the test suite).

For each backend (the embedded default: SQLite + database-backed queue; and RabbitMQ + PostgreSQL)
it starts the hub as real processes, assigns one case, then

0. warm-up: a few hundred reports, not measured (each process compiles its contracts on first use);
1. throughput: posts N provider reports with C concurrent clients as fast as they are accepted and
   waits until every report is in the recipient's queue -> end-to-end messages/s, HTTP accept latency
   p50/p99, end-to-end latency p50/p99 (request sent -> in the recipient's queue). The recipient's
   queue is, on the embedded default, the Jobcenter's inbox (a committed delivery row); on RabbitMQ,
   the Jobcenter consumes its own AMQP queue (profile `delivery: amqp`): a message counts when the
   benchmark's consumer receives it there, i.e. after the broker confirmed it to the hub;
2. accept latency at a fixed offered rate (open loop, default 1,000 messages/s for 5 s) -> p50/p99;
3. peak memory: the sum of the peak RSS (VmHWM) of the hub's processes.

In the same run it measures the raw reference rates on the same machine -- PostgreSQL single-row
commits/s, SQLite (WAL) single-row commits/s, pika publishes with a confirm each per second (to a
quorum queue, like the hub's), and the interpreter's speed on a fixed loop of JSON and dict work
(the hub is CPU-bound in Python on 2 cores) -- so each result is also a ratio that holds across machines.

    .venv/bin/python bench/e2e_bench.py --messages 5000 --clients 32
    .venv/bin/python bench/e2e_bench.py --backends embedded --messages 2000 --api-procs 2

Needs PostgreSQL (HUB_TEST_PG_URL) and RabbitMQ (HUB_TEST_AMQP_URL, management API on :15672) for
the amqp-postgres backend; it creates and drops its own database and vhost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import httpx
import pika
import psycopg
import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.store import db  # noqa: E402
from hub.canonical import Message  # noqa: E402
from hub.config import Settings  # noqa: E402
from hub.partners import issue_token  # noqa: E402
from hub.runtime import Hub  # noqa: E402
from hub.samples import samples  # noqa: E402
from hub.store.tables import deliveries, messages  # noqa: E402

PG_URL = os.environ.get("HUB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("HUB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
RABBITMQ_API = os.environ.get("HUB_TEST_RABBITMQ_API", "http://127.0.0.1:15672")
JOBCENTER, PROVIDER = "jobcenter-musterstadt", "traeger-bildungswerk"
REPORT = "teilnahme.mitwirkung.2040"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- services ---------------------------------------------------------------------------------------
@contextmanager
def pg_database() -> Iterator[str]:
    name = f"hub_bench_{os.getpid()}_{int(time.time())}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        db.dispose_all()
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def vhost() -> Iterator[str]:
    name = f"hub_bench_{os.getpid()}_{int(time.time())}"
    auth = ("guest", "guest")
    httpx.put(f"{RABBITMQ_API}/api/vhosts/{name}", auth=auth).raise_for_status()
    httpx.put(f"{RABBITMQ_API}/api/permissions/{name}/guest", json={"configure": ".*", "write": ".*", "read": ".*"}, auth=auth).raise_for_status()
    try:
        yield AMQP_URL.rstrip("/") + "/" + name
    finally:
        httpx.delete(f"{RABBITMQ_API}/api/vhosts/{name}", auth=auth)


# -- reference rates ----------------------------------------------------------------------------------
def pg_commits_per_s(seconds: float = 3.0) -> float:
    with psycopg.connect(PG_URL.replace("postgresql+psycopg", "postgresql")) as conn:
        conn.execute("CREATE TEMP TABLE bench_commit (id serial primary key, payload text)")
        conn.commit()
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            conn.execute("INSERT INTO bench_commit (payload) VALUES (%s)", ("x" * 100,))
            conn.commit()
            n += 1
        return n / (time.perf_counter() - start)


def sqlite_commits_per_s(seconds: float = 3.0) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "ref.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT)")
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (payload) VALUES (?)", ("x" * 100,))
            conn.execute("COMMIT")
            n += 1
        conn.close()
        return n / (time.perf_counter() - start)


def python_loops_per_s(seconds: float = 3.0) -> float:
    """The interpreter's speed on this machine, single-threaded: a fixed loop of the kind of work the
    hub does per message (a small JSON document through json, dicts, strings). On 2 cores the hub is
    CPU-bound in Python, so its rates follow this reference across machines far more closely than
    they follow the database's commit rate (which depends on the disk)."""
    doc = {"header": {"messageUuid": "6f1c1b9e-3a4e-4c7e-9a55-0d2b8c1f2e11", "messageType": "teilnahme.mitwirkung.2040", "version": "1.0"},
           "body": {"caseId": "F-0123456789AB", "event": "unentschuldigtes_fehlen", "eventDate": "2026-11-30", "facts": "x" * 120}}
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            back = json.loads(json.dumps(doc))
            renamed = {k.lower(): (v.upper() if isinstance(v, str) else v) for k, v in back["body"].items()}
            n += len(renamed) > 0
    return n / (time.perf_counter() - start)


def pika_confirmed_publishes_per_s(amqp_url: str, seconds: float = 3.0) -> float:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = connection.channel()
    ch.queue_declare("bench.reference", durable=True, arguments={"x-queue-type": "quorum"})
    ch.confirm_delivery()
    body = json.dumps({"message_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ"}).encode()
    props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        ch.basic_publish("", "bench.reference", body, props, mandatory=True)
        n += 1
    rate = n / (time.perf_counter() - start)
    ch.queue_delete("bench.reference")
    connection.close()
    return rate


# -- the hub under test -----------------------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children = task.read_text().split()
        except FileNotFoundError:
            continue
        for child in children:
            out += _tree(int(child))
    return out


def peak_rss_mb(pids: list[int]) -> float:
    total = 0
    for root in pids:
        for pid in _tree(root):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
            except FileNotFoundError:
                pass
    return total / 1024


def _cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes (not their trees)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def cpu_by_part(cluster: "Cluster") -> dict[str, float]:
    """CPU seconds used so far by each part of the system under test: the hub's API and worker
    processes, the benchmark client (this process), PostgreSQL and RabbitMQ (all their processes)."""
    parts: dict[str, list[int]] = {"api": [], "worker": [], "client": [os.getpid()], "postgresql": [], "rabbitmq": []}
    for proc, role in zip(cluster.procs, cluster.roles):
        parts[role] += _tree(proc.pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if comm.startswith("postgres"):
                parts["postgresql"].append(int(entry.name))
            elif comm in ("beam.smp", "epmd", "erl_child_setup"):
                parts["rabbitmq"].append(int(entry.name))
    return {name: _cpu_seconds(pids) for name, pids in parts.items()}


class Cluster:
    def __init__(self, env: dict[str, str], api_procs: int, worker_procs: int, threads: int, log: Path) -> None:
        self.env, self.api_procs, self.worker_procs, self.threads, self.log = env, api_procs, worker_procs, threads, log
        self.port = free_port()
        self.procs: list[subprocess.Popen] = []
        #: "api" or "worker" per process in `procs`
        self.roles: list[str] = []

    def start(self) -> None:
        env = {**os.environ, **self.env}
        out = open(self.log, "ab")
        role = "api" if self.worker_procs else "all"
        cmd = [sys.executable, "-m", "hub.cli", "serve", "--port", str(self.port), "--role", role, "--workers", str(self.api_procs), "--threads", str(self.threads)]
        self.procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=out))
        self.roles.append("api")
        for _ in range(self.worker_procs):
            cmd = [sys.executable, "-m", "hub.cli", "worker", "--role", "all", "--threads", str(self.threads)]
            self.procs.append(subprocess.Popen(cmd, env={**env, "HUB_AUTO_MIGRATE": "false"}, cwd=ROOT, stdout=out, stderr=out))
            self.roles.append("worker")
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    time.sleep(1.0)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the hub did not become ready; see {self.log}")

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


class RawHttp:
    """One keep-alive HTTP/1.1 connection on asyncio streams: the load generator's client.

    httpx costs ~3 ms of CPU per request, on the same two cores as the hub: the benchmark would
    mostly measure its own client. This writes the request bytes and reads status, headers and a
    Content-Length body (~0.05 ms per request), like wrk or h2load would.
    """

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("the server closed the connection")
            status, length, close = int(status_line.split()[1]), 0, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection":
                    close = value.strip().lower() == "close"
            data = await self.reader.readexactly(length) if length else b""
            if close:
                self.close()
            return status, data
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.close()
            raise ConnectionError(str(exc)) from exc

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def post_all(url: str, token: str, bodies: list[bytes], clients: int, rate: float | None) -> tuple[list[float], dict[int, float], dict[int, str], float]:
    """Post every body; closed loop with `clients` connections, or open loop at `rate`/s. Returns latencies, send times."""
    latencies: list[float] = []
    errors: list[int] = []
    sent_at: dict[int, float] = {}
    ids: dict[int, str] = {}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    pool: asyncio.Queue[RawHttp] = asyncio.Queue()
    for _ in range(clients):
        pool.put_nowait(RawHttp(url, headers))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(bodies)):
        queue.put_nowait(i)
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        while True:
            start = time.perf_counter()  # before waiting for a connection: no coordinated omission
            sent_at[i] = time.time()
            conn = await pool.get()
            try:
                status, data = await conn.post("/v1/messages", bodies[i])
            except ConnectionError:
                errors.append(i)  # resent, like a partner would
                await asyncio.sleep(0.05)
                continue
            finally:
                pool.put_nowait(conn)
            if status in (200, 202):
                latencies.append(time.perf_counter() - start)
                ids[i] = json.loads(data)["id"]
                return
            await asyncio.sleep(0.05)

    if rate is None:
        async def worker() -> None:
            while not queue.empty():
                await one(queue.get_nowait())

        await asyncio.gather(*(worker() for _ in range(clients)))
    else:
        tasks = []
        for i in range(len(bodies)):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    while not pool.empty():
        pool.get_nowait().close()
    if errors:
        print(f"  {len(errors)} requests failed at the HTTP level and were resent", file=sys.stderr)
    return latencies, sent_at, ids, elapsed


class QueueWatch:
    """Consumes the recipient's own AMQP queue and notes when each hub message arrived there."""

    def __init__(self, amqp_url: str, queue: str) -> None:
        self.amqp_url, self.queue = amqp_url, queue
        self.arrived: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        ch = connection.channel()
        ch.basic_qos(prefetch_count=500)

        def on_message(_ch: Any, method: Any, props: Any, _body: bytes) -> None:
            self.arrived.setdefault(props.headers["hub-message-id"], time.time())
            if method.delivery_tag % 100 == 0:
                ch.basic_ack(method.delivery_tag, multiple=True)

        while not self.stop.is_set():
            try:
                ch.basic_consume(self.queue, on_message)
                break
            except pika.exceptions.ChannelClosedByBroker:  # not declared yet
                ch = connection.channel()
                connection.sleep(0.2)
        while not self.stop.is_set():
            connection.process_data_events(time_limit=0.2)
        connection.close()


def contracts_with_amqp_delivery(workdir: Path, partner_id: str) -> Path:
    target = workdir / "contracts"
    if not target.exists():
        shutil.copytree(ROOT / "contracts", target)
        path = target / "partners" / f"{partner_id}.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["delivery"] = "amqp"
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target


def run_backend(name: str, env: dict[str, str], args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    settings = Settings(database_url=env["HUB_DATABASE_URL"], broker_url=env["HUB_BROKER_URL"], contracts_dir=Path(env["HUB_CONTRACTS_DIR"]))
    hub = Hub(settings)
    hub.migrate()
    with db.write(hub.engine) as conn:
        tokens = {p: issue_token(conn, p) for p in (JOBCENTER, PROVIDER)}
    worker_procs = args.worker_procs if name != "embedded" else args.embedded_worker_procs
    cluster = Cluster(env, args.api_procs, worker_procs, args.threads, workdir / f"{name}.log")
    cluster.start()
    url = f"http://127.0.0.1:{cluster.port}"
    try:
        # one case, assigned by the Jobcenter, that every report refers to
        assignment = samples("agency-xml", fresh=True)["zuweisung.anmeldung.1020"]
        xml = hub.adapter("agency-xml").encode(Message.build(assignment["header"], assignment["body"]))
        with httpx.Client(base_url=url, timeout=30) as c:
            r = c.post("/v1/messages", content=xml, headers={"Authorization": f"Bearer {tokens[JOBCENTER]}", "Content-Type": "application/xml"})
            assert r.status_code == 202, r.text
            deadline = time.time() + 30
            case_id = None
            while case_id is None and time.time() < deadline:
                inbox = c.get("/v1/inbox", headers={"Authorization": f"Bearer {tokens[PROVIDER]}"}).json()["deliveries"]
                case_id = next((d["body"]["body"]["caseId"] for d in inbox if d["message_type"] == "zuweisung.anmeldung.1020"), None)
                time.sleep(0.1)
        assert case_id, "the assignment did not reach the provider"

        def bodies(n: int, tag: str) -> list[bytes]:
            out = []
            for i in range(n):
                data = samples("provider-json", fresh=True, case_id=case_id)[REPORT]
                data["body"]["facts"] = f"Bericht {tag} {i}"
                out.append(hub.adapter("provider-json").encode(Message.build(data["header"], data["body"])))
            return out

        watch = None
        if name != "embedded":
            watch = QueueWatch(env["HUB_BROKER_URL"], f"hub.partner.{JOBCENTER}")
            watch.thread.start()

        def wait_delivered(ids: list[str], timeout: float) -> dict[str, float]:
            deadline = time.time() + timeout
            while watch is not None:
                done = {i: watch.arrived[i] for i in ids if i in watch.arrived}
                if len(done) >= len(ids) or time.time() > deadline:
                    return done
                time.sleep(0.1)
            while True:
                with db.read(hub.engine) as conn:
                    rows = conn.execute(
                        sa.select(deliveries.c.message_id, deliveries.c.created_at).where(
                            deliveries.c.recipient == JOBCENTER, deliveries.c.message_type == REPORT, deliveries.c.message_id.in_(ids)
                        )
                    ).all()
                if len(rows) >= len(ids) or time.time() > deadline:
                    return {r.message_id: db.aware(r.created_at).timestamp() for r in rows}
                time.sleep(0.25)

        # 0. warm-up (not measured)
        _, _, warm_ids, _ = asyncio.run(post_all(url, tokens[PROVIDER], bodies(args.warmup, "w"), args.clients, None))
        assert len(wait_delivered(list(warm_ids.values()), 120)) == len(warm_ids), "the warm-up did not arrive"
        # 1. throughput, closed loop
        batch = bodies(args.messages, "t")
        cpu_before = cpu_by_part(cluster)
        t_start = time.time()
        latencies, sent, ids, _ = asyncio.run(post_all(url, tokens[PROVIDER], batch, args.clients, None))
        done = wait_delivered(list(ids.values()), 300)
        t_end = max(done.values()) if done else time.time()
        cpu_after = cpu_by_part(cluster)
        e2e = [done[ids[i]] - sent[i] for i in ids if ids[i] in done]
        result: dict[str, Any] = {
            "messages": args.messages,
            "delivered": len(done),
            "e2e_msgs_per_s": round(len(done) / (t_end - t_start), 1),
            "accept_ms_p50": round(pct(latencies, 50) * 1000, 1),
            "accept_ms_p99": round(pct(latencies, 99) * 1000, 1),
            "e2e_ms_p50": round(pct(e2e, 50) * 1000, 1),
            "e2e_ms_p99": round(pct(e2e, 99) * 1000, 1),
            # CPU per delivered message, by part (the closed-loop phase, including waiting for the
            # last delivery): what each message costs on this machine, and where
            "cpu_ms_per_msg": {
                part: round((cpu_after[part] - cpu_before[part]) * 1000 / max(len(done), 1), 3)
                for part in cpu_after
                if cpu_after[part] - cpu_before[part] > 0 or part in ("api", "worker")
            },
        }
        # 2. accept latency at a fixed offered rate (open loop)
        offered = bodies(int(args.rate * args.rate_seconds), "r")
        latencies, _, rate_ids, elapsed = asyncio.run(post_all(url, tokens[PROVIDER], offered, 256, args.rate))
        wait_delivered(list(rate_ids.values()), 300)
        result.update(
            {
                f"accept_ms_p50_at_{int(args.rate)}_per_s": round(pct(latencies, 50) * 1000, 1),
                f"accept_ms_p99_at_{int(args.rate)}_per_s": round(pct(latencies, 99) * 1000, 1),
                "offered_rate_achieved_per_s": round(len(offered) / elapsed, 1),
                "peak_rss_mb": round(peak_rss_mb([p.pid for p in cluster.procs]), 1),
                "processes": f"api x{args.api_procs}" + (f" + worker x{worker_procs}" if worker_procs else " (role all)"),
            }
        )
        with db.read(hub.engine) as conn:
            result["not_routed"] = conn.execute(
                sa.select(sa.func.count()).select_from(messages).where(messages.c.status != "routed")
            ).scalar_one()
        return result
    finally:
        if watch is not None:
            watch.stop.set()
        cluster.stop()
        hub.close()
        db.dispose_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered rate for the accept-latency phase, messages/s")
    parser.add_argument("--rate-seconds", type=float, default=5.0)
    parser.add_argument("--api-procs", type=int, default=1, help="hub serve --workers")
    parser.add_argument("--worker-procs", type=int, default=1, help="separate `hub worker` processes (amqp-postgres)")
    parser.add_argument("--embedded-worker-procs", type=int, default=0, help="separate `hub worker` processes on the embedded default (0: `serve` runs the workers)")
    parser.add_argument("--threads", type=int, default=1, help="pipeline threads per process")
    parser.add_argument("--warmup", type=int, default=300, help="reports sent (and not measured) before the runs")
    parser.add_argument("--backends", default="embedded,amqp-postgres")
    parser.add_argument("--json", action="store_true", help="print the report as JSON only")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(), "loadavg_at_start": os.getloadavg()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "reference": {},
        "results": {},
    }
    base_env = {"HUB_CONTRACTS_DIR": str(ROOT / "contracts"), "HUB_LOG_FORMAT": "json", "HUB_LOG_LEVEL": "warning"}
    backends = args.backends.split(",")
    report["reference"]["python_loops_per_s"] = round(python_loops_per_s())
    report["reference"]["sqlite_commits_per_s"] = round(sqlite_commits_per_s())
    if "amqp-postgres" in backends:
        report["reference"]["postgres_commits_per_s"] = round(pg_commits_per_s())
    for name in backends:
        if name == "embedded":
            env = {**base_env, "HUB_DATABASE_URL": f"sqlite:///{workdir / 'hub.db'}", "HUB_BROKER_URL": "embedded"}
            report["results"][name] = run_backend(name, env, args, workdir)
        elif name == "amqp-postgres":
            with pg_database() as pg, vhost() as amqp:
                report["reference"]["pika_confirmed_publishes_per_s"] = round(pika_confirmed_publishes_per_s(amqp))
                contracts = contracts_with_amqp_delivery(workdir, JOBCENTER)  # the Jobcenter consumes its own queue
                env = {**base_env, "HUB_DATABASE_URL": pg, "HUB_BROKER_URL": amqp, "HUB_CONTRACTS_DIR": str(contracts)}
                report["results"][name] = run_backend(name, env, args, workdir)
        else:
            parser.error(f"unknown backend {name}")
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    ref = report["reference"]
    for name, r in report["results"].items():
        base = ref["sqlite_commits_per_s"] if name == "embedded" else ref["postgres_commits_per_s"]
        r["ratio_e2e_to_db_commits"] = round(r["e2e_msgs_per_s"] / base, 3)
        r["ratio_e2e_to_python_loops"] = round(r["e2e_msgs_per_s"] / ref["python_loops_per_s"], 4)
        if name == "amqp-postgres":
            r["ratio_e2e_to_confirmed_publishes"] = round(r["e2e_msgs_per_s"] / ref["pika_confirmed_publishes_per_s"], 3)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(json.dumps(report, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
