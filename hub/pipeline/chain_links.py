"""Stage: the message moves its link of the case chain (contracts/chain/lifecycle.yaml) and fires the
steering rules; a message that does not fit the link's state is refused, naming the state.

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
from hub.metrics import TASKS_OPENED
from hub.pipeline.context import Context
from hub.pipeline.task_messages import deliver_tasks
from hub.runtime import Hub
from hub.store.history import record


def chain_links(hub: Hub, conn: Connection, ctx: Context) -> None:
    chain = hub.chain
    message_type = ctx.row.message_type
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
