"""The RabbitMQ transport (pika): guaranteed delivery on a real broker, same guarantees as the embedded one.

Topology (every name carries `HUB_AMQP_PREFIX`, default ``hub.``; exchanges and queues are durable):

```
outbox relay --(confirm)--> {p}work (direct) --key q--> {p}q                 quorum queue, one per hub queue
                                                        |  x-dead-letter-exchange = {p}dead
consumer: handler fails --(confirm)--> {p}retry (direct) --key q.<ms>--> {p}retry.q.<ms>  (TTL <ms>)
                                                        ^-- dead-letters back to {p}work / key q when the TTL ends
consumer: attempts exhausted -> dead_handler (DB) -> basic.reject -> {p}dead (direct) --key q--> {p}dead.q
delivery worker --(confirm)--> {p}partners (direct) --key <partner id>--> {p}partner.<partner id>   quorum
```

Publishing stays on the transactional outbox (`Transport.publish` inserts into the `outbox` table in
the caller's transaction); `hub.transport.relay.OutboxRelay` moves committed rows to `{p}work` with
publisher confirms and deletes a row only after its confirm. A crash between confirm and delete
publishes the row again: at-least-once, never lost; receivers are idempotent.

Consumers (competing, any number of threads/processes/hosts) use manual acks and a prefetch window.
They take every message the broker has handed over (up to the prefetch) as one batch, run the
handler for each in a SAVEPOINT of one database transaction, commit, and only then ack (one
``basic.ack multiple``). A handler that raises has its savepoint rolled back; the message is
re-published with confirm to a retry queue whose TTL brings it back (1 s, 2 s, 4 s, ... 60 s) and is
then acked. Attempts are counted in the ``x-hub-attempts`` header plus the quorum queue's
``x-delivery-count`` (redeliveries after a consumer died), so a message that keeps killing its
worker still ends as a dead letter after `HUB_MAX_ATTEMPTS`. When the database itself is away,
nothing counts as an attempt: the batch stays unacked and is retried when the database answers.

pika's BlockingConnection is not thread-safe: every thread opens its own connection. Connections are
re-established with exponential backoff and jitter (tenacity) whenever the broker goes away.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pika
import pika.exceptions
import sqlalchemy as sa
import structlog
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from sqlalchemy.engine import Engine
from tenacity import Retrying, retry_if_exception_type, wait_exponential, wait_random

from hub import db, unit_of_work
from hub.tables import dead_letters
from hub.transport.base import PIPELINE, DeadHandler, Handler, Item, Transport, prefetch

log = structlog.get_logger("hub.transport.amqp")
# pika logs every failed connection attempt as an ERROR with a traceback; the transport reports
# connection trouble itself (one structured line per retry), so only pika's critical lines remain
logging.getLogger("pika").setLevel(logging.CRITICAL)

#: the delays of the retry queues, milliseconds; attempt n waits RETRY_DELAYS_MS[n-1] (the last one repeats)
RETRY_DELAYS_MS = (1000, 2000, 4000, 8000, 16000, 32000, 60000)
#: connection-level failures after which a thread reconnects
AMQP_ERRORS = (pika.exceptions.AMQPError, ConnectionError, OSError)
WORK_QUEUES = (PIPELINE,)


class DatabaseUnavailable(Exception):
    """The database did not answer: retry the batch later, without counting an attempt."""


@dataclass(frozen=True)
class Topology:
    """The names of everything the hub declares on the broker."""

    prefix: str = "hub."

    @property
    def work(self) -> str:
        return f"{self.prefix}work"

    @property
    def retry(self) -> str:
        return f"{self.prefix}retry"

    @property
    def dead(self) -> str:
        return f"{self.prefix}dead"

    @property
    def partners(self) -> str:
        return f"{self.prefix}partners"

    def queue(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def retry_queue(self, name: str, delay_ms: int) -> str:
        return f"{self.prefix}retry.{name}.{delay_ms}ms"

    def dead_queue(self, name: str) -> str:
        return f"{self.prefix}dead.{name}"

    def partner_queue(self, partner_id: str) -> str:
        return f"{self.prefix}partner.{partner_id}"

    def declare(self, ch: BlockingChannel, queues: Iterable[str] = WORK_QUEUES) -> None:
        """Declare exchanges, work/retry/dead queues; idempotent (the same arguments every time)."""
        for exchange in (self.work, self.retry, self.dead, self.partners):
            ch.exchange_declare(exchange, "direct", durable=True)
        for name in queues:
            ch.queue_declare(
                self.queue(name),
                durable=True,
                arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": self.dead, "x-dead-letter-routing-key": name},
            )
            ch.queue_bind(self.queue(name), self.work, routing_key=name)
            ch.queue_declare(self.dead_queue(name), durable=True, arguments={"x-queue-type": "quorum"})
            ch.queue_bind(self.dead_queue(name), self.dead, routing_key=name)
            for delay in RETRY_DELAYS_MS:
                ch.queue_declare(
                    self.retry_queue(name, delay),
                    durable=True,
                    arguments={"x-message-ttl": delay, "x-dead-letter-exchange": self.work, "x-dead-letter-routing-key": name},
                )
                ch.queue_bind(self.retry_queue(name, delay), self.retry, routing_key=f"{name}.{delay}")

    def declare_partner(self, ch: BlockingChannel, partner_id: str) -> str:
        queue = self.partner_queue(partner_id)
        ch.exchange_declare(self.partners, "direct", durable=True)
        ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_bind(queue, self.partners, routing_key=partner_id)
        return queue


def retry_delay_ms(attempts: int) -> int:
    return RETRY_DELAYS_MS[min(max(attempts, 1), len(RETRY_DELAYS_MS)) - 1]


def _db_error_is_outage(engine: Engine, exc: BaseException) -> bool:
    """A database error means "database away" only if the database does not answer a trivial query now."""
    return isinstance(exc, DatabaseUnavailable) or db.is_outage(engine, exc)


class AmqpTransport(Transport):
    name = "amqp"
    #: the outbox is not the queue here: a relay moves it to the broker
    needs_relay = True
    pushes_to_partners = True

    def __init__(
        self,
        engine: Engine,
        url: str,
        *,
        visibility_timeout: float,
        max_attempts: int,
        poll_interval: float,
        prefix: str = "hub.",
        prefetch: int = 64,
        relay_batch: int = 500,
    ) -> None:
        super().__init__(engine, visibility_timeout=visibility_timeout, max_attempts=max_attempts, poll_interval=poll_interval)
        self.url = url
        self.topology = Topology(prefix)
        self.prefetch = prefetch
        self.relay_batch = relay_batch
        self._ready_cache: tuple[float, bool] = (0.0, False)
        #: partners whose queues every consumer declares on connect (profile `delivery: amqp`)
        self.partner_ids: list[str] = []

    # -- connections -------------------------------------------------------------------------------
    def parameters(self, purpose: str = "hub") -> pika.URLParameters:
        params = pika.URLParameters(self.url)
        params.heartbeat = 30
        params.blocked_connection_timeout = 60
        params.socket_timeout = 5
        params.connection_attempts = 1
        params.client_properties = {"connection_name": f"casechain-hub {purpose} pid={os.getpid()} {threading.current_thread().name}"}
        return params

    def connect(self, stop: threading.Event | None = None, purpose: str = "hub") -> BlockingConnection | None:
        """A new connection for the calling thread; retries with backoff until it works or `stop` is set."""
        stop = stop or threading.Event()
        retrying = Retrying(
            retry=retry_if_exception_type(AMQP_ERRORS),
            wait=wait_exponential(multiplier=0.2, max=5.0) + wait_random(0, 0.5),
            stop=lambda _state: stop.is_set(),
            sleep=stop.wait,
            before_sleep=lambda state: log.warning(
                "amqp.connect failed; retrying", purpose=purpose, attempt=state.attempt_number, error=repr(state.outcome.exception())
            ),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    if stop.is_set():
                        return None
                    return BlockingConnection(self.parameters(purpose))
        except AMQP_ERRORS:
            if stop.is_set():
                return None
            raise
        return None

    def management_url(self) -> str:
        """The management HTTP API of the broker in HUB_BROKER_URL (same host and credentials, port 15672)."""
        parts = urlsplit(self.url)
        scheme = "https" if parts.scheme == "amqps" else "http"
        return f"{scheme}://{parts.hostname or '127.0.0.1'}:15672"

    @property
    def vhost(self) -> str:
        path = urlsplit(self.url).path
        return unquote(path[1:]) if len(path) > 1 else "/"

    # -- consuming ---------------------------------------------------------------------------------
    def consume(self, queue: str, handler: Handler, dead_handler: DeadHandler, stop: threading.Event) -> None:
        while not stop.is_set():
            connection = None
            try:
                connection = self.connect(stop, purpose=f"consumer {queue}")
                if connection is None:
                    return
                self._consume_on(connection, queue, handler, dead_handler, stop)
            except AMQP_ERRORS as exc:
                log.warning("amqp.consumer lost its connection; reconnecting", queue=queue, error=repr(exc))
                stop.wait(0.5)
            except Exception as exc:  # noqa: BLE001 - never die: unacked messages come back, attempts are counted
                log.error("amqp.consumer failed; reconnecting", queue=queue, error=repr(exc))
                stop.wait(1.0)
            finally:
                if connection is not None and connection.is_open:
                    try:
                        connection.close()  # unacked messages go back to the queue
                    except Exception:  # noqa: BLE001
                        pass

    def _consume_on(self, connection: BlockingConnection, queue: str, handler: Handler, dead_handler: DeadHandler, stop: threading.Event) -> None:
        ch = connection.channel()
        self.topology.declare(ch)
        for partner_id in self.partner_ids:
            self.topology.declare_partner(ch, partner_id)
        ch.confirm_delivery()  # retries published from this channel wait for their confirm
        ch.basic_qos(prefetch_count=self.prefetch)
        buffer: list[tuple[Any, Any, bytes]] = []
        ch.basic_consume(self.topology.queue(queue), lambda _ch, method, props, body: buffer.append((method, props, body)))
        log.info("amqp.consuming", queue=self.topology.queue(queue), prefetch=self.prefetch)
        while not stop.is_set():
            connection.process_data_events(time_limit=0.5)  # returns as soon as messages arrived
            while buffer and not stop.is_set():
                batch = buffer[:]
                buffer.clear()
                self._process_batch(connection, ch, queue, batch, handler, dead_handler, stop)

    def _item(self, queue: str, props: Any, body: bytes) -> Item:
        headers = props.headers or {}
        attempts = int(headers.get("x-hub-attempts", 0)) + int(headers.get("x-delivery-count", 0)) + 1
        return Item(headers.get("x-hub-outbox-id", props.message_id), queue, json.loads(body), attempts)

    def _process_batch(self, connection: BlockingConnection, ch: BlockingChannel, queue: str, batch: list, handler: Handler, dead_handler: DeadHandler, stop: threading.Event) -> None:
        items = []
        for method, props, body in batch:
            try:
                items.append((method, props, body, self._item(queue, props, body)))
            except (ValueError, TypeError) as exc:  # not a hub message: park it, never loop on it
                log.error("unreadable message parked in the dead-letter queue", queue=queue, error=repr(exc), body=body[:200])
                ch.basic_reject(method.delivery_tag, requeue=False)
        if not items:
            return
        pause = 0.2
        while True:
            failed: list[tuple[Any, Any, bytes, Item, str]] = []
            dead: list[Any] = []
            try:
                with db.write(self.engine) as conn, unit_of_work.collecting(conn):
                    prefetch(handler, conn, [item for *_, item in items if item.attempts <= self.max_attempts])
                    for method, props, body, item in items:
                        if item.attempts > self.max_attempts:
                            reason = f"gave up after {item.attempts - 1} attempts"
                            self._run(conn, lambda c, i=item, r=reason: self._bury(c, i, r, dead_handler))
                            dead.append(method)
                            continue
                        error = self._run(conn, lambda c, i=item: handler(c, i))
                        if error is not None:
                            failed.append((method, props, body, item, error))
                self.notify()  # committed: wake this process's relay for outbox rows the batch wrote
                break
            except AMQP_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - the database went away under the batch (or at commit)
                if not _db_error_is_outage(self.engine, exc):
                    raise
                log.warning("database unavailable; batch kept unacked, retrying", queue=queue, size=len(items), error=repr(exc))
                if stop.is_set():
                    return  # unacked: the broker delivers them again
                connection.sleep(pause)  # keeps heartbeats flowing
                pause = min(pause * 2, 5.0)
        for method in dead:
            ch.basic_reject(method.delivery_tag, requeue=False)  # -> {p}dead.<queue> for the record
        for method, props, body, item, error in failed:
            delay = retry_delay_ms(item.attempts)
            log.warning("handler failed; will retry", queue=queue, attempt=item.attempts, delay_ms=delay, error=error)
            headers = {k: v for k, v in (props.headers or {}).items() if k not in ("x-death", "x-delivery-count", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason")}
            headers["x-hub-attempts"] = item.attempts
            headers["x-hub-last-error"] = error[:500]
            ch.basic_publish(
                self.topology.retry,
                f"{queue}.{delay}",
                body,
                pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json", message_id=props.message_id, headers=headers
                ),
                mandatory=True,
            )
        acked = [method.delivery_tag for method, *_ in items if method not in dead]
        if acked:
            ch.basic_ack(max(acked), multiple=True)

    def _run(self, conn: sa.Connection, work) -> str | None:  # type: ignore[no-untyped-def]
        """Run `work` in a savepoint; return the error text if it raised (the database being away raises)."""
        try:
            with unit_of_work.savepoint(conn):
                work(conn)
            return None
        except Exception as exc:  # noqa: BLE001
            if _db_error_is_outage(self.engine, exc):
                raise DatabaseUnavailable(repr(exc)) from exc
            return repr(exc)

    def _bury(self, conn: sa.Connection, item: Item, reason: str, dead_handler: DeadHandler) -> None:
        conn.execute(
            dead_letters.insert().values(
                queue=item.queue, payload=item.payload, attempts=item.attempts - 1, reason=reason,
                message_id=item.payload.get("message_id"), at=db.utcnow(),
            )
        )
        dead_handler(conn, item, reason)

    # -- operations ------------------------------------------------------------------------------------
    def ready(self) -> bool:
        at, ok = self._ready_cache
        if time.monotonic() - at < 1.0:
            return ok
        try:
            params = self.parameters("readyz")
            params.socket_timeout = 2
            BlockingConnection(params).close()
            ok = True
        except Exception:  # noqa: BLE001
            ok = False
        self._ready_cache = (time.monotonic(), ok)
        return ok

    def declare_all(self, partner_ids: Iterable[str] = ()) -> None:
        connection = self.connect(purpose="declare")
        assert connection is not None
        try:
            ch = connection.channel()
            self.topology.declare(ch)
            for partner_id in partner_ids:
                self.topology.declare_partner(ch, partner_id)
        finally:
            connection.close()


def vhost_path(vhost: str) -> str:
    return quote(vhost, safe="")


def setup_partner_user(transport: AmqpTransport, user: str, password: str, permissions: dict[str, str], management_url: str | None = None) -> str:
    """Create or update a broker user with exactly `permissions` on the transport's vhost.

    Uses the management HTTP API with the credentials of HUB_BROKER_URL; where that API is not
    reachable, `rabbitmqctl` (on the broker's host). Returns which of the two did it.
    """
    import shutil
    import subprocess

    import httpx

    parts = urlsplit(transport.url)
    auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
    base = (management_url or transport.management_url()).rstrip("/")
    try:
        with httpx.Client(base_url=base, auth=auth, timeout=15) as api:
            api.put(f"/api/users/{quote(user, safe='')}", json={"password": password, "tags": ""}).raise_for_status()
            api.put(f"/api/permissions/{vhost_path(transport.vhost)}/{quote(user, safe='')}", json=permissions).raise_for_status()
        return "management API"
    except httpx.ConnectError:
        ctl = shutil.which("rabbitmqctl")
        if ctl is None:
            raise RuntimeError(f"the RabbitMQ management API at {base} is not reachable and rabbitmqctl is not installed") from None
    existing = subprocess.run([ctl, "list_users", "--quiet"], capture_output=True, text=True, check=True).stdout.split()
    if user in existing:
        subprocess.run([ctl, "change_password", user, password], capture_output=True, check=True)
    else:
        subprocess.run([ctl, "add_user", user, password], capture_output=True, check=True)
    subprocess.run(
        [ctl, "set_permissions", "-p", transport.vhost, user, permissions["configure"], permissions["write"], permissions["read"]],
        capture_output=True, check=True,
    )
    return "rabbitmqctl"
