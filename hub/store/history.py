"""Message history and audit log: every stage appends to both, in the stage's own transaction.

History answers "what happened to this message" (for senders and operators); the audit log answers
"who transmitted or accessed what, when, for which purpose, on which legal basis" (§ 67d, § 80 SGB X,
for auditors), is hash-chained (hub.store.audit_chain) and survives the deletion of message bodies
(it refers to messages by id, without a foreign key).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog
from sqlalchemy.engine import Connection

from hub.store import audit_chain, unit_of_work
from hub.store.db import utcnow
from hub.metrics import STAGE_EVENTS
from hub.store.tables import message_events

log = structlog.get_logger("hub")

_INSERT_EVENT = message_events.insert()


def record(conn: Connection, message_id: str, stage: str, event: str, **detail: Any) -> None:
    # a prebuilt statement with a parameter dict (no per-call statement construction), collected into
    # the transaction's unit of work where one is open (one executemany per batch)
    unit_of_work.execute(conn, _INSERT_EVENT, {"message_id": message_id, "at": utcnow(), "stage": stage, "event": event, "detail": detail or None})
    STAGE_EVENTS.labels(stage, event).inc()
    log.info(f"{stage}.{event}", message_id=message_id, **detail)


# -- history in words ---------------------------------------------------------------------------------
def _who(value: Any) -> str:
    """A partner as a sentence names it ("partner": one the viewer may not see by name)."""
    return "another partner" if value in (None, "partner") else str(value)


def _list(values: Any) -> str:
    return ", ".join(_who(v) for v in values) if values else "no one"


def _also(detail: Mapping[str, Any], key: str, text: str) -> str:
    """`text` with the field's value, or nothing where the viewer's detail does not hold the field."""
    value = detail.get(key)
    return text.format(_list(value) if isinstance(value, list) else value) if value not in (None, [], "") else ""


Sentence = Callable[[Mapping[str, Any]], str]

#: (stage, event) -> the entry in words, from the detail the viewer may see (hidden fields are
#: simply absent). A sentence never needs a field: it is read by senders too, who see fewer.
SENTENCES: dict[tuple[str, str], Sentence] = {
    ("ingress", "received"): lambda d: f"Received {d.get('message_type', 'a message')} from {_who(d.get('sender'))}" + _also(d, "bytes", " ({} bytes)"),
    ("ingress", "validated"): lambda d: "Valid against its contract" + _also(d, "contract", " {}"),
    ("ingress", "resend"): lambda d: "Sent again with the same message UUID: answered with this message's id, not processed again"
    + ("; the content differs from the first" if d.get("content_differs") else ""),
    ("pipeline", "decoded"): lambda d: "Read into the canonical model" + _also(d, "routes", "; routes: {}"),
    ("identity", "resolved"): lambda d: f"Person resolved: {d.get('decision', 'done')}" + _also(d, "person", " (person {})") + _also(d, "review", ", review {}"),
    ("chain", "case"): lambda d: "Belongs to a case chain" + _also(d, "case", " (case {})"),
    ("chain", "link"): lambda d: "Recorded on its link of the case chain" + _also(d, "link", " (link {})") + _also(d, "tasks", "; tasks opened: {}"),
    ("routing", "withheld"): lambda d: f"Withheld from {_who(d.get('recipient'))}: " + (d.get("reason") or f"purpose {d.get('purpose')} not allowed"),
    ("routing", "routed"): lambda d: f"Routed to {_list(d.get('recipients'))}",
    ("translation", "translated"): lambda d: f"Translated for {_who(d.get('recipient'))}" + _also(d, "to_version", " to version {}")
    + _also(d, "dropped", "; fields that version cannot carry: {}"),
    ("delivery", "queued"): lambda d: f"{d.get('message_type', 'Delivery')} queued for {_who(d.get('recipient'))}" + _also(d, "delivery_id", " (delivery {})"),
    ("delivery", "exists"): lambda d: f"Delivery to {_who(d.get('recipient'))} exists already and is not written twice" + _also(d, "delivery_id", " (delivery {})"),
    ("delivery", "published"): lambda d: f"Delivery published to the queue of {_who(d.get('recipient'))}" + _also(d, "delivery_id", " (delivery {})"),
    ("delivery", "dead"): lambda d: f"Delivery to {_who(d.get('recipient'))} given up" + _also(d, "reason", ": {}"),
    ("delivery", "acknowledged"): lambda d: f"{_who(d.get('recipient'))} acknowledged its delivery" + _also(d, "message_type", " of {}")
    + _also(d, "delivery_id", " (delivery {})"),
    ("delivery", "delivered"): lambda d: "Delivered: every recipient has acknowledged its delivery",
    ("relay", "dead"): lambda d: "The relay gave the message up" + _also(d, "reason", ": {}"),
    ("pipeline", "rejected"): lambda d: "Rejected" + _also(d, "reason", " ({})") + _also(d, "detail", ": {}"),
    ("pipeline", "dead"): lambda d: "Processing failed on every attempt; kept as a dead letter for an operator" + _also(d, "reason", ": {}"),
    ("dedup", "duplicate"): lambda d: "A duplicate of " + (f"message {d['of']}" if d.get("of") else "a report received before")
    + ": answered, not delivered again",
    ("operations", "replayed"): lambda d: "Replayed" + _also(d, "by", " by {}") + _also(d, "previous_status", " (it was {})")
    + _also(d, "deliveries", "; deliveries pushed again: {}"),
}


def in_words(stage: str, event: str, detail: Mapping[str, Any] | None) -> str:
    """One history entry as a sentence, from the detail its viewer may see.

    Composed when the history is read, not stored: the sentence must hold only what the viewer may
    see, and writing it with every event would cost the fast path bytes and time."""
    sentence = SENTENCES.get((stage, event))
    if sentence is None:
        fields = ", ".join(f"{k}: {v}" for k, v in (detail or {}).items())
        return f"{stage} {event}".capitalize() + (f" ({fields})" if fields else "")
    return sentence(detail or {})


#: the hub's own purposes (what it processes for the partners, and how it is run), with their legal
#: basis; a partner's data travels under the purposes of contracts/purposes.yaml instead
OWN_PURPOSES: dict[str, str] = {
    "vermittlung": "§ 67d Abs. 3, § 80 SGB X (Vermittlungsstelle, Auftragsverarbeitung)",
    "nachverfolgung": "§ 80 SGB X (Auftragsverarbeitung: Status und Verlauf einer Nachricht)",
    "betrieb": "§ 80 SGB X (Auftragsverarbeitung: Betrieb des Hubs)",
    "personenabgleich": "§ 80 SGB X (Auftragsverarbeitung: Personenindex)",
    "zugangsverwaltung": "§ 78a SGB X (technische und organisatorische Maßnahmen: Zugangskontrolle)",
    "datenschutzkontrolle": "§ 78a SGB X, § 80 SGB X (Protokollierung und Kontrolle)",
}

#: the purpose of each action of the hub's own, where the caller names none
ACTION_PURPOSES: dict[str, str] = {
    "received": "vermittlung",
    "message-read": "nachverfolgung",
    "message-content-read": "betrieb",
    "messages-searched": "nachverfolgung",
    "replayed": "betrieb",
    "replayed-matching": "betrieb",
    "cases-read": "betrieb",
    "reviews-read": "personenabgleich",
    "review-confirmed": "personenabgleich",
    "review-rejected": "personenabgleich",
    "person-read": "personenabgleich",
    "person-unmerged": "personenabgleich",
    "person-index-reviews": "personenabgleich",
    "person-index-confirm": "personenabgleich",
    "person-index-reject": "personenabgleich",
    "person-index-person": "personenabgleich",
    "person-index-unmerge": "personenabgleich",
    "token-issued": "zugangsverwaltung",
    "console-signed-in": "zugangsverwaltung",
    "console-sign-in-refused": "zugangsverwaltung",
    "console-signed-out": "zugangsverwaltung",
    "console-user-added": "zugangsverwaltung",
    "console-user-disabled": "zugangsverwaltung",
    "console-password-set": "zugangsverwaltung",
    "token-revoked": "zugangsverwaltung",
    "tokens-revoked": "zugangsverwaltung",
    "audit-exported": "datenschutzkontrolle",
    "audit-read": "datenschutzkontrolle",
    "audit-verified": "datenschutzkontrolle",
    "conflicts-read": "personenabgleich",
    "conflict-resolved": "personenabgleich",
    "alert-notified": "betrieb",
}


def audit(
    conn: Connection,
    actor: str,
    action: str,
    *,
    message_id: str | None = None,
    delivery_id: str | None = None,
    partner: str | None = None,
    purpose: str | None = None,
    legal_basis: str | None = None,
    **detail: Any,
) -> None:
    """Append an entry: who (`actor`) did what (`action`, the ids, `detail`) for which purpose on which
    legal basis; when is now. A transmission names its purpose and legal basis (contracts/purposes.yaml);
    the hub's own actions take them from ACTION_PURPOSES and OWN_PURPOSES. An entry without both is a
    programming error and raises ValueError: the log must say why every access happened.

    Collected in the transaction's unit of work where one is open and chained when it is written
    (hub.store.audit_chain)."""
    purpose = purpose or ACTION_PURPOSES.get(action)
    legal_basis = legal_basis or OWN_PURPOSES.get(purpose or "")
    if not actor or not purpose or not legal_basis:
        raise ValueError(f"audit entry {action!r} by {actor!r} names no purpose and legal basis (add it to ACTION_PURPOSES or pass both)")
    unit_of_work.execute(
        conn,
        audit_chain.INSERT,
        {
            "at": utcnow(),
            "actor": actor,
            "action": action,
            "message_id": message_id,
            "delivery_id": delivery_id,
            "partner": partner,
            "purpose": purpose,
            "legal_basis": legal_basis,
            "detail": detail or None,
        },
    )
