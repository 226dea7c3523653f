"""The case chain's membership: which partners belong to a case, and each one's own case reference.

This is the id cross-reference of the hub: a Jobcenter knows the case by Kundennummer, each provider
by its own pseudonymous case id; routing asks here who belongs to a case and translates references
per recipient. (Links, statuses and next-step rules of the chain build on these tables.)
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.store.db import aware, utcnow
from hub.ids import new_case_ref, new_id
from hub.store.tables import case_measures, case_members, cases


@dataclass(frozen=True)
class Case:
    id: str
    owner: str
    customer_number: str
    bg_number: str | None


# built once: these run for every message (the pipeline's hot path)
_CASE = sa.select(cases.c.id, cases.c.owner, cases.c.customer_number, cases.c.bg_number)
_CASE_BY_ID = _CASE.where(cases.c.id == sa.bindparam("case_id"))
_CASE_BY_REF = _CASE.join_from(cases, case_members, case_members.c.case_id == cases.c.id).where(
    case_members.c.partner_id == sa.bindparam("partner_id"), case_members.c.local_ref == sa.bindparam("ref")
)
_LOCAL_REF = sa.select(case_members.c.local_ref).where(
    case_members.c.case_id == sa.bindparam("case_id"), case_members.c.partner_id == sa.bindparam("partner_id")
)
_MEMBERS = sa.select(case_members.c.partner_id).where(case_members.c.case_id == sa.bindparam("case_id"))
_MEMBERS_IN_ROLE = _MEMBERS.where(case_members.c.role == sa.bindparam("role"))
_RUNNING = sa.select(case_measures.c.partner_id).where(
    case_measures.c.case_id == sa.bindparam("case_id"), case_measures.c.measure_number == sa.bindparam("measure_number")
)


def _case(conn: Connection, case_id: str) -> Case:
    row = conn.execute(_CASE_BY_ID, {"case_id": case_id}).one()
    return Case(row.id, row.owner, row.customer_number, row.bg_number)


def case_by_id(conn: Connection, case_id: str) -> Case:
    return _case(conn, case_id)


def find(conn: Connection, case_id: str) -> Case | None:
    """The case with the hub's id `case_id`, or None."""
    row = conn.execute(_CASE_BY_ID, {"case_id": case_id}).first()
    return Case(row.id, row.owner, row.customer_number, row.bg_number) if row else None


def open_case(conn: Connection, owner: str, customer_number: str, bg_number: str | None, person_id: str | None = None) -> Case:
    """The owner's case for a client, created on first use (idempotent)."""
    row = conn.execute(
        sa.select(cases.c.id).where(cases.c.owner == owner, cases.c.customer_number == customer_number)
    ).first()
    if row:
        updates = {k: v for k, v in (("bg_number", bg_number), ("person_id", person_id)) if v}
        if updates:
            conn.execute(cases.update().where(cases.c.id == row.id).values(**updates))
        return _case(conn, row.id)
    case_id = new_id()
    conn.execute(
        cases.insert().values(
            id=case_id, owner=owner, customer_number=customer_number, bg_number=bg_number, person_id=person_id, created_at=utcnow()
        )
    )
    conn.execute(
        case_members.insert().values(case_id=case_id, partner_id=owner, role="owner", local_ref=customer_number, joined_at=utcnow())
    )
    return Case(case_id, owner, customer_number, bg_number)


def join(conn: Connection, case: Case, partner_id: str, role: str) -> str:
    """Add a partner to the case (idempotent) and return its own reference for the case."""
    ref = local_ref(conn, case.id, partner_id)
    if ref is None:
        ref = new_case_ref()
        conn.execute(
            case_members.insert().values(case_id=case.id, partner_id=partner_id, role=role, local_ref=ref, joined_at=utcnow())
        )
    return ref


def local_ref(conn: Connection, case_id: str, partner_id: str) -> str | None:
    row = conn.execute(_LOCAL_REF, {"case_id": case_id, "partner_id": partner_id}).first()
    return row[0] if row else None


def case_for_ref(conn: Connection, partner_id: str, ref: str) -> Case | None:
    """The case a partner means by its own reference, or None (also when it is not a member)."""
    row = conn.execute(_CASE_BY_REF, {"partner_id": partner_id, "ref": ref}).first()
    return Case(row.id, row.owner, row.customer_number, row.bg_number) if row else None


_CASES_BY_REFS = _CASE.add_columns(case_members.c.partner_id, case_members.c.local_ref).join_from(
    cases, case_members, case_members.c.case_id == cases.c.id
).where(sa.tuple_(case_members.c.partner_id, case_members.c.local_ref).in_(sa.bindparam("refs", expanding=True)))


def cases_for_refs(conn: Connection, refs: list[tuple[str, str]]) -> dict[tuple[str, str], Case]:
    """`case_for_ref` for many (partner, reference) pairs in one statement; pairs without a case are left out."""
    if not refs:
        return {}
    return {(r.partner_id, r.local_ref): Case(r.id, r.owner, r.customer_number, r.bg_number) for r in conn.execute(_CASES_BY_REFS, {"refs": refs})}


def members(conn: Connection, case_id: str, role: str | None = None) -> list[str]:
    if role:
        return [r[0] for r in conn.execute(_MEMBERS_IN_ROLE, {"case_id": case_id, "role": role})]
    return [r[0] for r in conn.execute(_MEMBERS, {"case_id": case_id})]


def add_measure(conn: Connection, case: Case, partner_id: str, measure_number: str) -> None:
    """Record that `partner_id` runs `measure_number` for the case (idempotent)."""
    exists = conn.execute(
        sa.select(case_measures.c.case_id).where(
            case_measures.c.case_id == case.id, case_measures.c.partner_id == partner_id, case_measures.c.measure_number == measure_number
        )
    ).first()
    if exists is None:
        conn.execute(case_measures.insert().values(case_id=case.id, partner_id=partner_id, measure_number=measure_number, joined_at=utcnow()))


def running(conn: Connection, case_id: str, measure_number: str) -> list[str]:
    """The partners that run `measure_number` for the case."""
    return [r[0] for r in conn.execute(_RUNNING, {"case_id": case_id, "measure_number": measure_number})]


_MEASURES_OF = sa.select(case_measures.c.case_id, case_measures.c.partner_id, case_measures.c.measure_number).where(
    case_measures.c.case_id.in_(sa.bindparam("case_ids", expanding=True))
)


def measures_of(conn: Connection, case_ids: list[str]) -> set[tuple[str, str, str]]:
    """(case, partner, measure) of every measure run for `case_ids`, in one statement."""
    return {(r.case_id, r.partner_id, r.measure_number) for r in conn.execute(_MEASURES_OF, {"case_ids": case_ids})} if case_ids else set()


def listing(conn: Connection, partner_id: str | None = None, limit: int = 50) -> list[dict]:
    """The newest cases first, each with every member's own reference (or, with `partner_id`, only
    the cases that partner belongs to): what an operator or a newcomer looks a case up by."""
    query = sa.select(cases.c.id, cases.c.owner, cases.c.created_at).order_by(cases.c.created_at.desc(), cases.c.id.desc()).limit(limit)
    if partner_id is not None:
        query = query.where(cases.c.id.in_(sa.select(case_members.c.case_id).where(case_members.c.partner_id == partner_id)))
    rows = conn.execute(query).all()
    refs: dict[str, dict[str, str]] = {r.id: {} for r in rows}
    if rows:
        for m in conn.execute(sa.select(case_members.c.case_id, case_members.c.partner_id, case_members.c.local_ref).where(case_members.c.case_id.in_(list(refs)))):
            refs[m.case_id][m.partner_id] = m.local_ref
    return [{"id": r.id, "owner": r.owner, "opened_at": aware(r.created_at).isoformat(), "references": refs[r.id]} for r in rows]
