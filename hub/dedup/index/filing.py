"""Filing a record: resolve() decides which person a partner's record is, and keeps deciding
when the partner's data about it change.

A new record is filed under the best match, or a new person (with a review where the model is
unsure); a known record's new data are stored and, if they no longer match the other records of
its person, the record is split off (the model is never overruled silently). refresh() re-files
records stored under another normaliser or other blocking passes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.dedup import fastcompare
from hub.dedup.index.base import Filed, Resolution
from hub.dedup.index.candidates import CandidateLookup
from hub.dedup.index.reviews import Reviews
from hub.dedup.linkage import MATCH, NON_MATCH, REVIEW, Candidate
from hub.ids import new_id
from hub.store.db import utcnow
from hub.store.tables import person_keys, person_records, persons

_RANK = {MATCH: 2, REVIEW: 1}  # decisions of the best candidate, best first; none (non-match) is 0


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The fields (ids per scheme, as ``ids.<scheme>``) whose values differ: what an ``updated``
    event names, without the values (they stay in person_records)."""
    flat_before, flat_after = _flat(before), _flat(after)
    return sorted(k for k in flat_before.keys() | flat_after.keys() if flat_before.get(k) != flat_after.get(k))


def _flat(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k != "ids"}
    out.update({f"ids.{scheme}": v for scheme, v in (data.get("ids") or {}).items()})
    return out


class Filing(CandidateLookup, Reviews):
    """:meth:`resolve` and :meth:`refresh`."""

    def resolve(self, conn: Connection, partner_id: str, local_id: str, data: dict[str, Any], message_id: str | None = None) -> Resolution:
        known = conn.execute(
            sa.select(
                person_records.c.id, person_records.c.person_id, person_records.c.origin_person_id, person_records.c.data,
                person_records.c.norm, person_records.c.issued,
            ).where(person_records.c.partner_id == partner_id, person_records.c.local_id == local_id)
        ).first()
        now = utcnow()
        filed = self.file_form(data)
        if known is not None:
            return self._update_known(conn, known, partner_id, data, filed, message_id, now)
        # a worker filing a record that shares a key with this one (and so could be the same
        # person) commits first: its record is then a candidate here, not a second new person
        self._serialise(conn, filed.keys)
        candidates = self._candidates(conn, [filed], limit=5)[0]
        top = candidates[0] if candidates else None
        record_id = new_id()
        if top is not None and top.decision == MATCH:
            person_id, decision = top.person_id, "match"
        else:
            person_id, decision = new_id(), ("review" if top is not None and top.decision == REVIEW else "new")
            conn.execute(persons.insert().values(id=person_id, created_at=now))
            self._forget_size(conn)
        conn.execute(
            person_records.insert().values(
                id=record_id, person_id=person_id, origin_person_id=person_id, partner_id=partner_id, local_id=local_id,
                data=data, norm=filed.norm, message_id=message_id, created_at=now, updated_at=now,
            )
        )
        self._write_keys(conn, record_id, filed.keys)
        review_id = self._open_review(conn, record_id, top, now) if decision == "review" else None
        self._event(conn, "filed", person_id, record_id=record_id, actor="hub", decision=decision, weight=top.weight if top else None, partner=partner_id)
        return Resolution(person_id, record_id, decision, top.weight if top else None, review_id)

    # -- a known record whose data changed ---------------------------------------------------------
    def _update_known(
        self, conn: Connection, known: sa.Row[Any], partner_id: str, data: dict[str, Any], filed: Filed, message_id: str | None, now: dt.datetime
    ) -> Resolution:
        """Store the partner's new data for a record filed before; if it no longer matches the
        other records of its person, split it off (the model must never be overruled silently).
        A pseudonym the hub issued becomes the partner's own record with its first message under it."""
        changed = changed_fields(known.data or {}, data)
        if changed:
            self._serialise(conn, filed.keys)  # as for a new record: a lookup meeting the new data waits
        conn.execute(
            person_records.update().where(person_records.c.id == known.id).values(
                data=data, norm=filed.norm, message_id=message_id, updated_at=now, issued=False
            )
        )
        if changed or known.issued or known.norm != filed.norm:  # keys follow the data (a resend keeps them)
            self._write_keys(conn, known.id, filed.keys)
        self._event(conn, "updated", known.person_id, record_id=known.id, actor=partner_id, fields=changed, **({"message": message_id} if message_id else {}))
        if changed:
            detach, best = self._still_belongs(conn, known, filed)
            if detach:
                return self._split(conn, known, filed, best, changed, now)
        return Resolution(known.person_id, known.id, "known")

    def _still_belongs(self, conn: Connection, known: sa.Row[Any], filed: Filed) -> tuple[bool, Candidate | None]:
        """(detach?, the best of the person's other records for the new data).

        Detach when the new data is not a match for any other record of the person AND compares
        worse than the old data did: a record an operator merged from the review band stays while
        the model is still only unsure about it, but not once the model says it is someone else."""
        others = conn.execute(
            sa.select(person_records.c.id, person_records.c.person_id, person_records.c.norm).where(
                person_records.c.person_id == known.person_id, person_records.c.id != known.id, person_records.c.issued.is_(False)
            )
        ).all()
        if not others:
            return False, None  # a person of its own already
        records = {r.id: (r.person_id, r.norm) for r in others}
        ids = list(records)
        before, after = self._score(conn, [self.file_form(known.data or {}), filed], [ids, ids], records, self.index_size(conn), 1)
        rank_before, rank_after = (_RANK[c[0].decision] if c else 0 for c in (before, after))
        best = after[0] if after else None
        return rank_after < _RANK[MATCH] and rank_after < rank_before, best

    def _split(self, conn: Connection, known: sa.Row[Any], filed: Filed, best: Candidate | None, changed: list[str], now: dt.datetime) -> Resolution:
        """File the record under a new person of its own (it becomes that person's first record, so
        later unmerges leave it there); offer it for review against its former person if the model
        is unsure, and against any other person it now matches or may be."""
        former, person_id = known.person_id, new_id()
        conn.execute(persons.insert().values(id=person_id, created_at=now))
        conn.execute(
            person_records.update().where(person_records.c.id == known.id).values(person_id=person_id, origin_person_id=person_id, updated_at=now)
        )
        self._forget_size(conn)
        self._event(
            conn, "split", former, other=person_id, record_id=known.id, actor="hub", fields=changed,
            decision=best.decision if best else NON_MATCH, weight=best.weight if best else None, first_filed_under=known.origin_person_id,
        )
        reviews = [self._open_review(conn, known.id, best, now)] if best is not None and best.decision == REVIEW else []
        elsewhere = [c for c in self._candidates(conn, [filed], limit=5)[0] if c.person_id not in (person_id, former)]
        if elsewhere:
            reviews.append(self._open_review(conn, known.id, elsewhere[0], now))
        return Resolution(person_id, known.id, "split", best.weight if best else None, reviews[0] if reviews else None)

    def refresh(self, engine: sa.Engine, batch: int = 5000) -> int:
        """Re-file every record stored without a normalised form or with one of another
        normaliser or other blocking passes (after migration 0004, after normalisation or the
        passes changed): new blocking keys and form. Lookups stay correct without this (stale
        forms are recomputed from the data), but records filed under other passes are not found
        by the new ones until they are re-filed. Returns the number of records re-filed."""
        from hub.store import db

        done, after = 0, ""
        prefix = fastcompare.version() + self.keys_tag + "\x1f"
        while True:
            with db.read(engine) as conn:
                rows = conn.execute(
                    sa.select(person_records.c.id, person_records.c.data, person_records.c.norm, person_records.c.issued)
                    .where(person_records.c.id > after)
                    .order_by(person_records.c.id)
                    .limit(batch)
                ).all()
            if not rows:
                return done
            after = rows[-1].id
            stale = [r for r in rows if not r.issued and (r.norm is None or not r.norm.startswith(prefix))]
            if stale:
                filed = [self.file_form(r.data) for r in stale]
                with db.write(engine) as conn:
                    ids = [r.id for r in stale]
                    conn.execute(
                        person_records.update().where(person_records.c.id == sa.bindparam("rid")).values(norm=sa.bindparam("norm")),
                        [{"rid": i, "norm": f.norm} for i, f in zip(ids, filed)],
                    )
                    conn.execute(person_keys.delete().where(person_keys.c.record_id.in_(ids)))
                    keys = [{"key": k, "record_id": i} for i, f in zip(ids, filed) for k in f.keys]
                    if keys:
                        conn.execute(person_keys.insert(), keys)
                done += len(stale)
