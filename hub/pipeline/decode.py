"""Stage: the sender's bytes -> the canonical message, with the sender's adapter."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.engine import Connection

from hub.findings import Finding, Refusal
from hub.pipeline import read_ahead
from hub.pipeline.context import Context
from hub.runtime import Hub
from hub.store.history import record


def decode(hub: Hub, conn: Connection, ctx: Context) -> None:
    """Decode (or take the batch's read-ahead decoding) and find the routes for its type and sender."""
    ahead = read_ahead.of(conn)
    try:
        decoded = ahead.decoded.pop(ctx.row.id, None) if ahead is not None else None
        ctx.message = decoded or hub.adapter(ctx.row.format).decode(ctx.row.raw)
    except ValidationError as exc:  # Refusals (e.g. a 31 February) pass through as they are
        raise Refusal(
            "schema-invalid",
            "The message could not be read into the canonical model",
            [Finding(e["msg"], pointer="/body/" + "/".join(map(str, e["loc"]))) for e in exc.errors()],
        ) from None
    ctx.routes = hub.routes.matching(ctx.row.message_type, ctx.sender.role)
    record(conn, ctx.row.id, "pipeline", "decoded", routes=[r.name for r in ctx.routes])
