"""The review queue: matches the model is unsure about wait for an operator.

A review is opened when a record is filed in the review band (or split off so); an operator
confirms it (the two persons are merged) or rejects it (they are recorded as kept apart). Both
sides are shown and merged as the persons they are now, however many merges happened since.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.dedup.index.merges import Merges
from hub.dedup.linkage import Candidate
from hub.findings import Refusal
from hub.ids import new_id
from hub.store.db import aware, utcnow
from hub.store.tables import match_reviews, person_records


class Reviews(Merges):
    """:meth:`reviews` and :meth:`decide`, and opening a review for resolve()."""

    def _open_review(self, conn: Connection, record_id: str, candidate: Candidate, now: dt.datetime) -> str:
        review_id = new_id()
        conn.execute(
            match_reviews.insert().values(
                id=review_id, record_id=record_id, candidate_person_id=candidate.person_id, weight=candidate.weight,
                detail={"levels": self._explain(candidate)}, status="open", created_at=now,
            )
        )
        return review_id

    def _explain(self, candidate: Candidate) -> dict[str, Any]:
        return {concept: {"level": level, "weight": round(weight, 2)} for concept, (level, weight) in self.linker.explain(candidate.levels).items()}

    def reviews(self, conn: Connection, status: str = "open", limit: int = 100) -> list[dict[str, Any]]:
        """The reviews, oldest first. Both sides are shown as the persons they are now: a person
        merged since the review was opened is shown as the person it was merged into
        (``proposed_person_id`` keeps the candidate the model proposed)."""
        rows = conn.execute(
            sa.select(match_reviews, person_records.c.data, person_records.c.partner_id, person_records.c.person_id.label("record_person_id"))
            .join(person_records, person_records.c.id == match_reviews.c.record_id)
            .where(match_reviews.c.status == status)
            .order_by(match_reviews.c.created_at)
            .limit(limit)
        ).all()
        out = []
        for r in rows:
            candidate_id = self._live(conn, r.candidate_person_id)
            candidate = conn.execute(
                sa.select(person_records.c.data, person_records.c.partner_id)
                .where(person_records.c.person_id == candidate_id, person_records.c.id != r.record_id)
                .order_by(person_records.c.created_at, person_records.c.id)
                .limit(1)
            ).first()
            out.append(
                {
                    "id": r.id, "status": r.status, "weight": r.weight, "created_at": aware(r.created_at).isoformat(),
                    "record": {"id": r.record_id, "partner": r.partner_id, "person_id": self._live(conn, r.record_person_id), **r.data},
                    "candidate": {
                        "person_id": candidate_id,
                        **({"proposed_person_id": r.candidate_person_id} if candidate_id != r.candidate_person_id else {}),
                        **({"partner": candidate.partner_id, **candidate.data} if candidate else {}),
                    },
                    "comparison": (r.detail or {}).get("levels"),
                }
            )
        return out

    def decide(self, conn: Connection, review_id: str, confirm: bool, actor: str) -> dict[str, Any]:
        """Close an open review: confirm merges the record's person into the candidate (both as
        they are now), reject records that they are kept apart. Exactly one decision wins: the
        review is claimed by a conditional UPDATE (on PostgreSQL a second operator's UPDATE waits
        for the first to commit and then finds the review decided), and the loser gets a conflict
        with nothing done."""
        review = conn.execute(sa.select(match_reviews).where(match_reviews.c.id == review_id)).first()
        if review is None:
            raise Refusal("not-found", f"No review {review_id}")
        status = "confirmed" if confirm else "rejected"
        claimed = conn.execute(
            match_reviews.update()
            .where(match_reviews.c.id == review_id, match_reviews.c.status == "open")
            .values(status=status, decided_at=utcnow(), decided_by=actor)
        ).rowcount
        if claimed != 1:
            decided = conn.execute(sa.select(match_reviews.c.status).where(match_reviews.c.id == review_id)).scalar_one()
            raise Refusal("conflict", f"Review {review_id} was already decided ({decided})")
        record_person = conn.execute(sa.select(person_records.c.person_id).where(person_records.c.id == review.record_id)).scalar_one()
        if not confirm:
            self._event(
                conn, "kept-apart", self._live(conn, record_person), other=self._live(conn, review.candidate_person_id), actor=actor, review_id=review_id
            )
            return {"id": review_id, "status": status}
        source, target = self._lock_live(conn, record_person, review.candidate_person_id)
        if source != target:  # else: merged meanwhile, nothing left to do but close the review
            self.merge(conn, source, target, actor, review_id=review_id)
        return {"id": review_id, "status": status, "person_id": target}
