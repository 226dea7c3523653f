"""The real services for integration tests: a fresh PostgreSQL database and a fresh RabbitMQ vhost per test.

Isolation: each test gets `CREATE DATABASE hub_test_<random>` on the server of HUB_TEST_PG_URL and a
vhost `hub_test_<random>` on the broker of HUB_TEST_AMQP_URL (created through the management HTTP API,
or `rabbitmqctl` where the API is not enabled); both are dropped afterwards. A vhost is a complete
namespace (exchanges, queues, permissions), so tests cannot collide even when they run in parallel.

When a service is unreachable the test is skipped -- unless HUB_REQUIRE_SERVICES=1 (CI, see .ci/run),
in which case it fails with a sentence saying what is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit

import httpx
import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("HUB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("HUB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
RABBITMQ_API = os.environ.get("HUB_TEST_RABBITMQ_API", "http://127.0.0.1:15672")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("postgresql+psycopg", "postgresql"))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


#: seconds a test waits for a service that is not reachable right now (another suite on this machine may
#: be in the middle of its own RabbitMQ stop_app/start_app fault test); a service found down stays down
SERVICE_WAIT = float(os.environ.get("HUB_TEST_SERVICE_WAIT", "30"))
_found_down: set[str] = set()


def _wait_reachable(service: str, url: str, default_port: int) -> bool:
    if service in _found_down:
        return False
    deadline = time.time() + SERVICE_WAIT
    while not _reachable(url, default_port):
        if time.time() > deadline:
            _found_down.add(service)
            return False
        time.sleep(0.5)
    return True


def require(service: str, ok: bool, how: str) -> None:
    if ok:
        return
    message = f"{service} is not reachable ({how})"
    if os.environ.get("HUB_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}; HUB_REQUIRE_SERVICES=1 demands it (start it: see .ci/run)", pytrace=False)
    pytest.skip(message)


def require_postgres() -> None:
    require("PostgreSQL", _wait_reachable("PostgreSQL", PG_URL, 5432), PG_URL)


def require_rabbitmq() -> None:
    require("RabbitMQ", _wait_reachable("RabbitMQ", AMQP_URL, 5672), AMQP_URL)


def unique(prefix: str = "hub_test_") -> str:
    return prefix + uuid.uuid4().hex[:12]


# -- PostgreSQL -------------------------------------------------------------------------------------
def _admin_engine() -> sa.Engine:
    return sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def create_database() -> str:
    """A new empty database; returns its URL."""
    name = unique()
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return str(sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False))


def drop_database(url: str) -> None:
    name = sa.engine.make_url(url).database
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


@contextmanager
def postgres_database() -> Iterator[str]:
    require_postgres()
    url = create_database()
    try:
        yield url
    finally:
        from hub.store import db

        db.dispose_all()
        drop_database(url)


# -- RabbitMQ ---------------------------------------------------------------------------------------
def _credentials() -> tuple[str, str]:
    parts = urlsplit(AMQP_URL)
    return parts.username or "guest", parts.password or "guest"


def management_api_available() -> bool:
    try:
        return httpx.get(f"{RABBITMQ_API}/api/overview", auth=_credentials(), timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def _rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([ctl, *args], check=True, capture_output=True, timeout=60)


def create_vhost() -> str:
    """A new vhost the test user may use fully; returns the amqp URL that selects it."""
    deadline = time.time() + SERVICE_WAIT
    while True:  # the broker may be restarting (a fault test elsewhere): try again for a while
        try:
            return _create_vhost()
        except Exception:  # noqa: BLE001
            if time.time() > deadline:
                raise
            time.sleep(1.0)


def _create_vhost() -> str:
    vhost = unique()
    user, _ = _credentials()
    if management_api_available():
        auth = _credentials()
        httpx.put(f"{RABBITMQ_API}/api/vhosts/{quote(vhost, safe='')}", auth=auth, timeout=10).raise_for_status()
        httpx.put(
            f"{RABBITMQ_API}/api/permissions/{quote(vhost, safe='')}/{quote(user, safe='')}",
            json={"configure": ".*", "write": ".*", "read": ".*"}, auth=auth, timeout=10,
        ).raise_for_status()
    else:
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    parts = urlsplit(AMQP_URL)
    return f"{parts.scheme}://{parts.netloc}/{quote(vhost, safe='')}"


def delete_vhost(url: str) -> None:
    from urllib.parse import unquote

    vhost = unquote(urlsplit(url).path[1:])
    try:
        if management_api_available():
            httpx.delete(f"{RABBITMQ_API}/api/vhosts/{quote(vhost, safe='')}", auth=_credentials(), timeout=30)
        else:
            _rabbitmqctl("delete_vhost", vhost)
    except Exception:  # noqa: BLE001 - a left-over vhost must not fail the test that used it
        pass


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    require_rabbitmq()
    url = create_vhost()
    try:
        yield url
    finally:
        delete_vhost(url)


def broker_queue_settled(amqp_url: str, queue: str) -> bool:
    """True when `queue` in the vhost of `amqp_url` holds nothing: no message ready, none delivered and
    still unacknowledged. The proof that a redelivered copy (after a kill, a broker restart, an outage)
    has been processed and acked, so that a test may count deliveries for duplicates now.

    Ready messages are counted by the broker itself (passive declare); unacknowledged ones only the
    management API knows (where it is not enabled, only the ready count is checked).
    """
    from urllib.parse import unquote

    import pika

    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ready = connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()
    if ready or not management_api_available():
        return ready == 0
    vhost = unquote(urlsplit(amqp_url).path[1:])
    try:
        r = httpx.get(f"{RABBITMQ_API}/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}", auth=_credentials(), timeout=10)
        r.raise_for_status()
    except httpx.HTTPError:  # the management API comes back a moment after the broker (a restart): not settled yet
        return False
    info = r.json()
    # the statistics appear a moment after the queue does: absent, they prove nothing yet
    return "messages_unacknowledged" in info and info["messages_unacknowledged"] == 0 and info.get("messages_ready", 0) == 0
