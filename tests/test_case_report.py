"""The automatic case report as its readers expect it: a case played through the pipeline (the
Jobcenter assigns, the provider starts late, reports attendance, sends a cooperation feedback, the
case manager decides) comes out as a PDF whose text shows the chain's link, each transmission with
its legal basis, the decision and the missed deadline -- and never the benefit consequence. Reading
it is audited; a provider gets no report; the CLI prints, writes a PDF, and refuses an unknown case
in one line.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from hub.chain import tasks
from hub.endpoints import decisions
from hub.findings import Refusal
from hub.reports import case_report, render
from hub.runtime import Hub
from hub.scheduler import DeadlineScheduler
from hub.store import db
from hub.store.tables import audit_log, cases
from tests.conftest import JOBCENTER, PROVIDER, drain
from tests import test_audit_log
from tests.test_case_chain import CUSTOMER, MEASURE, assign, report

TODAY = dt.date(2026, 12, 11)


def play_story(hub: Hub) -> str:
    """Assignment; the start deadline passes; the start comes late; attendance with an unexcused
    absence; a cooperation feedback; the case manager decides to continue (a remark that names the
    benefit consequence, which must stay inside the agency). Returns the provider's case reference."""
    case_ref = assign(hub)
    assert DeadlineScheduler(hub).sweep(dt.datetime(2026, 12, 10, 12, tzinfo=dt.timezone.utc)) == 1, "the start deadline was not missed"
    report(hub, case_ref, "teilnahme.eintritt.2010")
    report(hub, case_ref, "teilnahme.anwesenheit.2030", absences=[{"date": "2026-12-03", "reason": "unentschuldigt"}])
    report(hub, case_ref, "teilnahme.mitwirkung.2040")
    with db.read(hub.engine) as conn:
        (task,) = tasks.listing(conn, JOBCENTER, kind="cooperation_decision")
    decisions.complete(hub, task.id, "continue", "Minderung 10 % nach § 31a SGB II geprüft", owner=JOBCENTER, by="jc:fallmanagerin")
    drain(hub)
    return case_ref


def build(hub: Hub, reference: str = CUSTOMER, viewer: str = JOBCENTER, operator: bool = False, actor: str | None = None) -> case_report.CaseReport:
    with db.write(hub.engine) as conn:
        return case_report.build(conn, hub, reference, viewer=viewer, operator=operator, today=TODAY, actor=actor)


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-"), "render_pdf did not return a PDF"
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split())


def test_the_pdf_shows_the_link_the_transmissions_with_legal_basis_the_decision_and_the_missed_deadline(hub: Hub) -> None:
    play_story(hub)
    built = build(hub)
    (link,) = built.links
    assert (link.measure_number, link.partner, link.status) == (MEASURE, PROVIDER, "started"), "the report's link is not the chain's"
    attendance = [t for t in built.transmissions if t.message_type == "teilnahme.anwesenheit.2030" and t.recipient == JOBCENTER]
    assert attendance and attendance[0].legal_basis == "§ 61 Abs. 2 SGB II", "the attendance's transmission lacks its legal basis"
    assert any(t.message_type == "teilnahme.aenderung.2020" and t.recipient == PROVIDER for t in built.transmissions), \
        "the decision's transmission to the provider is missing"
    assert any(t.message_type == "steuerung.aufgabe.5010" for t in built.transmissions), "the task's transmission to the owner is missing"
    assert [(d.decision, d.by) for d in built.decisions] == [("continue", "jc:fallmanagerin")], "the decision taken is not in the report"
    (missed,) = built.missed
    assert (missed.kind, missed.partner, missed.state) == ("start", PROVIDER, "missed, came late"), "the missed start deadline"

    text = pdf_text(render.render_pdf(built))
    for shown in (
        f"Glied 1: Maßnahme {MEASURE}", "Bildungswerk",  # the link, with the provider's name
        "teilnahme.anwesenheit.2030", "teilnahmenachweis", "§ 61 Abs. 2 SGB II",  # a transmission, its purpose and legal basis
        "§ 17 Abs. 1, § 50 Abs. 1 SGB II", "Entscheidungen", "continue",  # the decision went out under its basis
        "Eintrittsmeldung", "versäumt, verspätet nachgereicht",  # the missed deadline
        "Aufgaben", "Entscheidung über die weitere Teilnahme",
    ):
        assert shown in text, f"the PDF does not show {shown!r}"
    for hidden in ("Minderung", "31a", "Sanktion"):
        assert hidden.lower() not in text.lower(), f"the report carries the benefit consequence ({hidden!r})"


def test_the_html_is_accessible_german_and_the_fragment_fits_into_a_page(hub: Hub) -> None:
    play_story(hub)
    built = build(hub)
    html = render.render_html(built)
    assert html.startswith("<!DOCTYPE html>") and '<html lang="de">' in html, "the document is not marked German"
    assert "@page" in html and "<h1>" in html, "no print stylesheet or no title heading"
    levels = [int(c) for c in re.findall(r"<h([1-6])[ >]", html)]
    assert levels[0] == 1 and all(b - a <= 1 for a, b in zip(levels, levels[1:])), f"headings skip a level: {levels}"
    assert "<th scope=\"col\">" in html and "<caption>" in html, "tables without header scope or caption"
    fragment = render.render_fragment(built, heading_level=3)
    assert "<html" not in fragment and "<style" not in fragment and fragment.lstrip().startswith("<article"), "the fragment is not a bare article"
    assert "<h3" in fragment and "<h2" not in fragment, "the fragment's headings do not start at the level asked"


def test_reading_the_report_is_audited_and_only_the_owner_or_an_operator_gets_it(hub: Hub) -> None:
    case_ref = play_story(hub)
    assert build(hub, actor="console:fallmanagerin").generated_by == "console:fallmanagerin"
    with db.read(hub.engine) as conn:
        case_id = conn.execute(sa.select(cases.c.id)).scalar_one()
    build(hub, case_id, viewer="cli:operator", operator=True)
    with db.read(hub.engine) as conn:
        entries = conn.execute(sa.select(audit_log).where(audit_log.c.action == "case-report-read").order_by(audit_log.c.id)).all()
    assert [(e.actor, e.purpose, e.legal_basis) for e in entries] == [
        ("console:fallmanagerin", "eingliederung", "§ 50 Abs. 1 SGB II"), ("cli:operator", "betrieb", entries[1].legal_basis),
    ] and entries[1].legal_basis.startswith("§ 80 SGB X"), "a report read is not audited with purpose and legal basis"
    assert all(e.detail["case"] == case_id for e in entries), "the audit entry does not name the case"
    assert entries[0].partner == JOBCENTER, "the agency in whose name the case manager read is not recorded"
    with pytest.raises(Refusal) as provider:
        build(hub, case_ref, viewer=PROVIDER)
    assert provider.value.status == 404, "a provider got the steering agency's report"


# -- the command line -------------------------------------------------------------------------------------
cli_env = test_audit_log.cli_env  # the fixture: `hub ...` run in this process works on the test's database
hub_cli = test_audit_log.hub_cli


def test_hub_cases_report_prints_writes_a_pdf_and_refuses_an_unknown_case(hub: Hub, cli_env: Any, tmp_path: Any) -> None:
    play_story(hub)
    with db.read(hub.engine) as conn:
        case_id = conn.execute(sa.select(cases.c.id)).scalar_one()
    shown = hub_cli("cases", "report", case_id)
    assert shown.exit_code == 0, shown.output
    assert f"Fallbericht {case_id}" in shown.output and MEASURE in shown.output and "§ 61 Abs. 2 SGB II" in shown.output, shown.output
    out = tmp_path / "bericht.pdf"
    written = hub_cli("cases", "report", case_id, "--pdf", str(out))
    assert written.exit_code == 0 and str(out) in written.output, written.output
    assert MEASURE in pdf_text(out.read_bytes()), "the PDF the CLI wrote is not the case's report"
    unknown = hub_cli("cases", "report", "01NOSUCHCASE00000000000000")
    assert unknown.exit_code == 1 and "01NOSUCHCASE00000000000000" in unknown.output, unknown.output
    assert "Traceback" not in unknown.output and len(unknown.output.strip().splitlines()) == 1, unknown.output

