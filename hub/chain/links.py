"""The links of a case chain and their record (what each link received and decided), in the store.

A link is one assignment of the client to a measure: found by (case, partner, measure number); a
new link for the same measure opens only once the previous one reached a final state. The record
keeps the lifecycle's `keep` fields of each entry, never a second copy of the message.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.chain.lifecycle import LINK_FIELDS
from hub.chain.reads import cached
from hub.ids import new_id
from hub.store import unit_of_work
from hub.store.db import aware, utcnow
from hub.store.tables import cases, chain_events, chain_links


@dataclass
class Link:
    id: str
    case_id: str
    partner_id: str
    measure_number: str
    status: str
    values: dict[str, Any]
    test: bool = False


_LATEST = (
    sa.select(chain_links)
    .where(
        chain_links.c.case_id == sa.bindparam("case_id"),
        chain_links.c.partner_id == sa.bindparam("partner_id"),
        chain_links.c.measure_number == sa.bindparam("measure_number"),
        chain_links.c.test == sa.bindparam("test"),
    )
    .order_by(chain_links.c.opened_at.desc(), chain_links.c.id.desc())
    .limit(1)
)
_INSERT_EVENT = chain_events.insert()
_RECORD = (
    sa.select(chain_events.c.kind, chain_events.c.detail)
    .where(chain_events.c.link_id == sa.bindparam("link_id"))
    .order_by(chain_events.c.id)
)


def _link(row: Any) -> Link:
    values = {k: row._mapping[k] for k in LINK_FIELDS}
    values["opened_at"] = row.opened_at
    return Link(row.id, row.case_id, row.partner_id, row.measure_number, row.status, values, bool(row.test))


def latest(conn: Connection, case_id: str, partner_id: str, measure_number: str, test: bool = False) -> Link | None:
    """The newest link of the partner's measure for the case (it may be final), among the test
    links or the production links."""
    params = {"case_id": case_id, "partner_id": partner_id, "measure_number": measure_number, "test": test}
    row = cached(conn, ("link", case_id, partner_id, measure_number, test), lambda: conn.execute(_LATEST, params).first())
    return _link(row) if row else None


def latest_by_id(conn: Connection, link_id: str) -> Link | None:
    row = conn.execute(sa.select(chain_links).where(chain_links.c.id == link_id)).first()
    return _link(row) if row else None


def of_case(conn: Connection, case_id: str, partner_id: str | None = None) -> list[Link]:
    """The links of a case in the order they were opened (with `partner_id`: only that partner's)."""
    query = sa.select(chain_links).where(chain_links.c.case_id == case_id)
    if partner_id is not None:
        query = query.where(chain_links.c.partner_id == partner_id)
    return [_link(r) for r in conn.execute(query.order_by(chain_links.c.opened_at, chain_links.c.id))]


def events_of_case(conn: Connection, case_id: str) -> list[Any]:
    return list(conn.execute(sa.select(chain_events).where(chain_events.c.case_id == case_id).order_by(chain_events.c.id)))


def open_link(conn: Connection, case_id: str, partner_id: str, measure_number: str, status: str, test: bool = False) -> Link:
    now = utcnow()
    link = Link(new_id(), case_id, partner_id, measure_number, status, {}, test)
    conn.execute(chain_links.insert().values(
        id=link.id, case_id=case_id, partner_id=partner_id, measure_number=measure_number, status=status, test=test, opened_at=now, updated_at=now,
    ))
    return link


def update(conn: Connection, link: Link, status: str, values: dict[str, Any]) -> None:
    """Status and fields of a link (written at once: the next message of the batch reads them)."""
    conn.execute(chain_links.update().where(chain_links.c.id == link.id).values(status=status, updated_at=utcnow(), **values))
    link.status = status
    link.values.update(values)


def record(
    conn: Connection, case_id: str, link_id: str | None, kind: str, *, message_id: str | None = None, message_type: str | None = None,
    status_from: str | None = None, status_to: str | None = None, detail: dict[str, Any] | None = None,
) -> None:
    """An entry in the chain's record (append-only, collected by the transaction's unit of work)."""
    unit_of_work.execute(conn, _INSERT_EVENT, {
        "case_id": case_id, "link_id": link_id, "at": utcnow(), "kind": kind, "message_id": message_id, "message_type": message_type,
        "status_from": status_from, "status_to": status_to, "detail": jsonable(detail) if detail else None,
    })


def recorded(conn: Connection, message_id: str) -> bool:
    """Did the chain take this message before (a replay must not apply it twice)?"""
    return conn.execute(sa.select(chain_events.c.id).where(chain_events.c.message_id == message_id).limit(1)).first() is not None


def kept(conn: Connection, link_id: str) -> list[dict[str, Any]]:
    """The kept fields of every earlier entry of a link (what `recent` conditions count over),
    those still collected in this transaction's unit of work included."""
    stored = [r.detail for r in conn.execute(_RECORD, {"link_id": link_id}) if r.detail]
    unit = unit_of_work.current(conn)
    pending = [p["detail"] for p in unit.collected(_INSERT_EVENT) if p["link_id"] == link_id and p["detail"]] if unit else []
    return stored + pending


def set_case_status(conn: Connection, case_id: str, status: str, closed: bool = False) -> None:
    values: dict[str, Any] = {"status": status}
    if closed:
        values["closed_at"] = utcnow()
    conn.execute(cases.update().where(cases.c.id == case_id).values(**values))


def jsonable(value: Any) -> Any:
    """A value of the chain's rows as JSON holds it: dates as ISO text (a stored time with its zone),
    decimals as numbers, empty fields of a mapping left out."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return aware(value).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value
