"""The outbox relay: committed outbox rows -> RabbitMQ, with publisher confirms, deleted only when confirmed.

Guaranteed delivery on top of the transactional outbox (Richardson, "Transactional outbox" /
"Polling publisher"): whoever stores a message also inserts an outbox row in the same transaction; the
relay reads committed rows in id order, publishes them as persistent messages and waits for the
broker's confirms, then deletes exactly the confirmed rows -- all inside one database transaction
that holds the rows with SELECT ... FOR UPDATE SKIP LOCKED, so any number of relays (one per hub
process) share the table without publishing a row twice at the same time. A relay that dies after
the confirm but before its commit leaves the rows behind and they are published again: at least
once, never lost; the consumers are idempotent receivers.

Deliveries for partners that consume their own AMQP queue travel the same way: their outbox rows
(queue name `partner`) are published straight to the partner's queue, and the delivery is marked
`published` in the transaction that deletes the confirmed row.

Confirms are windowed: a whole batch is published, then the relay waits for the confirms of the batch
(RabbitMQ acks many at once with `multiple`), instead of one round trip per message.

A row the broker refuses (nacked, returned unroutable, or its partner queue cannot be declared) stays
in the outbox and is tried again with backoff; the rest of the batch goes on. A partner queue is
declared on a channel of its own, once per connection and again after a push came back unroutable
(the queue was deleted): a queue the broker refuses to declare (other arguments, no permission)
closes only that channel and holds back only that partner's rows. After `MAX_REFUSALS` refusals a row
is given up: a delivery becomes `dead`, the message's history says why, and a `dead_letters` row
shows it to an operator (`hub messages dead`).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pika
import pika.exceptions
import sqlalchemy as sa
import structlog
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from hub.store import db
from hub.store import unit_of_work
from hub.store.history import record
from hub.store.tables import dead_letters, deliveries, outbox
from hub.transport.base import PARTNER, backoff

log = structlog.get_logger("hub.transport.relay")

CONFIRM_TIMEOUT = 30.0
#: refusals of one outbox row after which the relay gives it up (see the module docstring); with the
#: backoff between them (full jitter, up to 1 s, 2 s, 4 s ... 60 s) that is a few minutes of refusals
MAX_REFUSALS = 10


class ConfirmWindow:
    """Publish many messages on one channel and wait for all their confirms (asynchronous confirms).

    pika's BlockingChannel only offers one blocking round trip per publish; the underlying channel
    (`channel._impl`) offers the asynchronous Confirm.Select with an ack/nack callback, which is what
    this class uses. Unroutable messages (mandatory=True) come back as basic.return before their ack
    and count as not confirmed.
    """

    def __init__(self, connection: BlockingConnection, channel: BlockingChannel) -> None:
        self.connection = connection
        self.channel = channel
        self._seq = 0
        self._pending: dict[int, Any] = {}
        self._results: dict[Any, bool] = {}
        self._returned: set[str] = set()
        #: keys (as text) of the messages the last `publish` got back as unroutable
        self.returned: set[str] = set()
        #: partners whose queues are declared on this connection
        self.declared: set[str] = set()
        #: False once a work message came back unroutable: declare the hub's topology again
        self.topology_declared = True
        selected = threading.Event()

        def on_select_ok(_frame: Any) -> None:
            selected.set()
            connection.add_callback_threadsafe(lambda: None)  # wake process_data_events

        channel.add_on_return_callback(lambda _ch, _method, props, _body: self._returned.add(props.message_id))
        channel._impl.confirm_delivery(ack_nack_callback=self._on_confirm, callback=on_select_ok)
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while not selected.is_set():
            if time.monotonic() > deadline:
                raise pika.exceptions.AMQPConnectionError("no Confirm.SelectOk from the broker")
            connection.process_data_events(time_limit=0.1)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        ok = isinstance(method, pika.spec.Basic.Ack)
        tags = [t for t in self._pending if t <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        for tag in tags:
            key = self._pending.pop(tag, None)
            if key is not None:
                self._results[key] = ok
        if not self._pending:
            self.connection.add_callback_threadsafe(lambda: None)  # wake process_data_events

    def publish(self, messages: list[tuple[Any, str, str, bytes, pika.BasicProperties]]) -> set[Any]:
        """Publish (key, exchange, routing_key, body, properties) tuples; return the keys the broker confirmed."""
        self._results.clear()
        self._returned.clear()
        for key, exchange, routing_key, body, props in messages:
            self._seq += 1
            self._pending[self._seq] = key
            self.channel.basic_publish(exchange, routing_key, body, props, mandatory=True)
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while self._pending:
            if time.monotonic() > deadline:
                raise pika.exceptions.AMQPConnectionError(f"{len(self._pending)} publishes not confirmed within {CONFIRM_TIMEOUT} s")
            self.connection.process_data_events(time_limit=1.0)
        self.connection.process_data_events(0)  # dispatch basic.return callbacks (they arrive before the ack)
        self.returned = {str(k) for k in self._returned}
        return {k for k, ok in self._results.items() if ok and str(k) not in self.returned}


class OutboxRelay:
    def __init__(self, transport: Any, batch: int = 500) -> None:
        self.transport = transport
        self.batch = batch
        #: see MAX_REFUSALS
        self.max_refusals = MAX_REFUSALS

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            connection = None
            try:
                connection = self.transport.connect(stop, purpose="outbox relay")
                if connection is None:
                    return
                channel = connection.channel()
                self.transport.topology.declare(channel)
                window = ConfirmWindow(connection, channel)
                log.info("relay.started")
                while not stop.is_set():
                    try:
                        moved = self.relay_once(window)
                    except (pika.exceptions.AMQPError, ConnectionError, OSError):
                        raise
                    except Exception as exc:  # noqa: BLE001 - database away: wait and retry, never die
                        log.warning("relay: database unavailable; retrying", error=repr(exc).splitlines()[0])
                        connection.sleep(1.0)
                        continue
                    if moved < self.batch:
                        connection.process_data_events(0)  # heartbeats
                        if moved == 0:
                            self.transport.wait(self.transport.poll_interval)
            except (pika.exceptions.AMQPError, ConnectionError, OSError) as exc:
                log.warning("relay lost the broker; reconnecting", error=repr(exc))
                stop.wait(0.5)
            except Exception as exc:  # noqa: BLE001
                log.error("relay failed; restarting", error=repr(exc))
                stop.wait(1.0)
            finally:
                if connection is not None and connection.is_open:
                    try:
                        connection.close()
                    except Exception:  # noqa: BLE001
                        pass

    def relay_once(self, window: ConfirmWindow) -> int:
        """Move one batch of committed, due outbox rows to the broker. Returns how many rows it took.

        Rows of the work queues go to the work exchange as they are. Rows of the `partner` queue
        name a delivery for a partner that consumes its own AMQP queue: the delivery's bytes go
        straight to that queue (message id = delivery id, so the partner can deduplicate) and, once
        confirmed, the delivery is `published` -- in the same transaction that deletes the row.
        Refused rows stay for a later try, or are given up after `max_refusals` (`_refused`).
        """
        topology = self.transport.topology
        now = time.time()
        if not window.topology_declared:
            topology.declare(window.channel)
            window.topology_declared = True
        with db.write(self.transport.engine) as conn, unit_of_work.collecting(conn):
            rows = conn.execute(_DUE, {"now": now, "limit": self.batch}).all()
            if not rows:
                return 0
            messages, done = [], []
            pushes: dict[int, Any] = {}  # outbox row id -> its pending delivery
            refused: dict[int, str] = {}  # outbox row id -> why the broker did not take it
            unusable: dict[str, str] = {}  # partner id -> why its queue cannot be declared
            wanted = [row.payload["delivery_id"] for row in rows if row.queue == PARTNER]
            found = {d.id: d for d in conn.execute(_DELIVERIES, {"ids": wanted})} if wanted else {}
            for row in rows:
                if row.queue != PARTNER:
                    messages.append((str(row.id), topology.work, row.queue, json.dumps(row.payload).encode(), _work_properties(row.id, now)))
                    continue
                delivery = found.get(row.payload["delivery_id"])
                if delivery is None or delivery.status != "pending":
                    done.append(row.id)  # published before (a relay died after the confirm): at least once
                    continue
                pushes[row.id] = delivery
                why = self._declare_partner(window, delivery.recipient, unusable)
                if why is not None:
                    refused[row.id] = why
                    continue
                messages.append((delivery.id, topology.partners, delivery.recipient, delivery.body, _push_properties(delivery, now)))
            confirmed = window.publish(messages) if messages else set()
            for row in rows:
                if row.id in refused or row.id in done:
                    continue
                key = pushes[row.id].id if row.id in pushes else str(row.id)
                if key not in confirmed:
                    refused[row.id] = _refusal(window, key)
                    self._forget_declaration(window, row, pushes.get(row.id))
                elif row.id in pushes:
                    self._published(conn, pushes[row.id])
                    done.append(row.id)
                else:
                    done.append(row.id)
            given_up = [row.id for row in rows if row.id in refused and self._refused(conn, row, pushes.get(row.id), refused[row.id], now)]
            if done or given_up:
                conn.execute(outbox.delete().where(outbox.c.id.in_(done + given_up)))
            if refused:
                log.error("relay: broker refused messages; kept in the outbox", count=len(refused), given_up=len(given_up), queues=sorted({r.queue for r in rows if r.id in refused}), reasons=sorted(set(refused.values()))[:3])
        return len(rows)

    def _declare_partner(self, window: ConfirmWindow, partner_id: str, unusable: dict[str, str]) -> str | None:
        """Declare a partner's queue once per connection, on a channel of its own; None when it is
        declared, else why not (remembered in `unusable` for the rest of the batch)."""
        if partner_id in window.declared:
            return None
        if partner_id not in unusable:
            why = self.transport.try_declare_partner(window.connection, partner_id)
            if why is None:
                window.declared.add(partner_id)
                return None
            unusable[partner_id] = why
        return unusable[partner_id]

    def _forget_declaration(self, window: ConfirmWindow, row: Any, delivery: Any) -> None:
        """A refused message may have found its queue gone: declare it again before the next try."""
        if str(delivery.id if delivery is not None else row.id) not in window.returned:
            return
        if delivery is not None:
            window.declared.discard(delivery.recipient)
        else:
            window.topology_declared = False

    def _published(self, conn: sa.Connection, delivery: Any) -> None:
        unit_of_work.execute(conn, _PUBLISHED, {"b_id": delivery.id})
        queue = self.transport.topology.partner_queue(delivery.recipient)
        record(conn, delivery.message_id, "delivery", "published", recipient=delivery.recipient, delivery_id=delivery.id, queue=queue)

    def _refused(self, conn: sa.Connection, row: Any, delivery: Any, why: str, now: float) -> bool:
        """Keep a refused row for a later try with backoff; True when it was refused too often and is given up."""
        refusals = row.attempts + 1
        if refusals < self.max_refusals:
            conn.execute(_RETRY_LATER, {"b_id": row.id, "b_at": now + backoff(refusals), "b_attempts": refusals})
            return False
        self._give_up(conn, row, delivery, f"the broker refused it {refusals} times (last: {why})", refusals)
        return True

    def _give_up(self, conn: sa.Connection, row: Any, delivery: Any, reason: str, refusals: int) -> None:
        """Retrying for ever only fills a log: make it a dead letter an operator sees (`hub messages dead`).

        A delivery becomes `dead` with a `delivery.dead` event; a work row (never reached the pipeline,
        so `hub messages replay` can send it again) gets a `relay.dead` event."""
        message_id = delivery.message_id if delivery is not None else row.payload.get("message_id")
        conn.execute(
            dead_letters.insert().values(queue=row.queue, payload=row.payload, attempts=refusals, reason=reason, message_id=message_id, at=db.utcnow())
        )
        if delivery is not None:
            conn.execute(_DEAD, {"b_id": delivery.id})
            record(conn, delivery.message_id, "delivery", "dead", recipient=delivery.recipient, delivery_id=delivery.id, reason=reason)
        elif message_id:
            record(conn, message_id, "relay", "dead", queue=row.queue, reason=reason)
        log.error("relay: gave a refused message up; it is a dead letter now", queue=row.queue, message_id=message_id, reason=reason)


def _refusal(window: ConfirmWindow, key: str) -> str:
    return "returned unroutable" if str(key) in window.returned else "not confirmed (nack)"


_DUE = (
    sa.select(outbox.c.id, outbox.c.queue, outbox.c.payload, outbox.c.attempts)
    .where(outbox.c.available_at <= sa.bindparam("now"))
    .order_by(outbox.c.id)
    .limit(sa.bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_DELIVERIES = sa.select(
    deliveries.c.id, deliveries.c.message_id, deliveries.c.recipient, deliveries.c.status, deliveries.c.body,
    deliveries.c.content_type, deliveries.c.message_type, deliveries.c.version, deliveries.c.format, deliveries.c.purpose,
).where(deliveries.c.id.in_(sa.bindparam("ids", expanding=True)))
_PUBLISHED = deliveries.update().where(deliveries.c.id == sa.bindparam("b_id"), deliveries.c.status == "pending").values(status="published")
_DEAD = deliveries.update().where(deliveries.c.id == sa.bindparam("b_id"), deliveries.c.status == "pending").values(status="dead")
_RETRY_LATER = outbox.update().where(outbox.c.id == sa.bindparam("b_id")).values(available_at=sa.bindparam("b_at"), attempts=sa.bindparam("b_attempts"))


def _work_properties(outbox_id: int, now: float) -> pika.BasicProperties:
    return pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,
        content_type="application/json",
        message_id=str(outbox_id),
        timestamp=int(now),
        headers={"x-hub-outbox-id": outbox_id},
    )


def _push_properties(delivery: Any, now: float) -> pika.BasicProperties:
    return pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,
        content_type=delivery.content_type,
        message_id=delivery.id,
        type=delivery.message_type,
        timestamp=int(now),
        app_id="casechain-hub",
        headers={"hub-message-id": delivery.message_id, "version": delivery.version, "format": delivery.format, "purpose": delivery.purpose},
    )
