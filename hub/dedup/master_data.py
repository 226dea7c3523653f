"""Field-level versions of a person's master data, what each partner holds, and data conflicts.

A partner sends a person's master data as a whole record (person.stammdaten: every field it knows),
so one record does not say which fields the partner *changed*. Forwarded as it came, the later of two
concurrent records undid the earlier one's change at its recipient -- a lost update. The hub therefore
keeps, per person and field (a dotted canonical path such as ``person.address.street``):

- every value it accepted, with its version (the person's master-data *revision* that set it, one
  per accepted message), the partner or operator who set it, the message and the time
  (``master_data_fields``: the highest version is the field's head);
- what each partner holds: the values it sent, and the values delivered to it once it took them (its
  acknowledgement, or the broker's for a pushed delivery) (``master_data_exchanges``).

A stated value is then judged by a three-way merge of the hub's head, the sender's *base* (what it
held before) and the value itself:

- the head's value: nothing changes;
- the base value: the sender did not touch the field -- a stale copy is never taken for a change, so
  it cannot undo another partner's change;
- a change while the head is still the base: accepted, in the message's new revision;
- a change while the head moved on from the base (someone else changed the field meanwhile) to yet
  another value: a concurrent change, a conflict (``data_conflicts``) with both values; the field
  keeps its value until an operator picks one.

The base is the value at the revision the sender names (``base_version``; person.stammdaten 2.1
carries it as ``basisVersion``) or, where its contract version cannot carry one, what the hub knows it
holds. Either way a value the sender itself last sent or took is never a change, since one revision
number cannot say that a sender kept its own value of one field while it took the others.

Everything here runs under a lock on the person (PostgreSQL: an advisory lock; SQLite has one writer),
so two workers never judge changes of one person against the same head.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.findings import Refusal
from hub.ids import new_id
from hub.store.db import aware, utcnow
from hub.store.tables import data_conflicts, deliveries, master_data_exchanges, master_data_fields

#: first key of the advisory locks on persons' master data (the person index uses 0x4D5049)
LOCK_SPACE = 0x4D4446  # "MDF"
# starts with WITH, not SELECT: the unit of work issues the item's lazy savepoint first (see
# hub.dedup.index.base._LOCK_SQL), so a deadlock victim rolls back only its own item
_LOCK_SQL = "WITH p(h) AS (SELECT CAST(%s AS integer)) SELECT pg_advisory_xact_lock(%s, h) FROM p"
#: delivery states in which the recipient took the delivery (inbox or file: acknowledged; AMQP: published)
TAKEN = ("acknowledged", "published")
SIDES = ("a", "b")
_MISSING: Any = object()


def leaves(body: dict[str, Any], roots: Iterable[str]) -> dict[str, Any]:
    """The versioned fields a body states: every leaf under `roots`, by dotted path (absent fields
    and None are not stated: a record that leaves a field out does not clear it)."""
    out: dict[str, Any] = {}

    def walk(path: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                walk(f"{path}.{key}", child)
        elif value is not None:
            out[path] = value

    for root in roots:
        if root in body:
            walk(root, body[root])
    return out


@dataclass(frozen=True)
class FieldVersion:
    version: int
    value: Any
    set_by: str
    message_id: str | None
    set_at: dt.datetime


@dataclass
class Judgement:
    """What one message did to the master data: the fields it changed, those it could not change
    because of a conflict (held), the conflicts it opened or restated, and what the sender holds now."""

    changed: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    holding: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ledger:
    """One person's master data as the hub holds it, read (and locked) once per message or decision."""

    person_id: str
    versions: dict[str, list[FieldVersion]]  # per field, oldest first
    conflicts: dict[str, Any]  # the open conflict of a field, by field

    @property
    def revision(self) -> int:
        """The person's master-data revision: the highest version of any field (0: none yet)."""
        return max((history[-1].version for history in self.versions.values()), default=0)

    def head(self, name: str) -> FieldVersion | None:
        history = self.versions.get(name)
        return history[-1] if history else None

    def at(self, name: str, revision: int) -> Any:
        """The field's value at `revision` (_MISSING where it had none yet)."""
        for version in reversed(self.versions.get(name, ())):
            if version.version <= revision:
                return version.value
        return _MISSING

    def own(self, name: str, partner_id: str) -> int:
        """The field's latest version the partner set itself (0: none). A sender knows its own changes
        though no delivery told it their revision: a revision it names never hides them."""
        return max((v.version for v in self.versions.get(name, ()) if v.set_by == partner_id), default=0)

    def values(self) -> dict[str, Any]:
        """Every field's head value."""
        return {name: history[-1].value for name, history in self.versions.items()}

    # -- writes --------------------------------------------------------------------------------------
    def set(self, conn: Connection, values: dict[str, Any], set_by: str, message_id: str | None, now: dt.datetime) -> int:
        """Accept `values` as the person's next revision; returns it (the current one if nothing is new)."""
        if not values:
            return self.revision
        revision = self.revision + 1
        conn.execute(
            master_data_fields.insert(),
            [{"person_id": self.person_id, "field": k, "version": revision, "value": v, "set_by": set_by, "message_id": message_id, "set_at": now} for k, v in values.items()],
        )
        for name, value in values.items():
            self.versions.setdefault(name, []).append(FieldVersion(revision, value, set_by, message_id, now))
        return revision

    def judge(
        self, conn: Connection, partner_id: str, message_id: str, stated: dict[str, Any], base: int | None, holding: dict[str, Any], message_type: str
    ) -> Judgement:
        """Apply what `partner_id` states (see the module docstring): accept its changes as one new
        revision, open a conflict per field it changed concurrently, and return what happened."""
        now, out, accepted = utcnow(), Judgement(), {}
        if base is not None and base > self.revision:
            base = None  # a revision the hub never issued for this person (e.g. one of a person merged away): infer
        for name, value in stated.items():
            out.holding[name] = value
            conflict = self.conflicts.get(name)
            if conflict is not None:
                out.held.append(name)
                if _restate(conn, conflict, partner_id, message_id, value, now):
                    out.conflicts.append(conflict["id"])
                continue
            head = self.head(name)
            if head is None:
                accepted[name] = value
                continue
            held = holding.get(name, _MISSING)
            named = self.at(name, max(base, self.own(name, partner_id))) if base is not None else _MISSING
            if value == head.value or value in (held, named):
                continue  # the head already, or what the sender held: it did not change the field
            before = named if base is not None else held
            if before == head.value:
                accepted[name] = value
                continue
            out.held.append(name)
            out.conflicts.append(self._open(conn, name, head, before, partner_id, message_id, value, message_type, now))
        self.set(conn, accepted, partner_id, message_id, now)
        out.changed = sorted(accepted)
        return out

    def _open(
        self, conn: Connection, name: str, head: FieldVersion, base: Any, partner_id: str, message_id: str, value: Any, message_type: str, now: dt.datetime
    ) -> str:
        conflict_id = new_id()
        detail = {
            "message_type": message_type,
            "base": None if base is _MISSING else base,
            "a": {"partner": head.set_by, "value": head.value, "version": head.version, "message_id": head.message_id},
            "b": {"partner": partner_id, "value": value, "message_id": message_id},
        }
        row = {"id": conflict_id, "person_id": self.person_id, "field": name, "status": "open", "detail": detail, "created_at": now}
        conn.execute(data_conflicts.insert().values(**row))
        self.conflicts[name] = row
        return conflict_id


def _restate(conn: Connection, conflict: Any, partner_id: str, message_id: str, value: Any, now: dt.datetime) -> bool:
    """A partner on one side of an open conflict states the field again: a new value replaces its
    side (the operator decides between the latest values); its side's value or the other side's
    changes nothing. Returns whether the conflict changed."""
    detail = dict(conflict["detail"])
    if value in (detail["a"]["value"], detail["b"]["value"]):
        return False
    side = next((s for s in SIDES if detail[s]["partner"] == partner_id), None)
    if side is None:
        return False  # a third partner: the field stays held for everyone until the decision
    detail[side] = {**detail[side], "value": value, "message_id": message_id, "restated_at": now.isoformat()}
    conn.execute(data_conflicts.update().where(data_conflicts.c.id == conflict["id"]).values(detail=detail))
    conflict["detail"] = detail
    return True


# -- reading ---------------------------------------------------------------------------------------------
def lock(conn: Connection, person_id: str) -> None:
    """Hold the person's master data until the transaction ends (PostgreSQL; SQLite: the write lock)."""
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.blake2b(person_id.encode("utf-8"), digest_size=4).digest(), "big", signed=True)
        conn.exec_driver_sql(_LOCK_SQL, (key, LOCK_SPACE)).all()


def ledger(conn: Connection, person_id: str) -> Ledger:
    """The person's master data, locked (see :func:`lock`)."""
    lock(conn, person_id)
    versions: dict[str, list[FieldVersion]] = {}
    rows = conn.execute(
        sa.select(master_data_fields).where(master_data_fields.c.person_id == person_id).order_by(master_data_fields.c.field, master_data_fields.c.version)
    )
    for r in rows:
        versions.setdefault(r.field, []).append(FieldVersion(r.version, r.value, r.set_by, r.message_id, r.set_at))
    open_ = conn.execute(sa.select(data_conflicts).where(data_conflicts.c.person_id == person_id, data_conflicts.c.status == "open"))
    return Ledger(person_id, versions, {r.field: dict(r._mapping) for r in open_})


def holding(conn: Connection, person_id: str, partner_id: str, message_type: str) -> dict[str, Any]:
    """What `partner_id` holds of the person: per field the value it last sent or took, in the order
    it did so (a delivery counts from its acknowledgement, not from when the hub wrote it)."""
    delivered = deliveries.c
    rows = conn.execute(
        sa.select(master_data_exchanges.c.id, master_data_exchanges.c.direction, master_data_exchanges.c.held, master_data_exchanges.c.at,
                  delivered.status, delivered.acked_at, delivered.created_at)
        .select_from(
            master_data_exchanges.outerjoin(
                deliveries,
                sa.and_(delivered.message_id == master_data_exchanges.c.message_id, delivered.recipient == master_data_exchanges.c.partner_id,
                        delivered.message_type == message_type),
            )
        )
        .where(master_data_exchanges.c.person_id == person_id, master_data_exchanges.c.partner_id == partner_id)
    ).all()
    effective = []
    for r in rows:
        if r.direction == "received":
            effective.append((aware(r.at), r.id, r.held))
        elif r.status in TAKEN:
            effective.append((aware(r.acked_at or r.created_at), r.id, r.held))
    out: dict[str, Any] = {}
    for _, _, held in sorted(effective, key=lambda e: (e[0], e[1])):
        out.update(held)
    return out


def applied(conn: Connection, message_id: str) -> bool:
    """Whether the message's master data were judged before (a replay judges nothing again)."""
    return conn.execute(
        sa.select(master_data_exchanges.c.id).where(master_data_exchanges.c.message_id == message_id, master_data_exchanges.c.direction == "received").limit(1)
    ).first() is not None


def partners_of(conn: Connection, person_id: str) -> list[str]:
    """The partners that exchanged master data of the person with the hub."""
    return sorted(conn.execute(sa.select(master_data_exchanges.c.partner_id).where(master_data_exchanges.c.person_id == person_id).distinct()).scalars())


def exchanged(conn: Connection, person_id: str, partner_id: str, message_id: str, direction: str, held: dict[str, Any]) -> None:
    """Note what a message gave the hub (received) or a delivery gives the partner (delivered).
    Written at once: the next message of the same batch may concern the same person."""
    conn.execute(
        master_data_exchanges.insert().values(person_id=person_id, partner_id=partner_id, message_id=message_id, direction=direction, held=held, at=utcnow())
    )


# -- the operators' side -----------------------------------------------------------------------------------
def conflict_view(row: Any) -> dict[str, Any]:
    detail = row.detail or {}
    return {
        "id": row.id, "person_id": row.person_id, "field": row.field, "status": row.status,
        "base": detail.get("base"), "a": detail.get("a"), "b": detail.get("b"),
        "created_at": aware(row.created_at).isoformat(),
        **({"decided_at": aware(row.decided_at).isoformat(), "decided_by": row.decided_by, "chosen": row.chosen} if row.decided_at else {}),
        **({"message_id": row.resolution_message_id} if row.resolution_message_id else {}),
    }


def conflicts(conn: Connection, status: str = "open", limit: int = 100) -> list[dict[str, Any]]:
    """The data conflicts of that status, oldest first."""
    rows = conn.execute(sa.select(data_conflicts).where(data_conflicts.c.status == status).order_by(data_conflicts.c.created_at, data_conflicts.c.id).limit(limit))
    return [conflict_view(r) for r in rows]


def decide(conn: Connection, conflict_id: str, pick: str, actor: str, message_id: str) -> tuple[Ledger, Any, Any]:
    """Close an open conflict with side `pick` (a or b): its value becomes the field's next version,
    set by `actor` under the hub's message `message_id` (which forwards it). Exactly one decision wins:
    the conflict is claimed by a conditional UPDATE, the loser gets a conflict with nothing done.
    Returns the person's ledger (after the decision), the conflict as it was and the chosen value."""
    if pick not in SIDES:
        raise Refusal("invalid-request", f"Pick a or b, not {pick!r}")
    row = conn.execute(sa.select(data_conflicts).where(data_conflicts.c.id == conflict_id)).first()
    if row is None:
        raise Refusal("not-found", f"No data conflict {conflict_id}")
    book = ledger(conn, row.person_id)  # locked before the claim: no message of the person is judged meanwhile
    now = utcnow()
    claimed = conn.execute(
        data_conflicts.update()
        .where(data_conflicts.c.id == conflict_id, data_conflicts.c.status == "open")
        .values(status="resolved", decided_at=now, decided_by=actor, chosen=pick, resolution_message_id=message_id)
    ).rowcount
    if claimed != 1:
        raise Refusal("conflict", f"Data conflict {conflict_id} was already resolved")
    book.conflicts.pop(row.field, None)
    value = row.detail[pick]["value"]
    # a new version even where the value is the head's already: a partner that names an older
    # revision is then concurrent with the decision, not taken as a change made after it
    book.set(conn, {row.field: value}, actor, message_id, now)
    return book, row, value
