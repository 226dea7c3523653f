"""Message search for the console: every filter and combination finds exactly the matching messages,
newest first, page by page through a cursor; each runs on an index; a malformed filter or a page
past the cap is refused with one sentence naming the field."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

from hub.findings import Refusal
from hub.runtime import Hub
from hub.store import db, search
from hub.store.search import MAX_PAGE, MessageFilter
from tests.conftest import JOBCENTER, PROVIDER, agency_sample, send
from tests.store_rows import UTC, Seeded, case, message

# hub_env: SQLite, then PostgreSQL (tests/conftest.py BOTH_DATABASES)

NOW = dt.datetime.now(UTC).replace(microsecond=0)
JC, S1, S2 = "jobcenter-eins", "traeger-eins", "traeger-zwei"
T1, T2, T3 = "teilnahme.anwesenheit.2030", "teilnahme.austritt.2050", "zuweisung.anmeldung.1020"
C1, C2 = "01CASEONE0000000000000000A", "01CASETWO0000000000000000B"
STATUSES = ["routed", "routed", "delivered", "rejected", "duplicate", "dead"]


def seed(hub: Hub) -> list[Seeded]:
    """120 messages over ten days: providers report to the Jobcenter, the Jobcenter assigns to them."""
    rng = random.Random(7)
    out = []
    with db.write(hub.engine) as conn:
        case(conn, C1, JC, "123D456789", {S1: "F-ONE"})
        case(conn, C2, JC, "987D654321", {S2: "F-TWO"})
        for i in range(120):
            at = NOW - dt.timedelta(days=10) + dt.timedelta(hours=2 * i, minutes=rng.randint(0, 59))
            if i % 4 == 0:
                recipient = rng.choice([S1, S2])
                sender, mtype, case_id = JC, T3, C1 if recipient == S1 else C2
            else:
                sender = rng.choice([S1, S2])
                mtype, recipient, case_id = rng.choice([T1, T2]), JC, C1 if sender == S1 else C2
            out.append(message(conn, sender, mtype, at, rng.choice(STATUSES), recipient=recipient, case_id=case_id if i % 5 else None))
    return out


def expected(seeded: list[Seeded], f: MessageFilter) -> list[str]:
    cases = {"F-ONE": {C1}, "123D456789": {C1}, C1: {C1}, "F-TWO": {C2}, "987D654321": {C2}, C2: {C2}}

    def holds(m: Seeded) -> bool:
        sides = {"any": {m.sender, m.recipient}, "sender": {m.sender}, "recipient": {m.recipient}}[f.role]
        return all((
            f.id in (None, m.id), f.partner is None or f.partner in sides, f.message_type in (None, m.message_type),
            f.status in (None, m.status), f.case_ref is None or m.case_id in cases.get(f.case_ref, set()),
            f.received_from is None or m.at >= f.received_from, f.received_to is None or m.at < f.received_to,
        ))

    return sorted((m.id for m in seeded if holds(m)), reverse=True)


#: the console's filters and their combinations
COMBINATIONS: list[dict[str, Any]] = [
    {}, {"partner": S1}, {"partner": JC}, {"partner": S1, "role": "sender"}, {"partner": JC, "role": "recipient"},
    {"message_type": T1}, {"status": "rejected"}, {"case_ref": "F-ONE"}, {"case_ref": "987D654321"}, {"case_ref": C1},
    {"received_from": NOW - dt.timedelta(days=6), "received_to": NOW - dt.timedelta(days=2)},
    {"partner": S2, "message_type": T2}, {"partner": S1, "status": "dead"}, {"message_type": T1, "status": "routed", "received_from": NOW - dt.timedelta(days=5)},
    {"case_ref": "F-ONE", "message_type": T1}, {"partner": JC, "case_ref": "F-TWO", "status": "routed"}, {"case_ref": "F-NOBODY"},
]


def walk(hub: Hub, limit: int = 7, budget: float = search.BUDGET_SECONDS, **fields: Any) -> list[str]:
    """Every page of a search, following the cursors; the ids in the order they came."""
    ids: list[str] = []
    cursor = None
    with db.read(hub.engine) as conn:
        for _ in range(200):
            page = search.search(conn, MessageFilter.parse(**fields, limit=limit, cursor=cursor), budget)
            assert len(page.items) <= limit, "a page holds at most its limit"
            ids += [m.id for m in page.items]
            if page.next_cursor is None:
                return ids
            cursor = page.next_cursor
    raise AssertionError("the cursor never ended")


def test_each_filter_finds_exactly_its_messages_newest_first_page_by_page(hub: Hub) -> None:
    seeded = seed(hub)
    for fields in COMBINATIONS:
        want = expected(seeded, MessageFilter(**fields))
        assert walk(hub, **fields) == want, f"search {fields} must find exactly {len(want)} messages, newest first, each once"
    assert len(walk(hub, limit=MAX_PAGE)) == 120, "one page of the largest size holds them all"


def test_a_search_out_of_time_answers_what_it_found_and_goes_on_where_it_stopped(hub: Hub) -> None:
    """Two filters walk one index and check the other: with no time to spend, each page searches
    one slice of time back and says how far it looked; following the cursors finds the same."""
    seeded = seed(hub)
    fields = {"partner": S1, "status": "dead"}
    with db.read(hub.engine) as conn:
        first = search.search(conn, MessageFilter(**fields, limit=50), budget=0)
    assert first.searched_to is not None and first.next_cursor is not None, "it stopped at its budget and says where"
    assert all(m.received_at >= first.searched_to for m in first.items), "what it found is from the slice it searched"
    assert walk(hub, budget=0, **fields) == expected(seeded, MessageFilter(**fields)), "page after page, every match once"


def test_by_id_finds_the_one_message_and_its_fields(hub: Hub) -> None:
    seeded = seed(hub)
    one = seeded[17]
    with db.read(hub.engine) as conn:
        page = search.search(conn, MessageFilter(id=one.id))
    assert [(m.id, m.sender, m.message_type, m.status) for m in page.items] == [(one.id, one.sender, one.message_type, one.status)]
    assert page.next_cursor is None and page.items[0].received_at == one.at, "received_at is the time it came in (UTC)"


def test_each_combination_runs_on_an_index(hub: Hub) -> None:
    seed(hub)
    with db.read(hub.engine) as conn:
        pg = conn.dialect.name == "postgresql"
        if pg:  # a tiny table is cheapest to scan; forbid it, so a scan shows there is no usable index
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        for fields, statement in [(f, s) for f in COMBINATIONS for s in search.statements(conn, MessageFilter(**f))]:
            compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            lines = [r[0] if pg else r[-1] for r in conn.exec_driver_sql(("EXPLAIN " if pg else "EXPLAIN QUERY PLAN ") + str(compiled))]
            scans = [ln for ln in lines if ("Seq Scan on" in ln) if pg] or [ln for ln in lines if ln.startswith("SCAN") and "INDEX" not in ln]
            assert not scans, f"search {fields} scans a whole table: {lines}"


@pytest.mark.parametrize(("fields", "says"), [
    ({"limit": MAX_PAGE + 1}, f"limit: at most {MAX_PAGE}"),
    ({"limit": "0"}, "limit: Input should be greater than or equal to 1"),
    ({"status": "lost"}, "status: Input should be"),
    ({"colour": "red"}, "colour: is not a filter"),
    ({"partner": "x; drop table"}, "partner: must be a partner id"),
    ({"received_from": "yesterday"}, "received_from: Input should be a valid datetime"),
    ({"received_from": "2026-12-02T00:00", "received_to": "2026-12-01T00:00"}, "received_from must be before received_to"),
    ({"role": "sender"}, "role needs a partner"),
    ({"cursor": "not a cursor!"}, "cursor: must be a message id"),
])
def test_a_malformed_filter_is_refused_with_one_sentence_naming_the_field(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(Refusal) as refused:
        MessageFilter.parse(**fields)
    assert refused.value.kind == "invalid-request" and refused.value.status == 400, "a 400 problem for the console"
    assert says in refused.value.detail and "\n" not in refused.value.detail, f"one sentence naming the field: {refused.value.detail}"


def test_the_largest_page_is_accepted_and_empty_fields_mean_no_filter() -> None:
    assert MessageFilter.parse(limit=str(MAX_PAGE)).limit == MAX_PAGE
    assert MessageFilter.parse(partner="", status=None) == MessageFilter(), "empty form fields filter nothing"


def test_a_case_reference_finds_the_messages_the_pipeline_placed_in_the_case(hub: Hub) -> None:
    data = agency_sample("zuweisung.anmeldung.1020", customer_number="123D456789")
    data["header"]["reader"] = {"id": PROVIDER}
    assignment = send(hub, JOBCENTER, "agency-xml", data)
    with db.read(hub.engine) as conn:
        by_customer = search.search(conn, MessageFilter(case_ref="123D456789"))
        provider_ref = next(r for (p, r) in _references(conn) if p == PROVIDER)
        by_provider_ref = search.search(conn, MessageFilter(case_ref=provider_ref))
    assert [m.id for m in by_customer.items] == [assignment], "the Jobcenter's Kundennummer finds the assignment"
    assert [m.id for m in by_provider_ref.items] == [assignment], "so does the provider's own case id"


def _references(conn: Any) -> list[tuple[str, str]]:
    from hub.store.tables import case_members

    return [(r.partner_id, r.local_ref) for r in conn.execute(case_members.select())]
