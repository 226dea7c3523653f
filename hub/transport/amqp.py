"""The RabbitMQ transport (pika): guaranteed delivery on a real broker, same guarantees as the embedded one.

Topology (every name carries `HUB_AMQP_PREFIX`, default ``hub.``; exchanges and queues are durable):

```
outbox relay --(confirm)--> {p}work (direct) --key q--> {p}q                 quorum queue, one per hub queue
                                                        |  x-dead-letter-exchange = {p}dead
consumer: handler fails --(confirm)--> {p}retry (direct) --key q.<ms>--> {p}retry.q.<ms>  (TTL <ms>)
                                                        ^-- dead-letters back to {p}work / key q when the TTL ends
consumer: attempts exhausted -> dead_handler (DB) -> basic.reject -> {p}dead (direct) --key q--> {p}dead.q
consumer: not a hub message --(confirm, header x-hub-dead-reason)--> {p}dead --key q--> {p}dead.q
outbox relay --(confirm)--> {p}partners (direct) --key <partner id>--> {p}partner.<partner id>   quorum
```

Publishing stays on the transactional outbox (`Transport.publish` inserts into the `outbox` table in
the caller's transaction); `hub.transport.relay.OutboxRelay` (a thread in every hub process) moves
committed rows to `{p}work`, and deliveries for partners that consume over AMQP to their own queue,
with publisher confirms, and deletes a row only after its confirm. A crash between confirm and delete
publishes the row again: at-least-once, never lost; receivers are idempotent.

Consumers (competing, any number of threads/processes/hosts) use manual acks and a prefetch window.
They take every message the broker has handed over (up to the prefetch) as one batch, run the
handler for each in a SAVEPOINT of one database transaction, commit, and only then ack (one
``basic.ack multiple``). A handler that raises has its savepoint rolled back; the message is
re-published with confirm to a retry queue whose TTL brings it back (1 s, 2 s, 4 s, ... 60 s) and is
then acked. A batch that fails as a whole -- its read-ahead (`handler.prefetch`), the write of the
rows it collected, its commit, or on PostgreSQL an item whose failed statement aborted the
transaction (the lazy savepoints are only issued before a write, so a failed SELECT cannot be rolled
back alone) -- is processed again one item per transaction, on the same channel: one bad item never
holds back the rest. A body that is not a JSON object is no hub message: it is parked in
``{p}dead.q`` at once, with the reason in the ``x-hub-dead-reason`` header.

Attempts are the handler's failures, counted in the ``x-hub-attempts`` header; after
`HUB_MAX_ATTEMPTS` the message is buried: the dead handler gives it status and history, a
``dead_letters`` row is written, and only once that committed is it rejected into ``{p}dead.q``. A
burial that fails is not rejected (the broker's copy would have no record an operator sees): the
message goes to a retry queue and is buried on its next delivery. A message that comes back
*unsettled* -- its consumer was stopped (SIGTERM, deploy), lost its connection, or crashed -- did not
fail: a graceful restart returns every prefetched message. The quorum queue's ``x-delivery-count``
(plus ``x-hub-redeliveries``, carried over when the message is re-published) therefore only detects
crashes: past `MAX_REDELIVERIES` (16) the message is buried without running the handler again, so a
message that kills its worker every time still ends as a dead letter. (RabbitMQ 4 dead-letters a
quorum queue's message itself after 20 deliveries by default; the hub's limit is below that, so the
hub buries it, with its record.) When the database itself is away, nothing counts as an attempt: the
batch stays unacked and is retried when the database answers.

How a batch is decided in the database (one transaction, a savepoint each, one by one if it fails as
a whole, burial, the outage told apart) is the batch template's (`hub.transport.base.Consumer`);
`AmqpConsumer` supplies what is the broker's: when a message is to be buried, the PostgreSQL check
after each item, waiting out an outage, and settling each message with the broker after the commit.

pika's BlockingConnection is not thread-safe: every thread opens its own connection. Connections are
re-established with exponential backoff and jitter (tenacity) whenever the broker goes away.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
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

from hub.store.flows import QueueDepth
from hub.transport.base import (
    BURIED, FAILED, OUTAGE, PIPELINE, UNBURIED, Consumer, DeadHandler, Handler, Item, Job, Transport, log_failure,
)

log = structlog.get_logger("hub.transport.amqp")
# pika logs every failed connection attempt as an ERROR with a traceback; the transport reports
# connection trouble itself (one structured line per retry), so only pika's critical lines remain
logging.getLogger("pika").setLevel(logging.CRITICAL)

#: the delays of the retry queues, milliseconds; attempt n waits RETRY_DELAYS_MS[n-1] (the last one repeats)
RETRY_DELAYS_MS = (1000, 2000, 4000, 8000, 16000, 32000, 60000)
#: connection-level failures after which a thread reconnects
AMQP_ERRORS = (pika.exceptions.AMQPError, ConnectionError, OSError)
WORK_QUEUES = (PIPELINE,)
#: times a message may come back unsettled (its consumer stopped, lost its connection or crashed while
#: holding it) before it is buried without running its handler again: crash detection, not an attempt
#: count (a graceful restart returns every prefetched message). Below RabbitMQ 4's default quorum
#: delivery-limit (20), so the hub buries such a message, with its record, before the broker drops it.
MAX_REDELIVERIES = 16
#: seconds a readiness probe waits for the broker (the compose healthcheck gives up after 5)
READY_TIMEOUT = 2.0
#: headers the broker sets on a delivery; not copied when the hub re-publishes a message
_BROKER_HEADERS = ("x-death", "x-delivery-count", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason")


class DatabaseUnavailable(Exception):
    """The database did not answer: retry the batch later, without counting an attempt."""


class NotAHubMessage(ValueError):
    """A body the hub cannot have published (not JSON, not a JSON object, unreadable headers)."""


@dataclass(eq=False)
class _Delivery(Job[Item]):
    """One message the broker handed a consumer; its `outcome` is what processing it came to: DONE
    (ack), FAILED (retry), BURIED (reject into the DLQ), UNBURIED (retry the burial)."""

    method: Any
    props: Any
    body: bytes
    #: times it came back unsettled before (see MAX_REDELIVERIES)
    redeliveries: int


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


def _transaction_aborted(conn: sa.Connection) -> bool:
    """True when PostgreSQL refuses every further statement of this transaction (a statement failed
    outside a savepoint). Such a transaction's COMMIT is silently a ROLLBACK, so a batch must notice
    this itself. SQLite has no such state (its driver connection has no `info`)."""
    info = getattr(conn.connection.driver_connection, "info", None)
    status = getattr(info, "transaction_status", None)
    return getattr(status, "name", "") == "INERROR"


def _own_headers(props: Any) -> dict[str, Any]:
    """A delivery's headers without the ones the broker added, for re-publishing it."""
    return {k: v for k, v in (props.headers or {}).items() if k not in _BROKER_HEADERS}


def _read_delivery(queue: str, method: Any, props: Any, body: bytes) -> _Delivery:
    """The hub message in a delivery; raises NotAHubMessage (with the reason) for anything else.

    Attempts are the handler's failures so far (``x-hub-attempts``) plus this one; how often the
    message came back unsettled is kept apart (``x-delivery-count`` of the quorum queue, plus
    ``x-hub-redeliveries`` carried over when it was re-published): a restart is no failure."""
    headers = props.headers or {}
    try:
        payload = json.loads(body)
    except ValueError as exc:  # also UnicodeDecodeError
        raise NotAHubMessage(f"the body is not JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise NotAHubMessage(f"the body is a JSON {type(payload).__name__}, not a JSON object")
    try:
        failures = int(headers.get("x-hub-attempts", 0))
        redeliveries = int(headers.get("x-hub-redeliveries", 0)) + int(headers.get("x-delivery-count", 0))
    except (TypeError, ValueError) as exc:
        raise NotAHubMessage(f"unreadable attempt headers ({exc})") from exc
    item = Item(headers.get("x-hub-outbox-id", props.message_id), queue, payload, failures + 1)
    return _Delivery(item, method, props, body, redeliveries)


class AmqpConsumer(Consumer):
    """The template methods of a RabbitMQ queue, on the channel of one connection.

    The batch is decided in the database first (`Batch.decide`); only after its commit is the broker
    told (`settle`). An item is buried when its attempts (``x-hub-attempts``) are used up or when it
    came back unsettled too often; a PostgreSQL transaction aborted by an item ends the batch for the
    others (`usable`); and while the database is away nothing is decided (`outage`)."""

    transport: AmqpTransport
    connection: BlockingConnection
    channel: BlockingChannel

    def on(self, connection: BlockingConnection, channel: BlockingChannel) -> AmqpConsumer:
        self.connection, self.channel = connection, channel
        return self

    def process_deliveries(self, batch: list[tuple[Any, Any, bytes]], stop: threading.Event) -> None:
        """Process what the broker handed over: park what is no hub message, decide every other
        message in the database, then settle each with the broker according to its outcome."""
        found: list[_Delivery] = []
        for method, props, body in batch:
            try:
                found.append(_read_delivery(self.queue, method, props, body))
            except NotAHubMessage as exc:  # never loop on it, never let it fail the batch
                self._park(method, props, body, str(exc))
        if found and self._decide_all(found, stop):
            self.settle(found)

    def _park(self, method: Any, props: Any, body: bytes, reason: str) -> None:
        """Move a message that is no hub message to {p}dead.<queue>, saying why in x-hub-dead-reason."""
        log.error("unreadable message parked in the dead-letter queue", queue=self.queue, reason=reason, body=body[:200])
        headers = {**_own_headers(props), "x-hub-dead-reason": reason[:500]}
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, content_type=props.content_type, message_id=props.message_id, headers=headers
        )
        self.channel.basic_publish(self.transport.topology.dead, self.queue, body, properties, mandatory=True)  # waits for its confirm
        self.channel.basic_ack(method.delivery_tag)

    def _decide_all(self, found: list[_Delivery], stop: threading.Event) -> bool:
        """Give every delivery its outcome in the database. While the database is away nothing is
        decided and nothing counts: wait (heartbeats keep flowing) and try again; False if stopped
        meanwhile (the broker delivers the unacked messages again)."""
        pause = 0.2
        while True:
            try:
                self.decide([d for d in found if d.outcome in (None, OUTAGE)])
                return True
            except DatabaseUnavailable as exc:
                log.warning("database unavailable; batch kept unacked, retrying", queue=self.queue, size=len(found), error=str(exc))
                if stop.is_set():
                    return False
                self.connection.sleep(pause)
                pause = min(pause * 2, 5.0)

    # -- template methods ----------------------------------------------------------------------------
    def last_error(self, job: _Delivery) -> str | None:  # type: ignore[override]
        return (job.props.headers or {}).get("x-hub-last-error")

    def burial(self, job: _Delivery) -> str | None:  # type: ignore[override]
        reason = super().burial(job)
        if reason is None and job.redeliveries > self.transport.max_redeliveries:
            reason = f"delivered {job.redeliveries + 1} times without being settled (it seems to stop or crash its consumer)"
        return reason

    def usable(self, conn: sa.Connection) -> bool:
        return not _transaction_aborted(conn)

    def outage(self, jobs: list[_Delivery], exc: BaseException) -> None:  # type: ignore[override]
        """Stop: the batch stays unacked; the items decided alone before keep their outcome."""
        raise DatabaseUnavailable(repr(exc)) from exc

    def settle(self, jobs: list[_Delivery]) -> None:  # type: ignore[override]
        """Tell the broker, after the commit: reject the buried (into {p}dead.<queue>), re-publish the
        failed to a retry queue, then ack everything else in one basic.ack multiple."""
        acked = []
        for delivery in jobs:
            item = delivery.item
            if delivery.outcome == BURIED:
                self.channel.basic_reject(delivery.method.delivery_tag, requeue=False)  # -> {p}dead.<queue> for the record
                continue
            if delivery.outcome == FAILED:
                delay = retry_delay_ms(item.attempts)
                log_failure(log, item, delivery.error, self.transport.max_attempts, delay_ms=delay)
                self._retry(delivery, item.attempts, delay, delivery.error or "")
            elif delivery.outcome == UNBURIED:  # no record of its death: it must come back, not go to the DLQ
                delay = retry_delay_ms(item.attempts)
                log.error("burying a message failed; it comes back to be buried", queue=self.queue, delay_ms=delay, error=delivery.error)
                self._retry(delivery, item.attempts - 1, delay, f"burial failed: {delivery.error}")
            acked.append(delivery.method.delivery_tag)
        if acked:
            self.channel.basic_ack(max(acked), multiple=True)

    def _retry(self, delivery: _Delivery, failures: int, delay: int, error: str) -> None:
        """Re-publish a message to the retry queue of `delay` ms (with its confirm), carrying its counts."""
        headers = _own_headers(delivery.props)
        headers["x-hub-attempts"] = failures
        headers["x-hub-redeliveries"] = delivery.redeliveries
        headers["x-hub-last-error"] = error[:500]
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json", message_id=delivery.props.message_id, headers=headers
        )
        self.channel.basic_publish(self.transport.topology.retry, f"{self.queue}.{delay}", delivery.body, properties, mandatory=True)


class AmqpTransport(Transport):
    name = "amqp"
    Consumer: type[AmqpConsumer] = AmqpConsumer
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
        #: see MAX_REDELIVERIES
        self.max_redeliveries = MAX_REDELIVERIES

    # -- connections -------------------------------------------------------------------------------
    def parameters(self, purpose: str = "hub", timeout: float | None = None) -> pika.URLParameters:
        """Connection parameters; `timeout` bounds opening the connection (socket and AMQP handshake),
        for a probe or a command that must answer soon rather than wait out pika's 15 s default."""
        params = pika.URLParameters(self.url)
        params.heartbeat = 30
        params.blocked_connection_timeout = 60
        params.socket_timeout = 5
        params.connection_attempts = 1
        params.client_properties = {"connection_name": f"casechain-hub {purpose} pid={os.getpid()} {threading.current_thread().name}"}
        if timeout is not None:
            params.socket_timeout = timeout
            params.stack_timeout = timeout
        return params

    def connect(
        self, stop: threading.Event | None = None, purpose: str = "hub", give_up_after: float | None = None, timeout: float | None = None
    ) -> BlockingConnection | None:
        """A new connection for the calling thread; retries with backoff until it works or `stop` is set.

        Worker threads retry for as long as they run; a command passes `give_up_after` (seconds), after
        which the last connection error is raised. `timeout` bounds each attempt (see `parameters`)."""
        stop = stop or threading.Event()

        def done(state: Any) -> bool:
            return stop.is_set() or (give_up_after is not None and state.seconds_since_start >= give_up_after)

        retrying = Retrying(
            retry=retry_if_exception_type(AMQP_ERRORS),
            wait=wait_exponential(multiplier=0.2, max=5.0) + wait_random(0, 0.5),
            stop=done,
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
                    return BlockingConnection(self.parameters(purpose, timeout))
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

    @property
    def address(self) -> str:
        """host:port of the broker, for messages to people (never the credentials)."""
        parts = urlsplit(self.url)
        return f"{parts.hostname or '127.0.0.1'}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"

    def try_declare_partner(self, connection: BlockingConnection, partner_id: str) -> str | None:
        """Declare a partner's queue on a channel of its own; None when done, else the broker's reason.

        A declaration the broker refuses (a queue of that name with other arguments, no permission)
        closes the channel it ran on: on a shared channel one broken partner queue would stop every
        consumer or every relay publish. Here it costs only that partner's deliveries."""
        try:
            ch = connection.channel()
            self.topology.declare_partner(ch, partner_id)
            ch.close()
            return None
        except pika.exceptions.ChannelClosedByBroker as exc:
            log.error("amqp: the broker refused to declare a partner queue; its deliveries wait", partner=partner_id, error=str(exc))
            return f"the broker refused to declare {self.topology.partner_queue(partner_id)}: {exc.reply_code} {exc.reply_text}"

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
            except Exception as exc:  # noqa: BLE001 - never die: unacked messages come back (no attempt counted)
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
            self.try_declare_partner(connection, partner_id)
        ch.confirm_delivery()  # retries published from this channel wait for their confirm
        ch.basic_qos(prefetch_count=self.prefetch)
        consumer = self.Consumer(self, queue, handler, dead_handler).on(connection, ch)
        buffer: list[tuple[Any, Any, bytes]] = []
        ch.basic_consume(self.topology.queue(queue), lambda _ch, method, props, body: buffer.append((method, props, body)))
        log.info("amqp.consuming", queue=self.topology.queue(queue), prefetch=self.prefetch)
        while not stop.is_set():
            connection.process_data_events(time_limit=0.5)  # returns as soon as messages arrived
            while buffer and not stop.is_set():
                batch = buffer[:]
                buffer.clear()
                consumer.process_deliveries(batch, stop)

    # -- operations ------------------------------------------------------------------------------------
    def ready(self) -> bool:
        """Whether the broker answers (readiness probe): within READY_TIMEOUT, cached for a second."""
        at, ok = self._ready_cache
        if time.monotonic() - at < 1.0:
            return ok
        try:
            BlockingConnection(self.parameters("readyz", timeout=READY_TIMEOUT)).close()
            ok = True
        except Exception:  # noqa: BLE001
            ok = False
        self._ready_cache = (time.monotonic(), ok)
        return ok

    def queue_depths(self) -> list[QueueDepth]:
        """The outbox rows the relay has not yet published, then the broker's queues of this hub (its
        prefix) from the management API: messages ready and unacknowledged, and the oldest's age
        where the broker knows its timestamp (a classic queue's head; the relay stamps every message).
        A broker that does not answer within a second is one entry with no depth and the reason."""
        import httpx

        depths = super().queue_depths()
        parts = urlsplit(self.url)
        auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        url = f"{self.management_url()}/api/queues/{vhost_path(self.vhost)}"
        try:
            queues = httpx.get(url, params={"columns": "name,messages,head_message_timestamp"}, auth=auth, timeout=1.0).raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            return [*depths, QueueDepth(f"{self.topology.prefix}*", None, where="broker", note=f"the management API did not answer: {type(exc).__name__}")]
        now = time.time()
        for q in sorted(queues, key=lambda q: q["name"]):
            if not q["name"].startswith(self.topology.prefix):
                continue
            head = q.get("head_message_timestamp")
            at = dt.datetime.fromtimestamp(head, dt.timezone.utc) if isinstance(head, (int, float)) else None
            depths.append(QueueDepth(q["name"], int(q.get("messages") or 0), at, max(0.0, now - head) if at else None, where="broker"))
        return depths

    def declare_all(self, partner_ids: Iterable[str] = (), give_up_after: float | None = None) -> None:
        """Declare the topology and the partners' queues. With `give_up_after` (seconds), raise the
        connection error when the broker does not answer by then, instead of retrying for ever."""
        timeout = None if give_up_after is None else max(1.0, min(READY_TIMEOUT, give_up_after))
        connection = self.connect(purpose="declare", give_up_after=give_up_after, timeout=timeout)
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


class BrokerUnreachable(Exception):
    """The broker did not answer within the few seconds an operator's command waits; one sentence."""


def provision_partner(transport: AmqpTransport, partner_id: str, user: str, password: str, management_url: str | None, wait: float = 5.0) -> dict[str, Any]:
    """A partner's own queue and a broker user that may only read it (`hub partners amqp-setup`).

    Declares the hub's topology and `<prefix>partner.<id>`, then creates (or updates) the user with
    permissions configure "^$", write "^$", read "^<queue>$" on the hub's vhost. An operator's command
    gives up after `wait` seconds (BrokerUnreachable); the workers retry for as long as they run."""
    try:
        transport.declare_all([partner_id], give_up_after=wait)
    except (pika.exceptions.AMQPConnectionError, ConnectionError, OSError) as exc:
        raise BrokerUnreachable(
            f"could not connect to RabbitMQ at {transport.address} (vhost {transport.vhost!r}) within {wait:g} s "
            f"({type(exc).__name__}); is it running, and is HUB_BROKER_URL right?"
        ) from None
    queue = transport.topology.partner_queue(partner_id)
    permissions = {"configure": "^$", "write": "^$", "read": f"^{re.escape(queue)}$"}
    how = setup_partner_user(transport, user, password, permissions, management_url)
    return {"partner": partner_id, "user": user, "vhost": transport.vhost, "queue": queue, "permissions": permissions, "via": how}


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
