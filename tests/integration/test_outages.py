"""Database outages and bad values: the hub answers what is true, and answers in time.

503 with Retry-After means "the database cannot serve right now, send it again" -- so it is given
only when that is so (a lost, refused or unanswered connection, an exhausted pool), never for a
request the database refuses on its merits (that one would fail the same way forever, and the partner
would retry forever). A database that accepts TCP but never answers must not hang the hub: requests
get their 503 within seconds, /readyz says not ready, and when the database is back the hub serves
again by itself. Nothing answered 202/200 is lost, and a message resent after a 503 is stored once.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hub.store import db
from hub.api.app import create_app, error_answer
from hub.runtime import Hub
from hub.store.tables import messages
from tests.conftest import JOBCENTER, PROVIDER, LiveHub, agency_sample, embedded_env, encode, free_port, hub_for, issue_tokens, provider_sample

#: deadlines for these tests (HUB_DB_CONNECT_TIMEOUT, HUB_DB_REQUEST_TIMEOUT): short, so they run fast
CONNECT_TIMEOUT, REQUEST_TIMEOUT = 2.0, 3.0


# -- helpers ----------------------------------------------------------------------------------------
class StandIn:
    """A TCP stand-in for PostgreSQL that can fall silent.

    Speaking, it forwards to the real server. `silence()` turns it into a black hole -- what a frozen
    host or a half-open network looks like to a client: new connections are accepted and never
    answered, and the connections already open stop carrying anything, for good (the kernel still
    acknowledges every byte, so TCP keepalives cannot tell). `speak()` forwards new connections again.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.silent = threading.Event()
        self.stop = threading.Event()
        self.frozen: set[int] = set()  # ids of connections opened before the last silence
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, real_url: str) -> str:
        return sa.engine.make_url(real_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def silence(self) -> None:
        with self.lock:
            self.frozen.update(id(s) for s in self.sockets)
            self.silent.set()

    def speak(self) -> None:
        self.silent.clear()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                s.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.sockets.append(client)
                if self.silent.is_set():
                    continue  # accepted, never answered
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
                self.sockets.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b, id(client)), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, conn_id: int) -> None:
        try:
            while data := src.recv(65536):
                if conn_id in self.frozen:
                    self.stop.wait()  # swallow it and hold the connection open, unanswered
                    return
                dst.sendall(data)
        except OSError:
            pass


@pytest.fixture
def short_deadlines(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """HUB_DB_CONNECT_TIMEOUT and HUB_DB_REQUEST_TIMEOUT of a few seconds, for this test only."""
    monkeypatch.setenv("HUB_DB_CONNECT_TIMEOUT", str(CONNECT_TIMEOUT))
    monkeypatch.setenv("HUB_DB_REQUEST_TIMEOUT", str(REQUEST_TIMEOUT))
    db.limits.cache_clear()
    yield
    db.dispose_all()
    monkeypatch.undo()
    db.limits.cache_clear()


@pytest.fixture
def stand_in(pg_url: str) -> Iterator[StandIn]:
    real = sa.engine.make_url(pg_url)
    proxy = StandIn((real.host or "127.0.0.1", real.port or 5432))
    yield proxy
    proxy.close()


def finishes_within(seconds: float, what: str, fn: Callable[[], Any]) -> Any:
    """fn()'s result or exception -- or a test failure saying `what` still blocks after `seconds`."""
    outcome: Future = Future()

    def run() -> None:
        try:
            outcome.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    try:
        return outcome.result(seconds)
    except TimeoutError:
        pytest.fail(f"{what} still blocked after {seconds} s: it must give up and answer", pytrace=False)


def count_by_uuid(hub: Hub, sender: str, message_uuid: str) -> int:
    with db.read(hub.engine) as conn:
        query = sa.select(sa.func.count()).select_from(messages).where(messages.c.sender == sender, messages.c.message_uuid == message_uuid)
        return conn.execute(query).scalar_one()


def count_all(hub: Hub) -> int:
    with db.read(hub.engine) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()


def jobcenter_message(hub: Hub) -> tuple[bytes, str]:
    data = agency_sample("zuweisung.anmeldung.1020")
    return encode(hub, "agency-xml", data), str(data["header"]["message_uuid"]).lower()


def assert_503(r: httpx.Response, what: str) -> None:
    assert r.status_code == 503, f"{what}: expected 503, got {r.status_code}: {r.text}"
    assert r.headers["content-type"].startswith("application/problem+json"), f"{what}: a 503 is problem+json"
    assert r.headers.get("retry-after"), f"{what}: a 503 says when to retry (Retry-After)"


# -- what becomes a 503 -----------------------------------------------------------------------------
def _dbapi(cls: type, message: str, invalidated: bool = False) -> Exception:
    return cls("INSERT ...", {}, Exception(message), connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "exc, status",
    [
        pytest.param(_dbapi(OperationalError, "connection refused"), 503, id="connection refused"),
        pytest.param(_dbapi(InterfaceError, "the connection is closed"), 503, id="connection closed"),
        pytest.param(_dbapi(ProgrammingError, "server closed the connection", invalidated=True), 503, id="connection lost"),
        pytest.param(PoolTimeout("QueuePool limit of size 20 overflow 20 reached"), 503, id="pool exhausted"),
        pytest.param(_dbapi(DataError, "value too long for type character varying(64)"), 500, id="value too long"),
        pytest.param(_dbapi(IntegrityError, "duplicate key value"), 500, id="unique key"),
        pytest.param(_dbapi(ProgrammingError, "relation does not exist"), 500, id="programming error"),
    ],
)
def test_only_a_database_that_cannot_serve_is_answered_503(exc: Exception, status: int) -> None:
    """A 503 tells the partner to send again; for a value the database refuses that is a loop
    forever. Those are the hub's fault (input it should have refused) and a logged 500."""
    got, body, headers = error_answer(exc, "/v1/messages")
    assert got == status, f"{exc!r} must be answered {status}, not {got}"
    assert ("Retry-After" in headers) == (status == 503), f"Retry-After belongs to 503 only: {headers}"
    assert "INSERT" not in json.dumps(body), "no SQL reaches the caller"


def test_an_exhausted_connection_pool_is_answered_503_not_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every pooled connection busy is "the database cannot serve right now", like an outage: the
    request is answered 503 with Retry-After, and served again once connections come back."""
    hub = hub_for(embedded_env(tmp_path), token_cache_seconds=0)
    tokens = issue_tokens(hub)
    monkeypatch.setattr(hub.engine.pool, "_timeout", 0.2)  # wait 0.2 s for a free connection, not 30
    held = []
    try:
        while True:  # take every connection the pool has
            try:
                held.append(hub.engine.connect())
            except PoolTimeout:
                break
        client = TestClient(create_app(hub, role="api"), raise_server_exceptions=False)
        auth = {"Authorization": f"Bearer {tokens[PROVIDER]}"}
        assert_503(client.get("/v1/inbox", headers=auth), "GET /v1/inbox with the pool exhausted")
        body, _ = jobcenter_message(hub)
        r = client.post("/v1/messages", content=body, headers={"Authorization": f"Bearer {tokens[JOBCENTER]}", "Content-Type": "application/xml"})
        assert_503(r, "POST /v1/messages with the pool exhausted")
    finally:
        for conn in held:
            conn.close()
    assert client.get("/v1/inbox", headers=auth).status_code == 200, "with connections back, the hub serves again"
    hub.close()
    db.dispose_all()


# -- the accept path has a deadline -----------------------------------------------------------------
def test_an_accept_that_cannot_be_committed_in_time_is_answered_503_and_never_stored_later(
    tmp_path: Path, short_deadlines: None
) -> None:
    """POST /v1/messages waits for its commit at most HUB_DB_REQUEST_TIMEOUT; a message still queued
    then is taken out of the queue, so the 503 is true: it was not stored, now or later."""
    hub = hub_for(embedded_env(tmp_path))
    tokens = issue_tokens(hub)
    client = TestClient(create_app(hub, role="api"), raise_server_exceptions=False)
    body, message_uuid = jobcenter_message(hub)
    headers = {"Authorization": f"Bearer {tokens[JOBCENTER]}", "Content-Type": "application/xml"}
    release = threading.Event()
    stuck = hub.group_commit.submit(lambda conn: release.wait(30))  # the writer is busy, as on a stuck database
    try:
        started = time.monotonic()
        r = finishes_within(REQUEST_TIMEOUT + 5, "POST /v1/messages behind a stuck commit", lambda: client.post("/v1/messages", content=body, headers=headers))
        elapsed = time.monotonic() - started
    finally:
        release.set()
    stuck.result(10)
    assert_503(r, "POST /v1/messages while the commit is stuck")
    assert elapsed < REQUEST_TIMEOUT + 2, f"the 503 came after {elapsed:.1f} s; the deadline is {REQUEST_TIMEOUT} s"
    assert "not stored" in r.json()["detail"], f"the partner learns that the message was not stored: {r.json()['detail']}"
    hub.group_commit.run(lambda conn: None)  # everything queued before has been written by now
    assert count_by_uuid(hub, JOBCENTER, message_uuid) == 0, "a message answered 503 'not stored' was stored after all"
    again = client.post("/v1/messages", content=body, headers=headers)
    assert again.status_code == 202, f"sent again, it is taken: {again.status_code} {again.text}"
    hub.close()


def test_a_write_whose_caller_gave_up_is_skipped_and_the_writer_keeps_going(tmp_path: Path) -> None:
    """A caller may cancel its queued write (the accept path does, at its deadline): the writer must
    then never run it -- and must not die of setting the result of a cancelled future."""
    hub = hub_for(embedded_env(tmp_path))
    release, taken = threading.Event(), threading.Event()
    ran: list[str] = []
    first = hub.group_commit.submit(lambda conn: taken.set() or release.wait(10))
    assert taken.wait(10), "the writer never took the first write"  # now it is stuck in it
    abandoned = hub.group_commit.submit(lambda conn: ran.append("abandoned"))
    assert abandoned.cancel(), "a write still queued can be cancelled"
    release.set()
    first.result(10)
    later = hub.group_commit.submit(lambda conn: ran.append("later") or "ok")
    try:
        assert later.result(10) == "ok"
    except TimeoutError:
        pytest.fail("the writer stopped writing after a cancelled write: every later accept would hang", pytrace=False)
    assert ran == ["later"], f"the cancelled write must not run: {ran}"
    hub.close()


# -- bad values on PostgreSQL -----------------------------------------------------------------------
def _long_correlation_id(hub: Hub, tokens: dict[str, str]) -> tuple[bytes, dict[str, str], str]:
    body, message_uuid = jobcenter_message(hub)
    headers = {"Authorization": f"Bearer {tokens[JOBCENTER]}", "Content-Type": "application/xml", "X-Correlation-ID": "c" * 65}
    return body, headers, message_uuid


def _overlong_message_uuid(hub: Hub, tokens: dict[str, str]) -> tuple[bytes, dict[str, str], str]:
    data = json.loads(encode(hub, "provider-json", provider_sample("teilnahme.mitwirkung.2040", "F-AAAABBBBCCCC")))
    data["header"]["messageUuid"] = "12345678-1234-1234-1234-1234-5678-9abc"  # 38 characters, 32 hex digits
    headers = {"Authorization": f"Bearer {tokens[PROVIDER]}", "Content-Type": "application/json"}
    return json.dumps(data).encode(), headers, data["header"]["messageUuid"]


@pytest.mark.postgres
@pytest.mark.parametrize(
    "build, status, names",
    [
        pytest.param(_long_correlation_id, 400, "X-Correlation-ID", id="X-Correlation-ID of 65 characters"),
        pytest.param(_overlong_message_uuid, 422, "UUID", id="message UUID of 38 characters"),
    ],
)
def test_a_value_too_long_for_its_column_is_refused_on_postgresql_not_answered_503(
    pg_url: str, tmp_path: Path, build: Callable, status: int, names: str
) -> None:
    """SQLite stores any length in a VARCHAR(64); PostgreSQL refuses it. The request must be refused
    as the partner's error on both (4xx naming what is wrong, nothing stored), never sent into an
    endless retry with 503."""
    hub = hub_for({**embedded_env(tmp_path), "HUB_DATABASE_URL": pg_url})
    tokens = issue_tokens(hub)
    client = TestClient(create_app(hub, role="api"), raise_server_exceptions=False)
    body, headers, _ = build(hub, tokens)
    r = client.post("/v1/messages", content=body, headers=headers)
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    assert r.headers["content-type"].startswith("application/problem+json") and "retry-after" not in r.headers
    assert names in r.text, f"the answer names what is wrong ({names}): {r.text}"
    assert count_all(hub) == 0, "a refused message was stored"
    hub.close()


# -- a PostgreSQL that never answers ----------------------------------------------------------------
@pytest.mark.postgres
def test_a_frozen_postgresql_connection_is_given_up_at_the_deadline_and_the_engine_heals(
    pg_url: str, stand_in: StandIn, short_deadlines: None
) -> None:
    """Inside `db.deadline(s)` no round trip to PostgreSQL waits past the deadline -- not on a pooled
    connection that went silent, not on a new one that is never answered -- and `is_outage` itself
    answers within seconds. The engine serves again when the server does."""
    engine = db.create(stand_in.url(pg_url))
    with db.read(engine) as conn:
        conn.exec_driver_sql("SELECT 1")  # a pooled connection, about to freeze
    stand_in.silence()

    def query() -> BaseException | None:
        try:
            with db.deadline(1.0), db.read(engine) as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            return exc
        return None

    started = time.monotonic()
    failure = finishes_within(1.0 + CONNECT_TIMEOUT + 5, "a query on a silent PostgreSQL", query)
    elapsed = time.monotonic() - started
    assert isinstance(failure, OperationalError), f"a silent database is an OperationalError, not {failure!r}"
    assert elapsed < 1.0 + CONNECT_TIMEOUT + 2, f"gave up after {elapsed:.1f} s (deadline 1 s + connect timeout {CONNECT_TIMEOUT} s)"
    assert finishes_within(10, "db.is_outage on a silent PostgreSQL", lambda: db.is_outage(engine, failure)), "a silent database is an outage"
    stand_in.speak()
    with db.deadline(5), db.read(engine) as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1, "the engine serves again once the server answers"
    engine.dispose()


@pytest.mark.postgres
def test_a_postgresql_that_never_answers_gets_503_within_seconds_and_the_hub_recovers_by_itself(
    pg_url: str, stand_in: StandIn, tmp_path: Path
) -> None:
    """`hub serve` in front of a PostgreSQL that accepts TCP and never answers: POST /v1/messages and
    GET /v1/inbox are answered 503 within seconds (not hung), /readyz says not ready within a few
    seconds; once the database answers again the same message is taken (stored once), and /readyz
    is ready -- without a restart."""
    env = {
        **embedded_env(tmp_path),
        "HUB_DATABASE_URL": stand_in.url(pg_url),
        "HUB_DB_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
        "HUB_DB_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
    }
    observer = hub_for({**env, "HUB_DATABASE_URL": pg_url})  # the test's own view, not through the stand-in
    live = LiveHub(env, observer, issue_tokens(observer), args=["--role", "api"])
    live.start()
    budget = REQUEST_TIMEOUT + CONNECT_TIMEOUT + 3
    try:
        with live.client(JOBCENTER) as jc, live.client(None) as anon:
            jc.timeout = anon.timeout = httpx.Timeout(budget + 10)
            before, before_uuid = jobcenter_message(observer)
            assert jc.post("/v1/messages", content=before, headers={"Content-Type": "application/xml"}).status_code == 202
            stand_in.silence()
            body, message_uuid = jobcenter_message(observer)
            post = timed(lambda: jc.post("/v1/messages", content=body, headers={"Content-Type": "application/xml"}), "POST /v1/messages")
            ready = timed(lambda: anon.get("/readyz"), "GET /readyz")
            inbox = timed(lambda: jc.get("/v1/inbox"), "GET /v1/inbox")
            stand_in.speak()
            resent = resend_until_taken(jc, body, timeout=30)
            ready_again = poll(lambda: anon.get("/readyz").status_code == 200, 15)
    finally:
        live.stop()
    for what, (r, elapsed) in {"POST /v1/messages": post, "GET /v1/inbox": inbox}.items():
        assert_503(r, f"{what} with the database silent")
        assert elapsed < budget, f"{what} answered after {elapsed:.1f} s; it must within {budget} s"
    assert ready[0].status_code == 503 and ready[0].json()["checks"]["database"] is False, f"/readyz: {ready[0].text}"
    assert ready[1] < 5, f"/readyz answered after {ready[1]:.1f} s; a probe needs an answer within a few seconds"
    assert resent.status_code in (200, 202), f"the database is back, the resend must be taken: {resent.status_code} {resent.text}"
    assert count_by_uuid(observer, JOBCENTER, message_uuid) == 1, "the message resent after a 503 must be stored exactly once"
    assert count_by_uuid(observer, JOBCENTER, before_uuid) == 1, "a message taken before the outage was lost"
    assert ready_again, "/readyz must be ready again by itself once the database answers"
    observer.close()


def timed(request: Callable[[], httpx.Response], what: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    try:
        r = request()
    except httpx.TimeoutException:
        pytest.fail(f"{what} hung with the database silent: no answer within {time.monotonic() - started:.0f} s", pytrace=False)
    return r, time.monotonic() - started


def resend_until_taken(client: httpx.Client, body: bytes, timeout: float) -> httpx.Response:
    """What a partner does after a 503: send the same message again until it is taken."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.post("/v1/messages", content=body, headers={"Content-Type": "application/xml"})
        if r.status_code in (200, 202) or time.monotonic() > deadline:
            return r
        time.sleep(0.5)


def poll(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False
