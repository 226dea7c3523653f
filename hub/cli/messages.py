"""`hub messages ...` and `hub cases ...`: a message's history, replay, dead letters; the cases."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from hub.cli.base import _hub, _print, cases_app, fail, messages_app, operator


# -- messages ----------------------------------------------------------------------------------------
@messages_app.command("show")
def messages_show(
    message_id: Annotated[str, typer.Argument(help="The message's id (as answered by POST /v1/messages).")],
    as_json: Annotated[bool, typer.Option("--json", help="Output status and history as JSON.")] = False,
) -> None:
    """A message's status and full history (the read is written to the audit log)."""
    from hub.store import db
    from hub.store import message_store
    from hub.findings import Refusal
    from hub.store.history import audit

    hub = _hub()
    try:
        with db.write(hub.engine) as conn:
            view = message_store.message_view(conn, message_id, None)
            audit(conn, operator(), "message-read", message_id=message_id)
    except Refusal as refusal:
        fail(refusal.detail)
    lines = [f"{view['id']}  {view['message_type']} {view['version']} from {view['sender']}  status: {view['status']}"]
    for e in view["history"]:  # the entry in words; --json has every field
        lines.append(f"  {e['at']}  {e['stage']:>10}.{e['event']:<12} {e['detail']['text']}")
    _print(view, as_json, "\n".join(lines))


@messages_app.command("replay")
def messages_replay(message_id: Annotated[str, typer.Argument(help="The id of the dead or rejected message.")]) -> None:
    """Run a dead (or rejected) message through the pipeline again, or push its dead deliveries again."""
    from hub.store import db
    from hub.store import message_store
    from hub.findings import Refusal

    hub = _hub()
    try:
        with db.write(hub.engine) as conn:
            answer = message_store.replay(conn, message_id, operator(), hub.transport)
    except Refusal as refusal:
        fail(refusal.detail)
    if answer.get("deliveries"):
        typer.echo(f"{message_id}: {len(answer['deliveries'])} dead deliveries queued for their push again")
    else:
        typer.echo(f"{message_id} queued for the pipeline again")


@messages_app.command("dead")
def messages_dead(as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False) -> None:
    """List dead letters waiting for an operator."""
    from hub.store import db
    from hub.store import message_store

    hub = _hub()
    with db.read(hub.engine) as conn:
        rows = message_store.dead_list(conn)
    _print(rows, as_json, "\n".join(f"{r['at']}  {r['message_id']}  {r['queue']}  {r['reason']}" for r in rows) or "no dead letters")


# -- cases ---------------------------------------------------------------------------------------------
@cases_app.command("list")
def cases_list(
    partner: Annotated[Optional[str], typer.Option(help="Only the cases this partner belongs to, under its own reference.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the references (of --partner), newest first.")] = False,
    limit: Annotated[int, typer.Option(help="How many cases, newest first.", min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """The newest cases, with every member's own reference for each (a provider's is its pseudonymous case id)."""
    from hub.chain import membership as chain
    from hub.store import db
    from hub.store.history import audit

    hub = _hub()
    if partner is not None and partner not in hub.partners:
        fail(f"no partner {partner!r}; see `hub partners list`", 2)
    if quiet and partner is None:
        fail("--quiet prints one partner's references: name it with --partner", 2)
    with db.write(hub.engine) as conn:
        rows = chain.listing(conn, partner, limit)
        audit(conn, operator(), "cases-read", partner=partner, cases=[r["id"] for r in rows])
    if quiet:
        typer.echo("\n".join(r["references"][partner] for r in rows))
        return
    lines = [
        f"{r['id']}  opened {r['opened_at'][:16].replace('T', ' ')}  owner {r['owner']}  "
        + ", ".join(f"{p}: {ref}" for p, ref in sorted(r["references"].items()) if partner in (None, p))
        for r in rows
    ]
    _print(rows, as_json, "\n".join(lines) or "no cases")
