"""The id cross-reference: which person a partner's local id is, in both directions.

Inbound, subject() reads the local id and person data a message carries (an id scheme counts as
an id only where the sender issues it). Outbound, local_id_for() gives a recipient the person
under its own id, issuing a pseudonym where it has none. person() shows what the index holds
about a person: its local ids, records and history.
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.dedup.index.merges import Merges
from hub.findings import Refusal
from hub.ids import new_id
from hub.store.db import aware, utcnow
from hub.store.tables import person_events, person_records, persons

#: "HUB" + 7 Crockford base32 characters: fits the Kundennummer pattern of the contracts
#: ([0-9A-Z]{3}[0-9A-Z]{4,7}) and is never mistaken for a BA Kundennummer (digits, letter, digits)
PSEUDONYM_PREFIX = "HUB"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: a partner's own id for a person: its latest record there that the hub did not issue, else the issued one
_OWN_ID = (
    sa.select(person_records.c.local_id)
    .where(person_records.c.person_id == sa.bindparam("person_id"), person_records.c.partner_id == sa.bindparam("partner_id"))
    .order_by(person_records.c.issued, person_records.c.updated_at.desc(), person_records.c.id.desc())
    .limit(1)
)
_ID_TAKEN = sa.select(person_records.c.id).where(person_records.c.partner_id == sa.bindparam("partner_id"), person_records.c.local_id == sa.bindparam("local_id"))


def new_pseudonym() -> str:
    return PSEUDONYM_PREFIX + "".join(secrets.choice(_CROCKFORD) for _ in range(7))


class CrossReference(Merges):
    """:meth:`subject`, :meth:`local_id_for` and :meth:`person`."""

    def subject(self, message_type: str, body: dict[str, Any], sender_role: str | None = None) -> tuple[str, dict[str, Any]] | None:
        """(local id, record data) of the person a message carries, or None.

        An id scheme with `id_issuers` in the policy is an id only where the sender's role issues it:
        a Jobcenter's customer_number is the BA Kundennummer, a municipal office's is its own client
        number -- its local id, never compared with a Kundennummer (that would count every true
        match as 'ids different')."""
        spec = self.subjects.get(message_type)
        if spec is None or not isinstance(body.get(spec["person"]), dict) or not body.get(spec["local_id"]):
            return None
        person = body[spec["person"]]
        address = person.get("address") or {}
        data = {f: person.get(f) for f in ("given_name", "family_name", "birth_name", "birth_date")}
        data.update({f: address.get(f) for f in ("street", "house_number", "postcode", "city")})
        issuers = spec.get("id_issuers") or {}
        data["ids"] = {
            scheme: body[field] for scheme, field in spec.get("ids", {}).items()
            if body.get(field) and (scheme not in issuers or sender_role in issuers[scheme])
        }
        return str(body[spec["local_id"]]), {k: v for k, v in data.items() if v}

    # -- the cross-reference, outbound ---------------------------------------------------------------
    def local_id_for(self, conn: Connection, person_id: str, partner_id: str, data: dict[str, Any]) -> str:
        """The id `partner_id` knows the person by, for a delivery; a pseudonym issued to it if none.

        A recipient gets the person under ITS OWN id (a Jobcenter its Kundennummer, a municipal office
        its own client number), never under the sender's. Where it has none yet, the hub issues it a
        pseudonym (`PSEUDONYM_PREFIX` + 7 characters, within the contracts' Kundennummer pattern) and
        files it as an `issued` record, so that what the recipient sends back under it is this person.
        The record holds the person data the recipient was given, not the sender's ids (the recipient
        never saw them); it has no blocking keys and is no evidence about the person until the
        recipient sends under it (see _update_known)."""
        person_id = self._live(conn, person_id)
        own = conn.execute(_OWN_ID, {"person_id": person_id, "partner_id": partner_id}).scalar()
        if own is not None:
            return own
        pseudonym = new_pseudonym()
        while conn.execute(_ID_TAKEN, {"partner_id": partner_id, "local_id": pseudonym}).first() is not None:
            pseudonym = new_pseudonym()
        now, record_id = utcnow(), new_id()
        conn.execute(
            person_records.insert().values(
                id=record_id, person_id=person_id, origin_person_id=person_id, partner_id=partner_id, local_id=pseudonym,
                data={k: v for k, v in data.items() if k != "ids"}, norm=None, message_id=None, created_at=now, updated_at=now, issued=True,
            )
        )
        self._event(conn, "pseudonym-issued", person_id, record_id=record_id, actor="hub", partner=partner_id)
        return pseudonym

    def person(self, conn: Connection, person_id: str) -> dict[str, Any]:
        row = conn.execute(sa.select(persons).where(persons.c.id == person_id)).first()
        if row is None:
            raise Refusal("not-found", f"No person {person_id}")
        records = conn.execute(sa.select(person_records).where(person_records.c.person_id == person_id).order_by(person_records.c.created_at)).all()
        events = conn.execute(
            sa.select(person_events).where(sa.or_(person_events.c.person_id == person_id, person_events.c.other_person_id == person_id)).order_by(person_events.c.id)
        ).all()
        return {
            "id": person_id,
            "merged_into": row.merged_into,
            "xref": [{"partner": r.partner_id, "local_id": r.local_id, "record_id": r.id, **({"issued": True} if r.issued else {})} for r in records],
            "records": [{"id": r.id, "partner": r.partner_id, **r.data} for r in records],
            "history": [
                {"at": aware(e.at).isoformat(), "action": e.action, "person_id": e.person_id, "other": e.other_person_id, "record_id": e.record_id, "actor": e.actor, **({"detail": e.detail} if e.detail else {})}
                for e in events
            ],
        }
