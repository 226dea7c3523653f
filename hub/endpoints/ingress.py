"""Ingress: authenticate, bound, parse, read the header, validate, store and queue.

Steps 1-5 of the path of one message run here, synchronously, so a partner learns at once (with every
finding) whether its message was taken. A message that is taken is stored with its raw bytes and
queued for the pipeline in ONE transaction (transactional outbox). (sender, message UUID) is unique:
a resend is answered with the first message's id and never processed twice.

Values that go into bounded columns are checked here, so the database never refuses a request's
value (SQLite would store any length, PostgreSQL would fail the insert): the message UUIDs must be
UUIDs, a correlation id at most 64 plain characters.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from concurrent.futures import Future
from dataclasses import dataclass, field

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from hub.store import db
from hub.store import writes
from hub.findings import Finding, Refusal
from hub.store.history import audit, record
from hub.ids import new_id
from hub.metrics import MESSAGES_RECEIVED
from hub.partners import Partner
from hub.runtime import Hub
from hub.endpoints.validate import contract_problem
from hub.store.tables import messages
from hub.transport import PIPELINE

log = structlog.get_logger("hub.ingress")

MEDIA_FAMILIES = {
    "application/xml": "xml",
    "text/xml": "xml",
    "application/json": "json",
    "text/csv": "csv",
}


@dataclass(frozen=True)
class Accepted:
    id: str
    created: bool  # False: a resend of a message already taken


def media_family(content_type: str | None) -> str | None:
    media = (content_type or "").split(";")[0].strip().lower()
    if media.endswith("+xml"):
        return "xml"
    if media.endswith("+json"):
        return "json"
    return MEDIA_FAMILIES.get(media)


#: a correlation id a partner may set (X-Correlation-ID): stored in 64 characters and written to logs
CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:/+=@~-]{1,64}$")
CORRELATION_ID_RULE = "1 to 64 characters: letters A-Z and a-z, digits and . _ : / + = @ ~ -"

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def checked_correlation_id(value: str | None, name: str = "X-Correlation-ID") -> str | None:
    """The partner's correlation id (None: not given), or a 400 Refusal naming `name`."""
    if not value:
        return None
    if not CORRELATION_ID.fullmatch(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise Refusal(
            "malformed",
            f"The {name} header must be {CORRELATION_ID_RULE}",
            [Finding(f"{name}: {len(value)} characters, {shown!r}")],
        )
    return value


def accept(hub: Hub, partner: Partner, data: bytes, content_type: str | None, correlation_id: str | None = None) -> Accepted:
    """Take one message from an authenticated partner, or raise a Refusal that changes nothing."""
    head = check(hub, partner, data, content_type)
    return store(hub, partner, data, head, correlation_id)


#: bodies up to this size are checked on the event loop itself (a thread hop costs more than the check)
INLINE_BYTES = 64 * 1024


async def accept_async(hub: Hub, partner: Partner, data: bytes, content_type: str | None, correlation_id: str | None = None) -> Accepted:
    """`accept` for the HTTP API: no request parks a thread while its group commits.

    Small bodies are checked on the event loop (the GIL serialises the work anyway; a thread hop and
    the wake-up cost more than checking a few kilobytes); large ones in the thread pool, so one big
    message never stalls the loop. The group commit is awaited, not waited for in a thread."""
    head = await check_async(hub, partner, data, content_type)
    pending = Pending.of(hub, partner, data, head, correlation_id)
    seconds = db.limits().request_timeout
    commit = hub.group_commit.submit(pending.write)
    try:
        await _within(asyncio.wrap_future(commit), seconds)
    except IntegrityError:
        try:
            return await asyncio.wait_for(asyncio.to_thread(pending.resend_within, seconds), seconds or None)
        except TimeoutError:
            raise _late(stored=None, seconds=seconds) from None
    except TimeoutError:
        raise _late(stored=_stored_or_unknown(commit), seconds=seconds) from None
    return pending.accepted()


async def check_async(hub: Hub, partner: Partner, data: bytes, content_type: str | None) -> dict:
    """`check` for the HTTP API (accept_async, POST /v1/validate): small bodies on the event loop,
    large ones in the thread pool."""
    if len(data) <= INLINE_BYTES:
        return check(hub, partner, data, content_type)
    return await asyncio.to_thread(check, hub, partner, data, content_type)


async def _within(waiter: asyncio.Future, seconds: float) -> object:
    """`await waiter`, or cancel it and raise TimeoutError after `seconds` (0: no limit).

    What asyncio.wait_for does, at half its cost per accept (no wrapping task, one timer)."""
    if not seconds or seconds <= 0:
        return await waiter
    timer = asyncio.get_running_loop().call_later(seconds, waiter.cancel)
    try:
        return await waiter
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if waiter.cancelled() and task is not None and not task.cancelling():
            raise TimeoutError from None  # our timer cancelled it, not someone cancelling this request
        raise
    finally:
        timer.cancel()


def _stored_or_unknown(commit: Future) -> bool | None:
    """After the deadline: False if the write was still queued (now cancelled: it will never run),
    None if the writer had already taken it (its transaction may yet commit)."""
    return False if commit.cancel() else None


def _late(stored: bool | None, seconds: float) -> Refusal:
    """The 503 of an accept that was not confirmed within `seconds`."""
    log.error("accept not confirmed in time", seconds=seconds, stored="no" if stored is False else "unknown")
    if stored is False:
        return Refusal("unavailable", f"The hub's database did not answer within {seconds:g} s; the message was not stored. Send it again later")
    return Refusal(
        "unavailable",
        f"The hub's database did not answer within {seconds:g} s; the message may or may not have been stored. Send it again "
        "with the same message UUID: if it was stored, the answer is its first id (200) and it is not processed twice",
    )


def check(hub: Hub, partner: Partner, data: bytes, content_type: str | None) -> dict:
    """Steps 1-2 and the contract: the message's header, or a Refusal with every finding and, once
    the header was read, the message type it names (for the refusal metric)."""
    read: dict = {}
    try:
        return _check(hub, partner, data, content_type, read)
    except Refusal as refusal:
        refusal.message_type = read.get("message_type")
        raise


def _check(hub: Hub, partner: Partner, data: bytes, content_type: str | None, read: dict) -> dict:
    """`check`; the header goes into `read` as soon as it is read."""
    if not partner.sends:
        raise Refusal("forbidden", f"Partner {partner.id} is not registered to send messages")
    if len(data) > hub.settings.max_message_bytes:
        raise Refusal("too-large", f"The message exceeds the limit of {hub.settings.max_message_bytes} bytes")
    adapter = hub.adapter(partner.format)
    family = media_family(content_type)
    if family is None or family != media_family(adapter.media_type):
        raise Refusal(
            "unsupported-media-type",
            f"Partner {partner.id} sends {partner.format} as {adapter.media_type}, not {content_type or 'an unnamed media type'}",
        )
    if not data.strip():
        raise Refusal("malformed", "The message body is empty")
    document = adapter.parse(data)
    head = adapter.peek_header(data, document)
    read.update(head)
    if head["sender"] != partner.id:
        raise Refusal(
            "forbidden",
            "The header's author does not match the authenticated partner",
            [Finding(f"author must be {partner.id!r}", pointer="/header/author/id" if family == "json" else None)],
        )
    message_type = head["message_type"]
    contract = hub.registry.get(message_type, head["version"], partner.format)
    if message_type not in partner.sends:
        raise Refusal("forbidden", f"Message type {message_type} is not in the contract of partner {partner.id}")
    problem = contract_problem(hub, data, document, contract)
    if problem is not None:
        raise problem
    _check_reader(hub, partner, head, family)
    findings = _identifier_findings(head, family)
    if findings:
        raise Refusal("schema-invalid", f"The message does not satisfy {message_type} {contract.version} ({partner.format})", findings)
    return head


def _check_reader(hub: Hub, partner: Partner, head: dict, family: str) -> None:
    """A reader the sender names must be a partner the routes let it address with this message type.

    Otherwise a message meant for one organisation would silently go to another: a report whose route
    is the case owner reached the Jobcenter although the provider had named a municipal office as its
    reader. Refused (403) before anything is stored; a message that names no reader is routed as before."""
    reader_id = head.get("reader")
    if not reader_id:
        return
    roles = hub.routes.reader_roles(head["message_type"], partner.role)
    if not roles:
        return  # no route at all: the pipeline answers that the message has no recipient
    reader = hub.partners.get(reader_id)
    if reader is None:
        why = f"{reader_id!r:.60} is not a registered partner"
    elif None in roles or reader.role in roles:
        return
    else:
        allowed = " or ".join(sorted(str(r) for r in roles))
        why = f"{reader.id!r} is a {reader.role} partner; a {head['message_type']} from a {partner.role} may be read by a {allowed} partner only"
    raise Refusal("forbidden", "The header names a reader this message may not be sent to", [_header_finding(why, head.get("reader_at") or {}, family)])


def _header_finding(message: str, at: dict, family: str) -> Finding:
    """A finding about a header field at `at` (the adapter's peek_header location): a JSON pointer,
    or the XML element path / CSV column named in the message, with its line (and column)."""
    if family == "json" and at.get("pointer"):
        return Finding(message, pointer=at["pointer"])
    label = f"{at['field']}: " if at.get("field") else ""
    return Finding(label + message, line=at.get("line"), column=at.get("column"))


#: where the header's UUIDs are, per media family (a JSON pointer; XML and CSV findings name the field)
_UUID_FIELDS = {
    "message_uuid": {"json": "/header/messageUuid", "xml": "nachrichtenUUID", "csv": "nachrichtenUUID"},
    "reference_uuid": {"json": "/header/referenceUuid", "xml": "referenzUUID", "csv": "bezugUUID"},
}


def _identifier_findings(head: dict, family: str) -> list[Finding]:
    """The header's UUIDs are keys (the resend key, the chain's reference) stored in 36 characters.
    The contracts demand UUIDs, but a lax check (JSON Schema's "format: uuid" takes 32 hex digits
    with extra hyphens) could let another shape through to the database."""
    findings = []
    for key, where in _UUID_FIELDS.items():
        value = head.get(key)
        if (value is not None or key == "message_uuid") and not (isinstance(value, str) and _UUID.fullmatch(value)):
            message = f"{value!r:.60} is not a UUID (8-4-4-4-12 hexadecimal digits)"
            if family == "json":
                findings.append(Finding(message, pointer=where["json"]))
            else:
                findings.append(Finding(f"{where.get(family, key)}: {message}"))
    return findings



def store(hub: Hub, partner: Partner, data: bytes, head: dict, correlation_id: str | None) -> Accepted:
    """Store and queue in one transaction (shared with concurrent accepts: hub.group_commit). A resend
    is found by the (sender, message UUID) unique key: the insert fails and the first message's id is
    the answer (no read before every write)."""
    pending = Pending.of(hub, partner, data, head, correlation_id)
    try:
        hub.group_commit.run(pending.write)
    except IntegrityError:
        return pending.resend()
    return pending.accepted()


@dataclass
class Pending:
    """A checked message on its way into the store."""

    hub: Hub
    partner: Partner
    head: dict
    row: dict
    #: the request's log context (request id, partner): the write runs on the group-commit thread
    log_context: dict = field(default_factory=dict)

    @classmethod
    def of(cls, hub: Hub, partner: Partner, data: bytes, head: dict, correlation_id: str | None) -> Pending:
        message_uuid = str(head["message_uuid"]).lower()
        now = db.utcnow()
        row = {
            "id": new_id(),
            "sender": partner.id,
            "message_uuid": message_uuid,
            "message_type": head["message_type"],
            "version": head["version"],
            "format": partner.format,
            "status": "received",
            "correlation_id": correlation_id or head.get("reference_uuid") or message_uuid,
            "reference_uuid": head.get("reference_uuid"),
            "test": bool(head.get("test")),
            "content_hash": hashlib.sha256(data).hexdigest(),
            "raw": data,
            "created_at": now,
            "updated_at": now,
        }
        return cls(hub, partner, head, row, structlog.contextvars.get_contextvars())

    def write(self, conn: Connection) -> None:
        """Stored and queued: message, history, audit and outbox in the caller's transaction.

        The message row is collected like the rest: a resend then fails the group's commit, and the
        group commits its writes one by one (hub.group_commit), so this one alone meets the unique key."""
        row, head, partner = self.row, self.head, self.partner
        message_id = row["id"]
        with structlog.contextvars.bound_contextvars(**self.log_context):
            writes.store_message(conn, row)
            record(conn, message_id, "ingress", "received", sender=partner.id, message_type=head["message_type"], bytes=len(row["raw"]))
            record(conn, message_id, "ingress", "validated", contract=f"{head['message_type']} {head['version']} {partner.format}")
            audit(conn, partner.id, "received", message_id=message_id, partner=partner.id)
            self.hub.transport.publish(conn, PIPELINE, {"message_id": message_id})

    def accepted(self) -> Accepted:
        self.hub.transport.notify()
        MESSAGES_RECEIVED.labels(self.head["message_type"], self.partner.id).inc()
        return Accepted(self.row["id"], True)

    def resend_within(self, seconds: float) -> Accepted:
        """`resend` with its database work bounded by `seconds` (the HTTP accept path)."""
        with db.deadline(seconds):
            return self.resend()

    def resend(self) -> Accepted:
        """The insert met (sender, message UUID): answer with the first message's id."""
        existing = _existing(self.hub, self.partner.id, self.row["message_uuid"])
        if existing is None:
            raise RuntimeError("the message's unique key was taken, but no message holds it")
        return _resend(self.hub, existing, self.row["content_hash"])


def _existing(hub: Hub, sender: str, message_uuid: str) -> sa.Row | None:
    with db.read(hub.engine) as conn:
        return conn.execute(
            sa.select(messages.c.id, messages.c.content_hash).where(
                messages.c.sender == sender, messages.c.message_uuid == message_uuid
            )
        ).first()


def _resend(hub: Hub, existing: sa.Row, digest: str) -> Accepted:
    """A resend is answered with the first id and not processed again (surface.md).

    If the bytes differ, the first message still stands (the UUID identifies the message); the history
    says so, so an operator can see a partner reusing UUIDs.
    """
    with db.write(hub.engine) as conn:
        record(conn, existing.id, "ingress", "resend", content_differs=existing.content_hash != digest)
    return Accepted(existing.id, False)
