"""The master person index as operators and partners change it: merges and unmerges in any order
never lose or misplace a record, reviews are decided against the persons as they are now, and a
known record whose data changes is re-checked instead of silently moving a person's identity.

Requirement: "Review queue: uncertain matches wait for an operator (API and CLI: list, confirm,
reject). Merge and unmerge keep their history and never lose a link." These tests drive
:class:`PersonIndex` directly on a migrated SQLite database (the pipeline around it is covered by
tests/test_identity.py); the PostgreSQL races are in tests/integration/test_person_index_pg.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hub.store import db
from hub.store import migrate
from hub.dedup.person_index import PersonIndex, Resolution
from hub.findings import Refusal
from hub.store.tables import match_reviews, person_events, person_records, persons
from tests.conftest import CONTRACTS

JOBCENTER, MUNICIPAL, THIRD = "jobcenter", "municipal", "sozialamt"

DRESDEN = {"street": "Straße des 17. Juni", "house_number": "12a", "postcode": "01067", "city": "Dresden"}
LEIPZIG = {"street": "Am Markt", "house_number": "1", "postcode": "04109", "city": "Leipzig"}
#: Jürgen Müller as the Jobcenter knows him
JUERGEN = {"given_name": "Jürgen", "family_name": "Müller", "birth_date": "1978-03-09", **DRESDEN, "ids": {"kundennummer": "123D000001"}}
#: the same name under another id: a match for JUERGEN
JUERGEN_ELSEWHERE = {**JUERGEN, "ids": {"kundennummer": "999X000001"}}
#: similar name, one digit off in the birth date, another address and id: the review band of JUERGEN
MOELLER = {"given_name": "Jürgen", "family_name": "Möller", "birth_date": "1979-03-09", **LEIPZIG, "ids": {"kundennummer": "999X000001"}}
#: nobody like Jürgen
PETER = {"given_name": "Peter", "family_name": "Wagner", "birth_date": "1962-12-24", **LEIPZIG, "ids": {"kundennummer": "999X000001"}}
#: three persons nobody would take for one another
ANNA = {"given_name": "Anna", "family_name": "Adler", "birth_date": "1970-01-01", "ids": {"kundennummer": "111A000001"}}
BERND = {"given_name": "Bernd", "family_name": "Berger", "birth_date": "1980-02-02", "ids": {"kundennummer": "111A000002"}}
CARLA = {"given_name": "Carla", "family_name": "Claus", "birth_date": "1990-03-03", "ids": {"kundennummer": "111A000003"}}


@pytest.fixture(scope="module")
def index() -> PersonIndex:
    found = PersonIndex.load(CONTRACTS)
    assert found is not None, "contracts/dedup/model.json is missing"
    return found


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    url = f"sqlite:///{tmp_path}/mpi.db"
    migrate.upgrade(url)
    yield db.get_engine(url)
    db.dispose_all()


# -- helpers: one transaction each, as one message or one operator request ------------------------------
def file(engine: sa.Engine, index: PersonIndex, partner: str, local_id: str, data: dict[str, Any]) -> Resolution:
    with db.write(engine) as conn:
        return index.resolve(conn, partner, local_id, data)


def operate(engine: sa.Engine, action: Any, *args: Any) -> Any:
    with db.write(engine) as conn:
        return action(conn, *args)


def held_by(engine: sa.Engine, person_id: str) -> set[str]:
    """Local ids of the records filed under the person now."""
    with db.read(engine) as conn:
        return set(conn.execute(sa.select(person_records.c.local_id).where(person_records.c.person_id == person_id)).scalars())


def merged_into(engine: sa.Engine, person_id: str) -> str | None:
    with db.read(engine) as conn:
        return conn.execute(sa.select(persons.c.merged_into).where(persons.c.id == person_id)).scalar_one()


def events(engine: sa.Engine, action: str) -> list[Any]:
    with db.read(engine) as conn:
        return conn.execute(sa.select(person_events).where(person_events.c.action == action).order_by(person_events.c.id)).all()


def open_reviews(engine: sa.Engine, index: PersonIndex) -> list[dict[str, Any]]:
    with db.read(engine) as conn:
        return index.reviews(conn)


def assert_every_record_at_a_live_person(engine: sa.Engine) -> None:
    with db.read(engine) as conn:
        stranded = conn.execute(
            sa.select(person_records.c.local_id, persons.c.merged_into)
            .join(persons, persons.c.id == person_records.c.person_id)
            .where(persons.c.merged_into.is_not(None))
        ).all()
    assert not stranded, f"records filed under a merged person, invisible to lookups of the live one: {stranded}"


def three_persons(engine: sa.Engine, index: PersonIndex) -> tuple[str, str, str]:
    a, b, c = (file(engine, index, JOBCENTER, d["ids"]["kundennummer"], d) for d in (ANNA, BERND, CARLA))
    assert (a.decision, b.decision, c.decision) == ("new", "new", "new"), "test data: three different persons"
    return a.person_id, b.person_id, c.person_id


def review_of_moeller(engine: sa.Engine, index: PersonIndex) -> tuple[Resolution, Resolution]:
    """Jürgen Müller from the Jobcenter, then the uncertain Möller from the municipal office."""
    juergen = file(engine, index, JOBCENTER, "J1", JUERGEN)
    moeller = file(engine, index, MUNICIPAL, "M1", MOELLER)
    assert moeller.decision == "review" and moeller.review_id, f"test data: Möller must be in Müller's review band ({moeller})"
    return juergen, moeller


# -- 1. unmerge after chained merges ----------------------------------------------------------------------
def test_unmerging_the_first_of_two_chained_merges_gives_its_record_back(engine: sa.Engine, index: PersonIndex) -> None:
    """A into B, then B into C: A's record travelled on to C. Unmerging A must fetch it from there."""
    a, b, c = three_persons(engine, index)
    operate(engine, index.merge, a, b, "op")
    operate(engine, index.merge, b, c, "op")
    operate(engine, index.unmerge, a, "op")
    assert held_by(engine, a) == {"111A000001"}, "unmerge of A must give A its record back from C, where the second merge took it"
    assert held_by(engine, c) == {"111A000002", "111A000003"}, "B's and C's records stay with C (B is still merged into C)"
    assert merged_into(engine, a) is None and merged_into(engine, b) == c
    assert_every_record_at_a_live_person(engine)


def test_unmerging_the_middle_of_a_chain_takes_along_what_was_merged_into_it(engine: sa.Engine, index: PersonIndex) -> None:
    """A into B, B into C, unmerge B: A is still merged into B, so B holds A's record and its own."""
    a, b, c = three_persons(engine, index)
    operate(engine, index.merge, a, b, "op")
    operate(engine, index.merge, b, c, "op")
    operate(engine, index.unmerge, b, "op")
    assert held_by(engine, b) == {"111A000001", "111A000002"}, "B must get back its own record and that of A, which is merged into B"
    assert held_by(engine, c) == {"111A000003"}
    operate(engine, index.unmerge, a, "op")
    assert (held_by(engine, a), held_by(engine, b)) == ({"111A000001"}, {"111A000002"}), "then unmerging A separates A from B"
    assert_every_record_at_a_live_person(engine)


def test_merges_and_unmerges_can_be_repeated_and_keep_their_history(engine: sa.Engine, index: PersonIndex) -> None:
    a, b, c = three_persons(engine, index)
    operate(engine, index.merge, a, b, "op")
    operate(engine, index.unmerge, a, "op")
    operate(engine, index.merge, a, b, "op")  # merged again after the unmerge
    operate(engine, index.merge, b, c, "op")
    assert held_by(engine, c) == {"111A000001", "111A000002", "111A000003"}
    operate(engine, index.unmerge, b, "op")
    operate(engine, index.merge, b, c, "op")
    operate(engine, index.unmerge, a, "op")
    assert (held_by(engine, a), held_by(engine, c)) == ({"111A000001"}, {"111A000002", "111A000003"}), "A unmerged from B, B merged into C again"
    with pytest.raises(Refusal) as refused:
        operate(engine, index.unmerge, a, "op")
    assert refused.value.kind == "conflict", "a person that is not merged cannot be unmerged"
    history = [(e.person_id, e.other_person_id) for e in events(engine, "merged")], [(e.person_id, e.other_person_id) for e in events(engine, "unmerged")]
    assert history == ([(b, a), (b, a), (c, b), (c, b)], [(b, a), (c, b), (b, a)]), f"every merge and unmerge is an event (into whom, whom): {history}"
    with db.read(engine) as conn:
        origins = dict(conn.execute(sa.select(person_records.c.local_id, person_records.c.origin_person_id)).all())
    assert origins == {"111A000001": a, "111A000002": b, "111A000003": c}, "each record still remembers where it was first filed"
    assert_every_record_at_a_live_person(engine)


# -- 2. reviews whose persons were merged meanwhile ---------------------------------------------------------
def test_a_review_whose_candidate_was_merged_meanwhile_is_decided_against_the_person_it_is_now(engine: sa.Engine, index: PersonIndex) -> None:
    juergen, moeller = review_of_moeller(engine, index)
    other = file(engine, index, THIRD, "S1", ANNA).person_id
    operate(engine, index.merge, juergen.person_id, other, "op")  # e.g. by another review
    (review,) = open_reviews(engine, index)
    candidate = review["candidate"]
    assert candidate["person_id"] == other and candidate["proposed_person_id"] == juergen.person_id, f"the listing must name the live person: {candidate}"
    assert candidate.get("given_name"), f"the listing must show the candidate's data, not an empty person: {candidate}"
    result = operate(engine, index.decide, review["id"], True, "op")
    assert result["status"] == "confirmed", "a review whose candidate was merged can still be confirmed"
    assert merged_into(engine, moeller.person_id) == other, "confirm merges into the person the candidate is now"
    assert held_by(engine, other) == {"J1", "M1", "S1"}
    assert open_reviews(engine, index) == []
    assert_every_record_at_a_live_person(engine)


def test_a_review_whose_record_person_was_merged_meanwhile_merges_the_person_it_is_now(engine: sa.Engine, index: PersonIndex) -> None:
    juergen, moeller = review_of_moeller(engine, index)
    other = file(engine, index, THIRD, "S1", ANNA).person_id
    operate(engine, index.merge, moeller.person_id, other, "op")
    (review,) = open_reviews(engine, index)
    assert review["record"].get("person_id") == other, f"the listing must name the record's person as it is now: {review['record']}"
    operate(engine, index.decide, review["id"], True, "op")
    assert merged_into(engine, other) == juergen.person_id, "the record's person as it is now is merged into the candidate"
    assert held_by(engine, juergen.person_id) == {"J1", "M1", "S1"}


def test_confirming_a_review_whose_two_sides_are_already_one_person_just_closes_it(engine: sa.Engine, index: PersonIndex) -> None:
    juergen, moeller = review_of_moeller(engine, index)
    operate(engine, index.merge, juergen.person_id, moeller.person_id, "op")  # the candidate into the record's person
    merges = len(events(engine, "merged"))
    result = operate(engine, index.decide, moeller.review_id, True, "op")
    assert result["status"] == "confirmed" and result.get("person_id") == moeller.person_id
    assert len(events(engine, "merged")) == merges, "nothing left to merge"
    assert held_by(engine, moeller.person_id) == {"J1", "M1"}
    assert open_reviews(engine, index) == []


def test_a_decided_review_stays_decided(engine: sa.Engine, index: PersonIndex) -> None:
    """The claim of a review is conditional on it being open: the second decision is a conflict
    and changes nothing (the race between two operators is tests/integration/test_person_index_pg.py)."""
    _, moeller = review_of_moeller(engine, index)
    operate(engine, index.decide, moeller.review_id, False, "op-1")
    with pytest.raises(Refusal) as refused:
        operate(engine, index.decide, moeller.review_id, True, "op-2")
    assert refused.value.kind == "conflict" and "rejected" in refused.value.detail
    with db.read(engine) as conn:
        row = conn.execute(sa.select(match_reviews.c.status, match_reviews.c.decided_by)).one()
    assert tuple(row) == ("rejected", "op-1") and events(engine, "merged") == [], "the loser must change nothing"


# -- 4. a known record whose data changes -------------------------------------------------------------------
def test_every_update_of_a_known_record_is_an_event_naming_who_and_which_fields(engine: sa.Engine, index: PersonIndex) -> None:
    first = file(engine, index, JOBCENTER, "J1", JUERGEN)
    again = file(engine, index, JOBCENTER, "J1", {**JUERGEN, **LEIPZIG})  # moved
    resent = file(engine, index, JOBCENTER, "J1", {**JUERGEN, **LEIPZIG})
    assert (again.decision, again.person_id, resent.decision) == ("known", first.person_id, "known")
    updated = events(engine, "updated")
    assert len(updated) == 2, "every update of a known record is recorded, even one that changes nothing"
    assert {e.actor for e in updated} == {JOBCENTER} and updated[0].record_id == first.record_id, "who changed which record"
    assert updated[0].detail["fields"] == ["city", "house_number", "postcode", "street"] and updated[1].detail["fields"] == []
    assert "Leipzig" not in str(updated[0].detail), "field names only: the values stay in the record"


def test_a_known_record_that_now_describes_someone_else_is_split_off(engine: sa.Engine, index: PersonIndex) -> None:
    """The Jobcenter reuses (or corrects) the Kundennummer of a record for another person: the
    record's person must not silently become that other person, nor absorb that person's records."""
    juergen = file(engine, index, JOBCENTER, "J1", JUERGEN)
    assert file(engine, index, MUNICIPAL, "M1", JUERGEN_ELSEWHERE).person_id == juergen.person_id, "test data: one person, two records"
    changed = file(engine, index, JOBCENTER, "J1", {**PETER, "ids": {"kundennummer": "123D000001"}})
    assert changed.decision == "split" and changed.person_id != juergen.person_id, f"Peter is not Jürgen: {changed}"
    assert held_by(engine, juergen.person_id) == {"M1"} and held_by(engine, changed.person_id) == {"J1"}
    (split,) = events(engine, "split")
    assert (split.person_id, split.other_person_id, split.record_id) == (juergen.person_id, changed.person_id, juergen.record_id)
    assert split.detail["first_filed_under"] == juergen.person_id, "history keeps where the record was first filed"
    assert open_reviews(engine, index) == [], "far below the review band: nothing to ask an operator"
    later = file(engine, index, MUNICIPAL, "M2", PETER)
    assert later.person_id == changed.person_id, "Peter's next record goes to Peter, not to Jürgen"
    assert_every_record_at_a_live_person(engine)


def test_an_update_into_the_review_band_is_split_off_and_offered_for_review(engine: sa.Engine, index: PersonIndex) -> None:
    juergen = file(engine, index, JOBCENTER, "J1", JUERGEN)
    assert file(engine, index, MUNICIPAL, "M1", JUERGEN_ELSEWHERE).person_id == juergen.person_id
    changed = file(engine, index, MUNICIPAL, "M1", MOELLER)
    assert changed.decision == "split" and changed.review_id, f"no longer a match, but maybe the same person: an operator decides ({changed})"
    (review,) = open_reviews(engine, index)
    assert review["candidate"]["person_id"] == juergen.person_id and review["record"]["person_id"] == changed.person_id
    operate(engine, index.decide, review["id"], True, "op")
    assert held_by(engine, juergen.person_id) == {"J1", "M1"}, "confirming brings the record back"


def test_after_a_split_the_others_can_still_be_unmerged(engine: sa.Engine, index: PersonIndex) -> None:
    juergen, moeller = review_of_moeller(engine, index)
    operate(engine, index.decide, moeller.review_id, True, "op")  # Möller's person merged into Jürgen's
    file(engine, index, THIRD, "S1", JUERGEN_ELSEWHERE)
    changed = file(engine, index, JOBCENTER, "J1", {**PETER, "ids": {"kundennummer": "123D000001"}})
    assert changed.decision == "split", f"Jürgen's Jobcenter record now describes Peter: {changed}"
    operate(engine, index.unmerge, moeller.person_id, "op")
    assert held_by(engine, moeller.person_id) == {"M1"}, "the unmerge still gives Möller's record back"
    assert held_by(engine, juergen.person_id) == {"S1"} and held_by(engine, changed.person_id) == {"J1"}, "the split-off record stays where it went"


def test_an_operators_merge_stands_while_the_model_is_no_more_unsure_than_before(engine: sa.Engine, index: PersonIndex) -> None:
    """A record merged from the review band was never a match: an update that leaves it in the
    band must not undo the operator's decision; one that makes it someone else must."""
    juergen, moeller = review_of_moeller(engine, index)
    operate(engine, index.decide, moeller.review_id, True, "op")
    still_unsure = file(engine, index, MUNICIPAL, "M1", {**MOELLER, "house_number": "2"})
    assert still_unsure.decision == "known" and still_unsure.person_id == juergen.person_id
    someone_else = file(engine, index, MUNICIPAL, "M1", PETER)
    assert someone_else.decision == "split", "the model now says: another person"


def test_a_split_off_record_that_now_describes_another_known_person_is_offered_for_review(engine: sa.Engine, index: PersonIndex) -> None:
    """Split off, the record is a second person beside one the index already holds: an operator
    must see that (it is not merged automatically: the partner's change may be a mistake)."""
    juergen = file(engine, index, JOBCENTER, "J1", JUERGEN)
    file(engine, index, MUNICIPAL, "M1", JUERGEN_ELSEWHERE)
    peter = file(engine, index, THIRD, "S1", {k: v for k, v in PETER.items() if k != "ids"})
    changed = file(engine, index, JOBCENTER, "J1", {**PETER, "ids": {"kundennummer": "123D000001"}})
    assert changed.decision == "split" and changed.person_id not in (juergen.person_id, peter.person_id)
    (review,) = open_reviews(engine, index)
    assert (review["record"]["id"], review["candidate"]["person_id"]) == (juergen.record_id, peter.person_id), f"a review against Peter must be open: {review}"
