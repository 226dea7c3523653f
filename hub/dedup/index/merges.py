"""Merges and unmerges of persons, and following the chains they leave.

A merge files every record of one person under another and marks the first as merged; it never
loses a record: each record remembers the person it was first filed under, so an unmerge gives
back exactly the records of the person and of the persons merged into it, however far later merges
carried them. Rows of the persons involved are locked (in id order) so that two operators never
undo each other's work or wait for each other crosswise.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.dedup.index.base import IndexBase
from hub.findings import Refusal
from hub.store.db import utcnow
from hub.store.tables import person_keys, person_records, persons


class Merges(IndexBase):
    """:meth:`merge` and :meth:`unmerge`, and :meth:`_live`: the person an id is now."""

    def merge(self, conn: Connection, source: str, target: str, actor: str, **detail: Any) -> None:
        """File every record of `source` under `target`; `source` stays, marked as merged."""
        if source == target:
            return
        merged_into = self._lock_persons(conn, [source, target])
        for pid in (source, target):
            if pid not in merged_into or merged_into[pid] is not None:
                raise Refusal("conflict", f"Person {pid} does not exist or was merged already")
        # a resolution that found a record of `source` holds a lock on one of its keys: it commits
        # first and its record is moved with the others, instead of staying behind at a merged person
        self._serialise(conn, self._keys_of(conn, source))
        conn.execute(person_records.update().where(person_records.c.person_id == source).values(person_id=target, updated_at=utcnow()))
        conn.execute(persons.update().where(persons.c.id == source).values(merged_into=target))
        self._forget_size(conn)
        self._event(conn, "merged", target, other=source, actor=actor, **detail)

    def unmerge(self, conn: Connection, source: str, actor: str) -> None:
        """Undo the merge of `source`: the records first filed under `source` or under a person
        merged (directly or through others) into it go back to `source`, wherever later merges
        took them; the others stay with the person `source` was merged into, or the one that is now."""
        chain = self._locked_chain(conn, source)
        if len(chain) < 2:
            raise Refusal("conflict", f"Person {source} is not merged into another person")
        target, holders = chain[1], chain[1:]  # records are at the live end; the rest is for rows filed before chains were followed
        family = self._merged_family(conn, source, holders)
        moved = conn.execute(
            person_records.update()
            .where(person_records.c.person_id.in_(holders), person_records.c.origin_person_id.in_(family))
            .values(person_id=source, updated_at=utcnow())
        ).rowcount
        conn.execute(persons.update().where(persons.c.id == source).values(merged_into=None))
        self._forget_size(conn)
        self._event(conn, "unmerged", target, other=source, actor=actor, records=moved, **({"held_by": chain[-1]} if chain[-1] != target else {}))

    # -- following merges --------------------------------------------------------------------------
    def _live(self, conn: Connection, person_id: str) -> str:
        """The person `person_id` is now: itself, or the live end of its chain of merges."""
        return self._chain(conn, person_id)[-1]

    def _chain(self, conn: Connection, person_id: str) -> list[str]:
        """`person_id`, the person it was merged into, that one's, ... up to a live person (one
        element if `person_id` is live or unknown). Merges only ever point at a live person, so
        there is no cycle; the guard is for hand-edited data."""
        chain = [person_id]
        while True:
            nxt = conn.execute(sa.select(persons.c.merged_into).where(persons.c.id == chain[-1])).scalar()
            if nxt is None or nxt in chain:
                return chain
            chain.append(nxt)

    def _lock_persons(self, conn: Connection, ids: Iterable[str]) -> dict[str, str | None]:
        """Lock the rows of `ids` (PostgreSQL: FOR UPDATE, in id order so that two operators never
        wait for each other crosswise; SQLite: the write lock is held already) and return their
        merged_into as committed now. Unknown ids are missing from the result."""
        rows = conn.execute(
            sa.select(persons.c.id, persons.c.merged_into).where(persons.c.id.in_(sorted(set(ids)))).order_by(persons.c.id).with_for_update()
        ).all()
        return {r.id: r.merged_into for r in rows}

    def _lock_live(self, conn: Connection, *person_ids: str) -> list[str]:
        """The live persons `person_ids` are now, locked (re-read if a merge moved them meanwhile)."""
        for _ in range(5):
            live = [self._live(conn, p) for p in person_ids]
            merged_into = self._lock_persons(conn, live)
            if all(p in merged_into and merged_into[p] is None for p in live):
                return live
        raise Refusal("conflict", "The persons are being merged by another operator right now; try again")

    def _locked_chain(self, conn: Connection, person_id: str) -> list[str]:
        """:meth:`_chain`, its persons locked and checked to be still linked so."""
        for _ in range(5):
            chain = self._chain(conn, person_id)
            merged_into = self._lock_persons(conn, chain)
            if person_id not in merged_into:
                raise Refusal("conflict", f"Person {person_id} does not exist")
            if all(merged_into.get(p) == (chain[k + 1] if k + 1 < len(chain) else None) for k, p in enumerate(chain)):
                return chain
        raise Refusal("conflict", f"Person {person_id} is being merged or unmerged by another operator right now; try again")

    def _merged_family(self, conn: Connection, source: str, holders: Sequence[str]) -> list[str]:
        """`source` and the persons merged into it (directly or through others) among the first
        persons of the records the `holders` hold: whose records an unmerge of `source` gives back.
        Only records' first persons are followed (through the persons table's primary key), so
        this never scans the persons of the whole index."""
        origins = set(
            conn.execute(sa.select(person_records.c.origin_person_id).where(person_records.c.person_id.in_(holders)).distinct()).scalars()
        )
        parent: dict[str, str | None] = {source: None}  # the walk stops at source
        todo = origins - parent.keys()
        while todo:
            found = dict(conn.execute(sa.select(persons.c.id, persons.c.merged_into).where(persons.c.id.in_(sorted(todo)))).all())
            parent.update({p: found.get(p) for p in todo})
            todo = {m for m in found.values() if m is not None} - parent.keys()

        def reaches_source(p: str | None) -> bool:
            for _ in range(len(parent) + 1):
                if p is None or p == source:
                    return p == source
                p = parent.get(p)
            return False

        return sorted(o for o in origins if reaches_source(o))

    def _keys_of(self, conn: Connection, person_id: str) -> list[str]:
        """The blocking keys of the person's records (PostgreSQL only, for :meth:`_serialise`)."""
        if conn.dialect.name != "postgresql":
            return []
        return list(
            conn.execute(
                sa.select(person_keys.c.key).join(person_records, person_records.c.id == person_keys.c.record_id).where(person_records.c.person_id == person_id).distinct()
            ).scalars()
        )
