"""The id cross-reference, outbound: which id a recipient knows a person by.

The master person index files every record under (partner, local id). When the hub passes a person
on, the recipient gets ITS OWN id for that person where the index has one -- a Jobcenter its
Kundennummer, a municipal office its own client number -- never the sender's. Where the recipient has
none yet, the hub issues a pseudonym for this recipient and this person and files it in the
cross-reference, so that what the recipient sends back under it resolves to the same person; the
sender's id is never disclosed to it.
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.db import utcnow
from hub.ids import new_id
from hub.tables import person_events, person_records, persons

#: "HUB" + 7 Crockford base32 characters: fits the Kundennummer pattern of the contracts
#: ([0-9A-Z]{3}[0-9A-Z]{4,7}) and can never be mistaken for a BA Kundennummer (digits, letter, digits)
PSEUDONYM_PREFIX = "HUB"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

_LIVE = sa.select(persons.c.merged_into).where(persons.c.id == sa.bindparam("id"))
_OWN = (
    sa.select(person_records.c.local_id)
    .where(person_records.c.person_id == sa.bindparam("person_id"), person_records.c.partner_id == sa.bindparam("partner_id"))
    .order_by(person_records.c.updated_at.desc(), person_records.c.id.desc())
    .limit(1)
)
_TAKEN = sa.select(person_records.c.id).where(person_records.c.partner_id == sa.bindparam("partner_id"), person_records.c.local_id == sa.bindparam("local_id"))


def live_person(conn: Connection, person_id: str) -> str:
    """The person a (possibly merged) person id stands for now."""
    seen = {person_id}
    while (merged_into := conn.execute(_LIVE, {"id": person_id}).scalar()) is not None and merged_into not in seen:
        seen.add(merged_into)
        person_id = merged_into
    return person_id


def new_pseudonym() -> str:
    return PSEUDONYM_PREFIX + "".join(secrets.choice(_CROCKFORD) for _ in range(7))


def local_id_for(conn: Connection, person_id: str, partner_id: str, data: dict[str, Any]) -> str:
    """`partner_id`'s own id for the person; a pseudonym filed for it if it has none yet.

    The pseudonym's record carries the person data the recipient is given (so an operator sees what
    it knows) but not the sender's ids (the recipient never saw them), and no blocking keys: it is
    found by (partner, id), never matched as a new candidate."""
    data = {k: v for k, v in data.items() if k != "ids"}
    person_id = live_person(conn, person_id)
    own = conn.execute(_OWN, {"person_id": person_id, "partner_id": partner_id}).scalar()
    if own is not None:
        return own
    pseudonym = new_pseudonym()
    while conn.execute(_TAKEN, {"partner_id": partner_id, "local_id": pseudonym}).first() is not None:
        pseudonym = new_pseudonym()
    now, record_id = utcnow(), new_id()
    conn.execute(
        person_records.insert().values(
            id=record_id, person_id=person_id, origin_person_id=person_id, partner_id=partner_id, local_id=pseudonym,
            data=data, norm=None, message_id=None, created_at=now, updated_at=now,
        )
    )
    conn.execute(
        person_events.insert().values(
            at=now, action="pseudonym-issued", person_id=person_id, other_person_id=None, record_id=record_id, actor="hub",
            detail={"partner": partner_id},
        )
    )
    return pseudonym
