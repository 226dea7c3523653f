"""Stage: the message moves its link of the case chain (contracts/chain/lifecycle.yaml) and fires the
steering rules; a message that does not fit the link's state is refused, naming the state. A
message about several cases (the invoice) is recorded line by line on each case's link instead.

Runs after the case is known and before routing, so a refused message is answered and delivered to
no one. A test message ("processed, never acted upon") moves only links that test messages opened:
test and production chains never mix. Tasks the rules open reach the owner's system as
steuerung.aufgabe (`task_messages`).
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from hub.chain import links, membership
from hub.chain.calendar import today
from hub.chain.engine import Incoming
from hub.chain.lifecycle import PerLine
from hub.metrics import TASKS_OPENED
from hub.pipeline.case_refs import ref_nodes
from hub.pipeline.context import Context
from hub.pipeline.task_messages import deliver_tasks
from hub.runtime import Hub
from hub.store.history import record


def chain_links(hub: Hub, conn: Connection, ctx: Context) -> None:
    chain = hub.chain
    message_type = ctx.row.message_type
    per_line = chain.steering.lifecycle.per_line.get(message_type)
    if per_line is not None:
        _record_lines(hub, conn, ctx, per_line)
        return
    if ctx.case is None or not chain.concerns(message_type):
        return
    if ctx.existing and links.recorded(conn, ctx.row.id):
        return  # a replay of a message the chain took before: it is not applied twice
    header = ctx.message.header
    incoming = Incoming(
        message_id=ctx.row.id, message_type=message_type, message_uuid=str(header.message_uuid), sender_id=ctx.sender.id,
        link_partner=_link_partner(conn, ctx), created_on=header.created_at.date(), test=bool(ctx.row.test), body=ctx.message.body.model_dump(mode="python", exclude_none=True),
    )
    effects = chain.on_message(conn, ctx.case, incoming, today(), hub.adapter(ctx.row.format).pointer)
    if effects.link is not None:
        record(conn, ctx.row.id, "chain", "link", link=effects.link.id, tasks=[t.id for t in effects.tasks] or None)
    ctx.written += deliver_tasks(hub, conn, effects.tasks, ctx.case, effects.link)
    for task in effects.tasks:
        TASKS_OPENED.labels(task.owner, task.kind).inc()


def _record_lines(hub: Hub, conn: Connection, ctx: Context, spec: PerLine) -> None:
    """Each line of a message about several cases (lifecycle.yaml `per_line`) on its case's link: the
    sender's link for the message's measure. A line's case is the sender's reference at the place
    contracts/dedup/policy.yaml `case_refs` names (as deliver translates it); a replay records nothing twice."""
    if ctx.existing and links.recorded(conn, ctx.row.id):
        return
    body = ctx.message.body.model_dump(mode="json", exclude_none=True)
    measure = body.get("measure_number")
    if not measure:
        return
    kept = {k: body[k] for k in spec.keep if k in body}
    ref_fields = [path.split(".")[-1] for path in (hub.dedup_policy.get("case_refs") or {}).get(ctx.row.message_type, ())
                  if path.split(".")[:-1] == spec.lines.split(".")] or ["case_id"]
    for _, _, line in ref_nodes(body, spec.lines.split(".")):
        ref = next((line[f] for f in ref_fields if line.get(f)), None) or line.get("customer_number")
        case = membership.case_for_ref(conn, ctx.sender.id, str(ref)) if ref else None
        link = links.latest(conn, case.id, ctx.sender.id, measure, bool(ctx.row.test)) if case else None
        if case is not None and link is not None:
            links.record(conn, case.id, link.id, spec.record, message_id=ctx.row.id, message_type=ctx.row.message_type,
                         detail={**kept, **{k: line[k] for k in spec.keep_line if k in line}})


def _link_partner(conn: Connection, ctx: Context) -> str | None:
    """Whose link: a provider reports on its own; an assignment names its provider as reader; an
    agency's change concerns the provider that runs the measure (routing's `same_measure`)."""
    if ctx.sender.role == "provider":
        return ctx.sender.id
    reader = ctx.message.header.reader
    if any(r.opens_case for r in ctx.routes):
        return reader.id if reader else None
    measure = getattr(ctx.message.body, "measure_number", None)
    runs = membership.running(conn, ctx.case.id, measure) if measure else []
    return runs[0] if len(runs) == 1 else (reader.id if reader and reader.id in runs else None)
