"""Stage: the person a message carries, matched to the master person index (id cross-reference)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from hub.pipeline.context import Context
from hub.runtime import Hub
from hub.store.history import record


def resolve_identities(hub: Hub, conn: Connection, ctx: Context) -> None:
    """File the sender's record of the person and remember who it is, for each recipient's own id."""
    index = hub.person_index
    subject = index.subject(ctx.row.message_type, ctx.message.body_dict(), ctx.sender.role) if index else None
    if subject is None:
        return
    local_id, data = subject
    resolution = index.resolve(conn, ctx.sender.id, local_id, data, ctx.row.id)
    ctx.person_id, ctx.person_data = resolution.person_id, data
    record(
        conn, ctx.row.id, "identity", "resolved", person=resolution.person_id, decision=resolution.decision,
        **({"weight": resolution.weight} if resolution.weight is not None else {}),
        **({"review": resolution.review_id} if resolution.review_id else {}),
    )
