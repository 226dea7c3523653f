"""`hub tasks`, `hub cases show` and `hub cases report`: the steering agency's tasks and a case's chain, for operators
on the hub's host. Every read is an audit entry, like the API's."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer

from hub.cli.base import _checked, _hub, _print, app, cases_app, fail, operator
from hub.findings import Refusal

tasks_app = typer.Typer(help="The steering agencies' tasks: decisions due, late reports, next links.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")


def _line(t: dict) -> str:
    return f"{t['id']}  due {t['due_on']}  {t['owner']}  {t['kind']}: {t['title']}" + (f"  (proposal: {t['proposed_measure']})" if t.get("proposed_measure") else "")


@tasks_app.command("list")
def tasks_list(
    owner: Annotated[Optional[str], typer.Option(help="Only this agency's tasks.")] = None,
    case: Annotated[Optional[str], typer.Option(help="Only the tasks of this case (the hub's case id).")] = None,
    kind: Annotated[Optional[str], typer.Option(help="Only tasks of this kind (e.g. cooperation_decision).")] = None,
    due_before: Annotated[Optional[str], typer.Option("--due-before", help="Only tasks due on or before this day (YYYY-MM-DD).")] = None,
    status: Annotated[str, typer.Option(help="open, done or cancelled.")] = "open",
    as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """The open tasks, soonest due first."""
    from hub.chain import tasks
    from hub.store import db
    from hub.store.history import audit

    if status not in tasks.STATUSES:
        fail(f"--status must be one of {', '.join(tasks.STATUSES)}", 2)
    try:
        before = dt.date.fromisoformat(due_before) if due_before else None
    except ValueError:
        fail(f"--due-before {due_before!r} is not a date (YYYY-MM-DD)", 2)
    hub = _hub()
    if owner is not None and owner not in hub.partners:
        fail(f"no partner {owner!r}; see `hub partners list`", 2)
    with db.write(hub.engine) as conn:
        found = [t.as_dict() for t in tasks.listing(conn, owner, case_id=case, kind=kind, due_before=before, status=status)]
        audit(conn, operator(), "tasks-read", purpose="betrieb", tasks=[t["id"] for t in found])
    _print(found, as_json, "\n".join(_line(t) for t in found) or f"no {status} tasks")


@tasks_app.command("show")
def tasks_show(task_id: Annotated[str, typer.Argument(help="The task's id (see `hub tasks list`).")], as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False) -> None:
    """One task: what it asks, why (rule and version), and the decisions it offers."""
    from hub.chain import tasks
    from hub.store import db
    from hub.store.history import audit

    hub = _hub()
    try:
        with db.write(hub.engine) as conn:
            task = tasks.get(conn, task_id).as_dict()
            audit(conn, operator(), "task-read", purpose="betrieb", task=task_id)
    except Refusal as refusal:
        fail(refusal.detail)
    text = "\n".join([_line(task), f"  case {task['case_id']}  status {task['status']}  rule {task['rule']} (rules {task['rule_version']})",
                      f"  decisions: {', '.join(task['decisions'])}"] + ([f"  decided: {task['decision']} by {task['completed_by']}"] if task["decision"] else []))
    _print(task, as_json, text)


@tasks_app.command("complete")
def tasks_complete(
    task_id: Annotated[str, typer.Argument(help="The task's id (see `hub tasks list`).")],
    decision: Annotated[str, typer.Option(help="One of the task's decisions (see `hub tasks show`).")],
    remark: Annotated[Optional[str], typer.Option(help="A note that stays inside the agency.")] = None,
    by: Annotated[Optional[str], typer.Option(help="Who decided, for the audit log (default: cli:<login>).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Complete a task; a decision the provider must learn leaves as the owner's teilnahme.aenderung.2020."""
    from hub.endpoints import decisions

    hub = _hub()
    try:
        done = decisions.complete(hub, task_id, decision, remark, owner=None, by=by or operator())
    except Refusal as refusal:
        fail(refusal.detail + "".join(f"; {f.message}" for f in refusal.findings))
    _print(done, as_json, f"task {task_id} done: {decision}" + (f" (sent as message {done['decision_message_id']})" if done.get("decision_message_id") else ""))


@cases_app.command("show")
def cases_show(case_id: Annotated[str, typer.Argument(help="The hub's case id (see `hub cases list`).")], as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False) -> None:
    """A case's chain as a timeline: links, their record, deadlines met or missed, tasks, next step."""
    from hub.chain.calendar import today
    from hub.chain.view import chain_view, find_case, timeline
    from hub.store import db
    from hub.store.history import audit

    hub = _hub()
    try:
        with db.write(hub.engine) as conn:
            case = find_case(conn, "cli", True, case_id)
            view = chain_view(conn, hub.chain.steering, case, "cli", whole=True, reference=case_id, today=today())
            audit(conn, operator(), "chain-read", purpose="betrieb", case=case.id, links=len(view["links"]))
    except Refusal as refusal:
        fail(refusal.detail + " (give the hub's case id, see `hub cases list`)")
    _print(view, as_json, timeline(view))


@cases_app.command("report")
def cases_report(
    case_id: Annotated[str, typer.Argument(help="The hub's case id (see `hub cases list`).")],
    pdf: Annotated[Optional[Path], typer.Option("--pdf", help="Write the report as PDF to this file.", dir_okay=False)] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help="Write the report as a standalone HTML document to this file.", dir_okay=False)] = None,
) -> None:
    """The automatic case report: links, reports, transmissions with purpose and legal basis,
    decisions, deadlines and tasks (docs/case-report.md). Printed as text; --pdf and --html write files."""
    from hub.chain.calendar import today
    from hub.reports import case_report, render
    from hub.store import db

    hub = _checked(_hub())
    for out in (pdf, html):
        if out is not None and not out.parent.is_dir():
            fail(f"cannot write {out}: the folder {out.parent} does not exist", 2)
    try:
        with db.write(hub.engine) as conn:
            report = case_report.build(conn, hub, case_id, viewer=operator(), operator=True, today=today())
    except Refusal as refusal:
        fail(refusal.detail + " (give the hub's case id, see `hub cases list`)")
    if pdf is not None:
        pdf.write_bytes(render.render_pdf(report))
    if html is not None:
        html.write_text(render.render_html(report), encoding="utf-8")
    if pdf is None and html is None:
        typer.echo(render.render_text(report))
    else:
        typer.echo(f"case report of {case_id} written to {', '.join(str(p) for p in (pdf, html) if p is not None)}")
