"""The case report rendered: a standalone HTML document, the same content as a fragment for the
console's layout, a PDF (WeasyPrint, from that very HTML) and plain text for a terminal.

One template (templates/report_body.html) holds the content; the document (case_report.html) wraps
it with the print stylesheet, so what the console shows and what the PDF prints cannot drift apart.
Dates are German (TT.MM.JJJJ), times in Europe/Berlin: the office reading it is there.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import jinja2

from hub.reports.case_report import CaseReport

BERLIN = ZoneInfo("Europe/Berlin")


def _date(value: dt.date | None) -> str:
    return value.strftime("%d.%m.%Y") if value else "–"


def _time(value: dt.datetime | None) -> str:
    return value.astimezone(BERLIN).strftime("%d.%m.%Y %H:%M") if value else "–"


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hub.reports", "templates"), autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
    )
    env.filters["date"] = _date
    env.filters["time"] = _time
    return env


def render_fragment(report: CaseReport, heading_level: int = 2) -> str:
    """The report's content as an <article> for a page that has its own <h1> (the console): its
    headings start at `heading_level`, so the page's outline stays in order."""
    return _env().get_template("report_body.html").render(report=report, h=heading_level)


def render_html(report: CaseReport) -> str:
    """The report as a standalone HTML document (lang="de", print stylesheet), the source of the PDF."""
    return _env().get_template("case_report.html").render(report=report, body=render_fragment(report, heading_level=2))


def render_pdf(report: CaseReport) -> bytes:
    """The report as PDF (A4, page numbers), rendered by WeasyPrint from `render_html`'s document.
    No external resources: the stylesheet is inline, so nothing is fetched."""
    from weasyprint import HTML  # imported on use: loading Pango costs the other commands nothing

    return HTML(string=render_html(report), base_url=None).write_pdf()


def render_text(report: CaseReport) -> str:
    """The report as plain text for `hub cases report` on a terminal."""
    return _env().get_template("case_report.txt").render(report=report)
