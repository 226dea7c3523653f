"""The master person index under concurrency on PostgreSQL: two API workers deciding one review, two
pipeline workers filing the same new person, a merge while a record of the person is being filed.

SQLite has one writer at a time, so these races exist only on PostgreSQL (READ COMMITTED: a
statement sees what was committed when it started, and an UPDATE of a row another transaction
changed waits for it). Each test holds the first transaction open, starts the second on a thread,
checks whether it waits, then commits the first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.store import db
from hub.store import migrate
from hub.dedup.person_index import PersonIndex
from hub.findings import Refusal
from hub.store.tables import match_reviews, person_events, person_records, persons
from tests.conftest import CONTRACTS
from tests.dedup.test_person_index import ANNA, BERND, JUERGEN, JUERGEN_ELSEWHERE, MOELLER

pytestmark = pytest.mark.postgres

WAIT = 0.7  # seconds the second transaction gets to show that it waits for the first


@pytest.fixture(scope="module")
def index() -> PersonIndex:
    found = PersonIndex.load(CONTRACTS)
    assert found is not None
    return found


@pytest.fixture
def engine(pg_url: str) -> Iterator[sa.Engine]:
    migrate.upgrade(pg_url)
    yield db.get_engine(pg_url)


@dataclass
class Race:
    first: Any
    second: Any  # its result, or the exception it raised
    second_waited: bool


def race(engine: sa.Engine, first: Callable[[Connection], Any], second: Callable[[Connection], Any]) -> Race:
    """`first` in an open transaction, `second` in another while the first is still open; the first
    commits after the second had WAIT seconds to finish (it did not if it waits for the first)."""
    out: dict[str, Any] = {}

    def run_second() -> None:
        try:
            with engine.begin() as conn:
                out["second"] = second(conn)
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            out["second"] = exc

    with engine.connect() as conn:
        with conn.begin():
            result = first(conn)
            thread = threading.Thread(target=run_second)
            thread.start()
            thread.join(WAIT)
            waited = thread.is_alive()
    thread.join(30)
    assert not thread.is_alive(), "the second transaction never finished (deadlock?)"
    return Race(result, out["second"], waited)


def write(engine: sa.Engine, action: Callable[..., Any], *args: Any) -> Any:
    with db.write(engine) as conn:
        return action(conn, *args)


def count(engine: sa.Engine, query: sa.Select) -> int:
    with db.read(engine) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()


def test_two_operators_deciding_one_review_at_once_one_wins_and_the_other_gets_a_conflict(engine: sa.Engine, index: PersonIndex) -> None:
    write(engine, index.resolve, "jobcenter", "J1", JUERGEN)
    moeller = write(engine, index.resolve, "municipal", "M1", MOELLER)
    assert moeller.review_id, "test data: Möller is in Müller's review band"
    outcome = race(
        engine,
        lambda conn: index.decide(conn, moeller.review_id, True, "operator-1"),
        lambda conn: index.decide(conn, moeller.review_id, False, "operator-2"),
    )
    assert isinstance(outcome.second, Refusal) and outcome.second.kind == "conflict", f"the second decision must be refused, got {outcome.second!r}"
    with db.read(engine) as conn:
        final = tuple(conn.execute(sa.select(match_reviews.c.status, match_reviews.c.decided_by)).one())
        decisions = sorted(conn.execute(sa.select(person_events.c.action).where(person_events.c.action.in_(["merged", "kept-apart"]))).scalars())
    assert final == ("confirmed", "operator-1"), f"the review must say what was done: {final}"
    assert decisions == ["merged"], f"the loser must change nothing: {decisions}"


def test_two_workers_filing_the_same_new_person_at_once_make_one_person(engine: sa.Engine, index: PersonIndex) -> None:
    outcome = race(
        engine,
        lambda conn: index.resolve(conn, "jobcenter", "J1", JUERGEN),
        lambda conn: index.resolve(conn, "municipal", "M1", JUERGEN_ELSEWHERE),
    )
    assert outcome.second.decision == "match" and outcome.second.person_id == outcome.first.person_id, (
        f"one person from two systems, not two: {outcome.first} / {outcome.second}"
    )
    assert count(engine, sa.select(persons.c.id)) == 1
    assert outcome.second_waited, "the second worker must have waited for the first, whose record could be its person"


def test_workers_filing_unrelated_persons_do_not_wait_for_each_other(engine: sa.Engine, index: PersonIndex) -> None:
    outcome = race(
        engine,
        lambda conn: index.resolve(conn, "jobcenter", "A1", ANNA),
        lambda conn: index.resolve(conn, "jobcenter", "B1", BERND),
    )
    assert not outcome.second_waited, "persons sharing no blocking key are filed in parallel"
    assert outcome.second.decision == "new"


@pytest.mark.parametrize("merge_first", [False, True], ids=["filing-then-merge", "merge-then-filing"])
def test_a_record_filed_while_its_person_is_merged_ends_at_the_live_person(engine: sa.Engine, index: PersonIndex, merge_first: bool) -> None:
    """Whichever commits first, the new record of Jürgen must end where Jürgen's records are: never
    under the merged person, where lookups of the live person would not see it."""
    juergen = write(engine, index.resolve, "jobcenter", "J1", JUERGEN).person_id
    other = write(engine, index.resolve, "jobcenter", "A1", ANNA).person_id

    def file_again(conn: Connection) -> Any:
        return index.resolve(conn, "municipal", "M1", JUERGEN_ELSEWHERE)

    def merge(conn: Connection) -> Any:
        return index.merge(conn, juergen, other, "op")

    outcome = race(engine, merge, file_again) if merge_first else race(engine, file_again, merge)
    with db.read(engine) as conn:
        where = dict(conn.execute(sa.select(person_records.c.local_id, person_records.c.person_id)).all())
    assert where["M1"] == where["J1"] == other, f"the new record must be with Jürgen's other record at the live person {other}: {where}"
    assert outcome.second_waited, "the second must have waited for the first: the record and the merge concern the same person"
