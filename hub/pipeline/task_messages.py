"""Tasks to the owner's system as steuerung.aufgabe.5010, so a Fachverfahren that cannot call the
task API still receives them. From the hub, in the owner's format and version, checked against its
contract like any delivery, and only to an owner whose profile receives the type.

The delivery's message id is the task's id: one delivery per task, also when its cause is
processed again (the deliveries' unique key)."""

from __future__ import annotations

import uuid

from sqlalchemy.engine import Connection

from hub.canonical import Message
from hub.chain.links import Link
from hub.chain.membership import Case
from hub.chain.tasks import Task
from hub.pipeline.receipt import HUB_PARTY
from hub.runtime import Hub
from hub.store import writes
from hub.store.db import utcnow
from hub.store.history import audit

MESSAGE_TYPE = "steuerung.aufgabe.5010"
PURPOSE = "eingliederung"


def deliver_tasks(hub: Hub, conn: Connection, opened: list[Task], case: Case, link: Link | None) -> list[tuple[str, str]]:
    """A delivery per task to its owner's system, where the owner receives tasks; (delivery id, owner)."""
    written = []
    for task in opened:
        owner = hub.partners.get(task.owner)
        if owner is None or MESSAGE_TYPE not in owner.receives:
            continue
        version = owner.version_for(MESSAGE_TYPE, hub.registry.versions(MESSAGE_TYPE, owner.format))
        header = {
            "message_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"casechain:task:{task.id}")), "message_type": MESSAGE_TYPE,
            "created_at": utcnow().isoformat(), "author": HUB_PARTY, "reader": {"id": owner.id, "name": owner.name},
            "purpose": PURPOSE, "legal_basis": hub.purposes.purposes[PURPOSE].legal_basis, "version": version,
            "test": bool(link and link.test),
        }
        body = {
            "customer_number": case.customer_number, "task_id": task.id, "task_kind": task.kind, "title": task.title,
            "due_date": task.due_on.isoformat(), "decisions": sorted(task.spec.get("decisions") or {}), "rule": task.rule_id,
            "rule_version": task.rule_version, "measure_number": link.measure_number if link else None,
            "proposed_measure": task.proposed_measure, "proposal": task.spec.get("proposal"),
        }
        outgoing = Message.build(header, {k: v for k, v in body.items() if v is not None})
        adapter = hub.adapter(owner.format)
        data, _ = adapter.encode_checked(outgoing, version, owner.id)
        delivery_id = writes.queue_delivery(conn, task.id, owner.id, MESSAGE_TYPE, version, owner.format, adapter.media_type, PURPOSE, data)
        audit(conn, "hub", "transmitted", delivery_id=delivery_id, partner=owner.id, purpose=PURPOSE, legal_basis=header["legal_basis"],
              task=task.id, fields=sorted(k for k, v in body.items() if v is not None))
        written.append((delivery_id, owner.id))
    return written
