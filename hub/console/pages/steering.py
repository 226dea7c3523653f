"""What a steering team watches: the case report, controlling per provider and measure, and the
deadlines and SLA breaches per partner -- each table also as CSV for the spreadsheet.

The figures are hub.chain.controlling's and the report hub.reports', the same as `hub cases report`;
a case manager's are their agency's cases only, an operator's all. Controlling asks for a period
(default: the current quarter): all time over a large store is a report to run, not a page.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from hub.chain import controlling
from hub.chain.calendar import today
from hub.console.pages.cases import viewer
from hub.console.web import SECURITY_HEADERS, PageError, Steering, Visit
from hub.findings import Refusal
from hub.reports import case_report, render

router = APIRouter()

TABLES = ("measures", "senders", "deadlines")


def _report(v: Visit, case_ref: str) -> case_report.CaseReport:
    agency, operator = viewer(v)
    with v.write() as conn:  # building the report writes its audit entry
        try:
            return case_report.build(conn, v.hub, case_ref, viewer=agency or v.user.actor, operator=operator, today=today(), actor=v.user.actor)
        except Refusal:
            raise PageError(404, v._("No case %(ref)s is known to you.", ref=case_ref[:40])) from None


@router.get("/cases/{case_ref}/report", include_in_schema=False)
def report_page(case_ref: str, v: Steering) -> Response:
    report = _report(v, case_ref)
    return v.page("report.html", case_ref=case_ref, fragment=render.render_fragment(report, heading_level=2))


@router.get("/cases/{case_ref}/report.pdf", include_in_schema=False)
def report_pdf(case_ref: str, v: Steering) -> Response:
    pdf = render.render_pdf(_report(v, case_ref))
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", case_ref[:40])  # a header value: nothing a path could smuggle in
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="fallbericht-{safe}.pdf"'}
    return Response(pdf, media_type="application/pdf", headers=headers)


def quarter(day: dt.date) -> controlling.Period:
    start = dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    end = dt.date(start.year + (start.month == 10), (start.month + 3 - 1) % 12 + 1, 1)
    return controlling.Period(start, end)


def _period(v: Visit, start: dt.date | None, end: dt.date | None) -> controlling.Period:
    if start is None and end is None:
        return quarter(today())
    if start and end and end < start:
        raise PageError(400, v._("The period ends before it starts."))
    return controlling.Period(start, end + dt.timedelta(days=1) if end else None)


def _csv(name: str, rows: list) -> Response:  # type: ignore[type-arg]
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}.csv"'}
    return Response(controlling.to_csv(rows).encode("utf-8"), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/controlling", include_in_schema=False)
def controlling_page(v: Steering, start: Annotated[dt.date | None, Query(alias="from")] = None, end: Annotated[dt.date | None, Query(alias="to")] = None,
                     format: Annotated[str, Query(pattern="^(html|csv)$")] = "html", table: Annotated[str, Query(pattern="^(measures|senders|deadlines)$")] = "measures") -> Response:
    agency, operator = viewer(v)
    owner = None if operator else agency
    period = _period(v, start, end)
    definition = controlling.definition(v.hub.contracts_dir)
    with v.read() as conn:
        if format == "csv":
            rows = {"measures": lambda: controlling.measure_figures(conn, definition, owner, period=period),
                    "senders": lambda: controlling.sender_figures(conn, owner, period=period),
                    "deadlines": lambda: controlling.partner_deadlines(conn, owner, today=today(), period=period)}[table]()
            return _csv(f"controlling-{table}", rows)
        measures = controlling.measure_figures(conn, definition, owner, period=period)
        senders = controlling.sender_figures(conn, owner, period=period)
    return v.page("controlling.html", measures=measures, senders=senders, period=period, last_day=_last_day(period))


@router.get("/deadlines", include_in_schema=False)
def deadlines_page(v: Steering, start: Annotated[dt.date | None, Query(alias="from")] = None, end: Annotated[dt.date | None, Query(alias="to")] = None,
                   format: Annotated[str, Query(pattern="^(html|csv)$")] = "html") -> Response:
    agency, operator = viewer(v)
    period = _period(v, start, end)
    with v.read() as conn:
        rows = controlling.partner_deadlines(conn, None if operator else agency, today=today(), period=period)
    if format == "csv":
        return _csv("fristen", rows)
    return v.page("deadlines.html", rows=rows, period=period, last_day=_last_day(period))


def _last_day(period: controlling.Period) -> dt.date | None:
    return period.end - dt.timedelta(days=1) if period.end else None
