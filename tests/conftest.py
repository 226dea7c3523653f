"""Shared fixtures: an isolated hub per test (own SQLite file), and a live `hub serve` subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from hub.store import db
from hub.canonical import Message
from hub.config import Settings
from hub.partners import issue_token
from hub.runtime import Hub
from hub.samples import samples
from hub.store.tables import outbox

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "contracts"
JOBCENTER, MUNICIPAL, PROVIDER, OTHER_PROVIDER, OPERATOR = (
    "jobcenter-musterstadt",
    "kreis-musterland",
    "traeger-bildungswerk",
    "traeger-lernwerkstatt",
    "betrieb",
)
PARTNERS = (JOBCENTER, MUNICIPAL, PROVIDER, OTHER_PROVIDER, OPERATOR)


def wait_until(predicate: Callable[[], T], timeout: float, message: str | Callable[[], str], interval: float = 0.05) -> T:
    """Poll `predicate` until it returns something truthy, and return that; or fail saying what was awaited.

    The one way tests wait: on a condition that proves the work in question is done (a drained outbox,
    a status reached, a later sentinel processed), never on a fixed sleep. `message` names what was
    awaited (a callable: evaluated at the timeout, to report the state found).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            what = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def outbox_rows(hub: Hub, queue: str | None = None) -> int:
    """Items still in the hub's outbox (of `queue`): queued, claimed and not yet acked, or not yet relayed."""
    import sqlalchemy as sa

    query = sa.select(sa.func.count()).select_from(outbox)
    if queue is not None:
        query = query.where(outbox.c.queue == queue)
    with db.read(hub.engine) as conn:
        return conn.execute(query).scalar_one()


class FakeClock:
    """An injected clock for time-based behaviour (token cache, visibility timeout): time passes when the test says."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def own_log_config() -> Iterator[None]:
    """Each test starts from the log configuration the one before it found: a command run in-process
    (`hub ...` through typer's runner) configures structlog for the whole process."""
    import structlog

    before = structlog.get_config()
    yield
    structlog.configure(**before)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: the backends a parametrized `hub_env` runs on: the embedded default, and the production path
BACKENDS = [
    pytest.param("embedded", id="embedded-sqlite"),
    pytest.param("amqp-postgres", id="amqp-postgres", marks=[pytest.mark.rabbitmq, pytest.mark.postgres]),
]
#: test modules whose tests run once per backend
BOTH_BACKENDS = ("tests.test_end_to_end", "tests.test_case_chain_story", "tests.test_deadline_scheduler", "tests.test_alert_notifications_once")
DATABASES = [
    pytest.param("embedded", id="sqlite"),
    pytest.param("embedded-postgres", id="postgres", marks=[pytest.mark.postgres]),
]
#: test modules whose tests run once per database (the embedded queue on SQLite, then on PostgreSQL)
BOTH_DATABASES = ("tests.test_audit_log", "tests.test_master_data_conflicts", "tests.test_controlling", "tests.test_flows", "tests.test_message_search", "tests.test_flow_rollup_crash")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "hub_env" in metafunc.fixturenames and metafunc.module.__name__ in BOTH_BACKENDS:
        metafunc.parametrize("hub_env", BACKENDS, indirect=True)
    elif "hub_env" in metafunc.fixturenames and metafunc.module.__name__ in BOTH_DATABASES:
        metafunc.parametrize("hub_env", DATABASES, indirect=True)


def embedded_env(tmp_path: Path) -> dict[str, str]:
    """Environment of an isolated embedded hub: its own SQLite file, the repo's contracts, fast redelivery."""
    return {
        "HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}",
        "HUB_BROKER_URL": "embedded",
        "HUB_CONTRACTS_DIR": str(CONTRACTS),
        "HUB_VISIBILITY_TIMEOUT": "3",
        # tests sweep deadlines themselves, with a clock of their choosing; the scheduler's own
        # tests switch the worker's scheduler on
        "HUB_DEADLINE_INTERVAL": "0",
        # likewise the alerts: their own tests switch the worker's evaluation on
        "HUB_ALERT_INTERVAL": "0",
        "HUB_LOG_FORMAT": "json",
        "HUB_LOG_LEVEL": "warning",
        "HUB_MAX_MESSAGE_BYTES": str(256 * 1024),
        "HUB_TEST_LOG": str(tmp_path / "hub.log"),
    }


def hub_for(env: dict[str, str], **overrides: Any) -> Hub:
    """A migrated in-process Hub for `env` (the test's own view of the database and broker)."""
    settings = Settings(
        database_url=env["HUB_DATABASE_URL"],
        broker_url=env["HUB_BROKER_URL"],
        contracts_dir=Path(env["HUB_CONTRACTS_DIR"]),
        visibility_timeout=float(env["HUB_VISIBILITY_TIMEOUT"]),
        max_message_bytes=int(env["HUB_MAX_MESSAGE_BYTES"]),
        poll_interval=0.02,
        **{"deadline_interval": float(env.get("HUB_DEADLINE_INTERVAL", "0")), "alert_interval": float(env.get("HUB_ALERT_INTERVAL", "0")), **overrides},
    )
    hub = Hub(settings)
    hub.migrate()
    return hub


def issue_tokens(hub: Hub) -> dict[str, str]:
    """A fresh bearer token for every demo partner."""
    with db.write(hub.engine) as conn:
        return {p: issue_token(conn, p) for p in PARTNERS}


@pytest.fixture
def hub_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for an isolated hub: its own database file, the repo's contracts, fast redelivery.

    Parametrized with "amqp-postgres" (see BOTH_BACKENDS): its own PostgreSQL database and RabbitMQ
    vhost instead, both dropped afterwards (tests/integration/services.py).
    """
    env = embedded_env(tmp_path)
    if getattr(request, "param", "embedded") == "embedded":
        yield env
        return
    from tests.integration.services import postgres_database, rabbitmq_vhost

    if request.param == "embedded-postgres":
        with postgres_database() as database_url:
            yield {**env, "HUB_DATABASE_URL": database_url}
        return
    with postgres_database() as database_url, rabbitmq_vhost() as broker_url:
        yield {**env, "HUB_DATABASE_URL": database_url, "HUB_BROKER_URL": broker_url}


@pytest.fixture
def hub(hub_env: dict[str, str]) -> Iterator[Hub]:
    h = hub_for(hub_env)
    yield h
    h.close()
    db.dispose_all()


@pytest.fixture
def tokens(hub: Hub) -> dict[str, str]:
    return issue_tokens(hub)


def encode(hub: Hub, fmt: str, data: dict[str, Any]) -> bytes:
    return hub.adapter(fmt).encode(Message.build(data["header"], data["body"]))


def agency_sample(message_type: str, **body: Any) -> dict[str, Any]:
    data = samples("agency-xml", fresh=True)[message_type]
    data["body"].update(body)
    return data


def provider_sample(message_type: str, case_id: str, **body: Any) -> dict[str, Any]:
    data = samples("provider-json", fresh=True, case_id=case_id)[message_type]
    data["body"].update(body)
    return data


class ManagedProcess:
    """kill -9 and orderly stop for the hub subprocesses the tests start (`proc` set by `start`)."""

    proc: subprocess.Popen | None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 15) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()


@dataclass
class LiveHub(ManagedProcess):
    """A `hub serve` subprocess: the hub as partners see it, over real HTTP."""

    env: dict[str, str]
    hub: Hub
    tokens: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    #: extra arguments for `hub serve` (e.g. ["--role", "api"])
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, **self.env}
        log = open(self.env.get("HUB_TEST_LOG") or Path(self.env["HUB_DATABASE_URL"].removeprefix("sqlite:///")).with_suffix(".log"), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", "--port", str(self.port), *self.args],
            env=env, cwd=ROOT, stdout=log, stderr=log,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub serve exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()  # a hub that never became healthy must not outlive the test
        raise RuntimeError("hub serve did not become healthy within 30 s")


    def client(self, partner: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[partner]}"} if partner else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
def live_hub(hub_env: dict[str, str], hub: Hub, tokens: dict[str, str]) -> Iterator[LiveHub]:
    live = LiveHub(hub_env, hub, tokens)
    live.start()
    yield live
    live.stop()


def post(client: httpx.Client, body: bytes, fmt: str) -> httpx.Response:
    media = "application/xml" if fmt == "agency-xml" else "application/json"
    return client.post("/v1/messages", content=body, headers={"Content-Type": media})


def wait_for(client: httpx.Client, message_type: str, timeout: float = 20.0, count: int = 1) -> list[dict[str, Any]]:
    """Poll the caller's inbox until `count` deliveries of `message_type` are waiting."""
    found: list[dict[str, Any]] = []

    def arrived() -> list[dict[str, Any]]:
        found[:] = [d for d in client.get("/v1/inbox", params={"limit": 500}).json()["deliveries"] if d["message_type"] == message_type]
        return found if len(found) >= count else []

    return wait_until(arrived, timeout, lambda: f"{count} {message_type} in the inbox (found {len(found)})", interval=0.1)


def drain(hub: Hub) -> None:
    """Run the pipeline over everything queued, in this thread (in-process tests)."""
    from hub import pipeline

    while items := hub.transport.claim("pipeline", lambda *a: None):
        for item in items:
            assert hub.transport.process(item, lambda conn, it: pipeline.handle(hub, conn, it)), "a pipeline item failed"


def send(hub: Hub, sender: str, fmt: str, data: dict[str, Any]) -> str:
    """Accept one message from `sender` as ingress does, then drain the pipeline; returns its id."""
    from hub.endpoints import ingress

    accepted = ingress.accept(hub, hub.partners[sender], encode(hub, fmt, data), hub.adapter(fmt).media_type)
    drain(hub)
    return accepted.id


def new_uuid() -> str:
    return str(uuid.uuid4())
