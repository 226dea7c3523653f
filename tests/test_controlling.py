"""Controlling figures as quality management reads them: a small story of three participants of one
provider's measure, played through the pipeline, comes out as exactly the numbers played -- starts,
a drop-out, a job taken up, reports on time, late and open, a refused and a duplicate message, the
cooperation loop and the cost per participant from the invoice -- in the operator's view and in the
steering agency's own; another agency sees none of it; the CSV opens in a German spreadsheet.
"""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from typing import Any

import pytest

from hub.chain import controlling, tasks
from hub.chain.controlling import MeasureFigures, PartnerDeadlines, Period, SenderFigures
from hub.endpoints import decisions
from hub.runtime import Hub
from hub.scheduler import DeadlineScheduler
from hub.store import db
from hub.yaml_lines import ContractError
from tests.conftest import JOBCENTER, MUNICIPAL, PROVIDER, drain, provider_sample, send
from tests.test_case_chain import CUSTOMER, MEASURE, assign, report, status_of
from tests.test_case_chain import _contracts_with  # the shipped contracts with one line changed

JOB, DROPOUT, REFUSED = CUSTOMER, "123D456790", "123D456791"


class Clock:
    """The day the pipeline judges deadlines by, as the story says (the rest of the hub keeps its own)."""

    day = dt.date(2026, 12, 4)

    def __call__(self, now: Any = None) -> dt.date:
        return self.day


@pytest.fixture
def story(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Hub:
    """Three participants of PROVIDER's measure MEASURE, in test mode (the samples are test messages):
    JOB starts on time, reports December on time, gets a cooperation feedback the case manager
    decides (continue), and leaves for a job; DROPOUT's start is missed and comes late, December is
    reported on time and once more as a duplicate, then the participant drops out; REFUSED is
    assigned, and its exit before any start is refused. One invoice bills JOB and DROPOUT."""
    clock = Clock()
    for module in ("hub.pipeline.chain_links", "hub.endpoints.decisions"):  # (the package's attribute is the stage)
        monkeypatch.setattr(sys.modules[module], "today", clock)
    job = assign(hub, JOB)
    dropout = assign(hub, DROPOUT)
    report(hub, job, "teilnahme.eintritt.2010")
    report(hub, job, "teilnahme.anwesenheit.2030")
    report(hub, job, "teilnahme.mitwirkung.2040")
    with db.read(hub.engine) as conn:
        (task,) = tasks.listing(conn, JOBCENTER, kind="cooperation_decision")
    decisions.complete(hub, task.id, "continue", None, owner=JOBCENTER, by=JOBCENTER)
    drain(hub)
    report(hub, job, "teilnahme.austritt.2050")  # the sample: Abbruch for a job (beschaeftigung_svp)

    assert DeadlineScheduler(hub).sweep(dt.datetime(2026, 12, 10, 12, tzinfo=dt.timezone.utc)) == 1, "only DROPOUT's start was to be missed"
    clock.day = dt.date(2026, 12, 11)
    report(hub, dropout, "teilnahme.eintritt.2010")
    december = provider_sample("teilnahme.anwesenheit.2030", dropout)
    assert status_of(hub, send(hub, PROVIDER, "provider-json", december)) == "routed"
    again = provider_sample("teilnahme.anwesenheit.2030", dropout)  # the same report under a new message UUID
    assert status_of(hub, send(hub, PROVIDER, "provider-json", again)) == "duplicate", "the second December report was not caught"
    report(hub, dropout, "teilnahme.austritt.2050", dropout_reason="durch_teilnehmer", destination="arbeitsuchend", remark=None)

    refused = assign(hub, REFUSED)
    assert status_of(hub, report(hub, refused, "teilnahme.austritt.2050")) == "rejected", "an exit before the start was accepted"

    invoice = provider_sample("abrechnung.monat.4010", job)
    invoice["body"]["lines"] = [{"case_id": job, "participant_days": 19, "amount": "142.50"},
                                {"case_id": dropout, "participant_days": 18, "amount": "135.00"}]
    assert status_of(hub, send(hub, PROVIDER, "provider-json", invoice)) == "routed", "the invoice was not routed"
    return hub


def figures(hub: Hub, owner: str | None = None) -> list[MeasureFigures]:
    with db.read(hub.engine) as conn:
        return controlling.measure_figures(conn, controlling.definition(hub.contracts_dir), owner, test=True)


def test_the_measures_figures_are_what_was_played(story: Hub) -> None:
    (row,) = figures(story)
    assert (row.provider, row.measure_number) == (PROVIDER, MEASURE)
    assert (row.assignments, row.starts, row.non_starts, row.declined) == (3, 2, 0, 0), f"participation: {row}"
    assert (row.exits, row.dropouts, row.integrations) == (2, 1, 1), "an Abbruch for a job is an integration, not a drop-out"
    assert (row.integration_rate, row.dropout_rate) == (0.5, 0.5)
    # owed by the provider: JOB's start and December on time; DROPOUT's start late, its December on
    # time; REFUSED's start still open; January (both) and the assessments after the exits open
    assert (row.reports_on_time, row.reports_late, row.reports_missed) == (3, 1, 0), f"timeliness: {row}"
    assert row.reports_open == 5, f"open deadlines: {row}"
    assert row.on_time_rate == 0.75
    assert (row.cooperation_events, row.decisions, row.duplicates) == (1, 1, 1), f"cooperation loop and duplicates: {row}"
    assert (row.invoiced_amount, row.invoiced_participants, row.cost_per_participant) == (Decimal("277.50"), 2, Decimal("138.75"))
    assert figures(story, JOBCENTER) == [row], "the steering agency's own view differs from the operator's"
    assert figures(story, MUNICIPAL) == [], "another agency sees this agency's cases"
    with db.read(story.engine) as conn:
        production = controlling.measure_figures(conn, controlling.definition(story.contracts_dir))
    assert production == [], "test chains count in the production figures"


def test_senders_rejections_and_duplicates(story: Hub) -> None:
    with db.read(story.engine) as conn:
        operator = controlling.sender_figures(conn, senders=[PROVIDER, JOBCENTER], test=True)
        agency = controlling.sender_figures(conn, JOBCENTER, senders=[PROVIDER], test=True)
        later = controlling.sender_figures(conn, period=Period(start=dt.date(2099, 1, 1)), test=True)
    assert operator == [
        SenderFigures(JOBCENTER, received=4, rejected=0, duplicates=0),  # three assignments and the decision
        SenderFigures(PROVIDER, received=10, rejected=1, duplicates=1),
    ], f"{operator}"
    assert operator[1].rejection_rate == 0.1 and operator[1].duplicate_rate == 0.1
    # the agency's view: what is recorded on its cases (the refused exit names no case the hub kept)
    assert agency == [SenderFigures(PROVIDER, received=9, rejected=None, duplicates=1)], f"{agency}"
    assert agency[0].rejection_rate is None
    assert later == [], "a period after the story counts messages"


def test_deadlines_and_sla_breaches_per_partner(story: Hub) -> None:
    with db.read(story.engine) as conn:
        rows = controlling.partner_deadlines(conn, today=dt.date(2026, 12, 11), test=True)
        mine = controlling.partner_deadlines(conn, JOBCENTER, today=dt.date(2026, 12, 11), test=True)
        december = controlling.partner_deadlines(conn, today=dt.date(2026, 12, 11), test=True,
                                                 period=Period(dt.date(2026, 12, 1), dt.date(2027, 1, 1)))
    by = {(r.partner, r.kind): r for r in rows}
    assert by[(PROVIDER, "start")] == PartnerDeadlines(PROVIDER, "start", due=3, on_time=1, late=1, missed=0, open=1, overdue=1)
    assert by[(PROVIDER, "start")].breaches == 1
    assert by[(JOBCENTER, "cooperation_decision")] == PartnerDeadlines(JOBCENTER, "cooperation_decision", 1, 1, 0, 0, 0, 0), \
        "the case manager's decision deadline"
    assert mine == rows, "the steering agency sees other deadlines than the operator"
    assert {r.kind for r in december} == {"start", "cooperation_decision"}, "the period does not select by due day"


def test_to_csv_opens_in_a_german_spreadsheet(story: Hub) -> None:
    text = controlling.to_csv(figures(story))
    assert text.startswith("\ufeff"), "no byte order mark: Excel misreads the umlauts"
    header, row, *rest = text[1:].split("\r\n")
    assert header.split(";")[:3] == ["provider", "measure_number", "assignments"] and "cost_per_participant" in header
    cells = dict(zip(header.split(";"), row.split(";")))
    assert (cells["invoiced_amount"], cells["cost_per_participant"], cells["integration_rate"]) == ("277,50", "138,75", "0,5000"), cells
    assert rest == [""], "one line per row"
    assert controlling.to_csv([]) == "\ufeff"


def test_a_definition_naming_an_unknown_code_names_file_and_line(tmp_path: Any) -> None:
    contracts = _contracts_with(tmp_path, "controlling.yaml", "destinations: [beschaeftigung_svp,", "destinations: [beschaeftigung,")
    with pytest.raises(ContractError) as error:
        controlling.Definition.load(contracts)
    assert "'beschaeftigung' is not in the code list" in str(error.value) and error.value.path.endswith("controlling.yaml")
    assert error.value.line > 0, f"no line: {error.value}"
