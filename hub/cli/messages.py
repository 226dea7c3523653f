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


#: the filter options `hub messages dead` and `hub messages replay --all` share (hub.store.dead_letters.DeadLetterFilter)
Partner = Annotated[Optional[str], typer.Option("--partner", help="Only dead letters of messages this partner sent or was to receive.")]
MessageType = Annotated[Optional[str], typer.Option("--type", help="Only messages of this type, e.g. teilnahme.anwesenheit.2030.")]
Reason = Annotated[Optional[str], typer.Option("--reason", help="Only dead letters whose reason contains this text (any case).")]
Since = Annotated[Optional[str], typer.Option("--since", help="Only dead letters from this time on (ISO 8601; no zone: UTC).")]
Until = Annotated[Optional[str], typer.Option("--until", help="Only dead letters before this time (ISO 8601; no zone: UTC).")]
WithReplayed = Annotated[bool, typer.Option("--include-replayed", help="Also dead letters that were replayed before.")]


def _dead_filter(partner: str | None, message_type: str | None, reason: str | None, since: str | None, until: str | None,
                 include_replayed: bool, limit: int = 50):  # type: ignore[no-untyped-def]
    from hub.findings import Refusal
    from hub.store.dead_letters import DeadLetterFilter

    try:
        return DeadLetterFilter.parse(partner=partner, message_type=message_type, reason=reason, at_from=since, at_to=until,
                                      include_replayed=include_replayed, limit=limit)
    except Refusal as refusal:
        detail = refusal.detail
        for field_name, option in (("at_from", "--since"), ("at_to", "--until"), ("message_type", "--type")):
            detail = detail.replace(field_name, option)
        fail(detail, 2)


@messages_app.command("replay")
def messages_replay(
    message_id: Annotated[Optional[str], typer.Argument(help="The id of the dead or rejected message (or --all with filters).")] = None,
    all_matching: Annotated[bool, typer.Option("--all", help="Replay every dead letter matching the filters, 100 per transaction.")] = False,
    partner: Partner = None, message_type: MessageType = None, reason: Reason = None, since: Since = None, until: Until = None,
    include_replayed: WithReplayed = False,
    as_json: Annotated[bool, typer.Option("--json", help="Output the counts as JSON.")] = False,
) -> None:
    """Run a dead (or rejected) message through the pipeline again, or push its dead deliveries again;
    with --all, every dead letter matching the filters (those replayed before are left out)."""
    from hub.store import db
    from hub.store import dead_letters, message_store
    from hub.findings import Refusal

    if all_matching == (message_id is not None):
        fail("name one message id, or --all with filters", 2)
    if message_id is not None and any(v is not None for v in (partner, message_type, reason, since, until)):
        fail("the filters go with --all, not with a message id", 2)
    hub = _hub()
    if all_matching:
        f = _dead_filter(partner, message_type, reason, since, until, include_replayed)
        result = dead_letters.replay_matching(hub.engine, f, operator(), hub.transport)
        hub.transport.notify()
        text = (
            f"replayed {result.replayed} message(s); skipped {result.skipped_replayed} dead letter(s) replayed before, "
            f"{result.skipped_processed} message(s) processed or delivered meanwhile, {result.skipped_no_message} without a message"
        )
        _print(vars(result), as_json, "\n".join([text, *(f"  {r}" for r in result.refusals)]))
        return
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
def messages_dead(
    partner: Partner = None, message_type: MessageType = None, reason: Reason = None, since: Since = None, until: Until = None,
    include_replayed: WithReplayed = False,
    limit: Annotated[int, typer.Option(help="How many, newest first (at most 200).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """List dead letters waiting for an operator, newest first, with how many match in all."""
    from hub.store import db
    from hub.store import dead_letters

    f = _dead_filter(partner, message_type, reason, since, until, include_replayed, limit)
    hub = _hub()
    with db.read(hub.engine) as conn:
        found = dead_letters.page(conn, f)
        total = dead_letters.count(conn, f)
    rows = [d.as_dict() for d in found.items]
    lines = [f"{r['at']}  {r['message_id']}  {r['queue']}  {r['reason']}" + ("  (replayed)" if r["replayed_at"] else "") for r in rows]
    more = [f"{total - len(rows)} more; narrow the filters or raise --limit"] if total > len(rows) else []
    _print(rows, as_json, "\n".join(lines + more) or "no dead letters")


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
