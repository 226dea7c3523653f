"""The pipeline: decode -> identities -> case -> duplicate reports -> chain links -> route -> master data -> deliver.

Each stage is a small function `stage(hub, conn, ctx)` in a module of its own, with one job and the
typed `Context` (`context.py`), composed in `STAGES` in the manner of structlog's processors; a
stage refuses a message by raising `Refusal`, which turns into a rueckweisung to the sender
(`answers.py`). Everything a message causes (deliveries, quittung, status, history, audit) is
written in the transaction of the queue item that carried it, so a crash at any point either leaves
no trace or leaves all of it: the item is then simply delivered again (idempotent receiver).

This is the hot path: statements are built once at import (parameters per call), the append-only
rows go through the transaction's unit of work (`hub.store.unit_of_work`), and what a batch can
read at once is read ahead (`read_ahead.py`), so a consumer that processes a batch of items reads
and writes each table about once per batch.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from hub import errors
from hub.findings import Finding, Refusal
from hub.metrics import PIPELINE_SECONDS, STAGE_SAMPLE, STAGE_SECONDS
from hub.partners import Partner
from hub.pipeline import read_ahead
from hub.pipeline.answers import quittung, reject
from hub.pipeline.case_chain import case_chain
from hub.pipeline.chain_links import chain_links
from hub.pipeline.context import Context, Duplicate, Stage
from hub.pipeline.decode import decode
from hub.pipeline.deliver import deliver
from hub.pipeline.duplicates import detect_duplicate_report
from hub.pipeline.identities import resolve_identities
from hub.pipeline.master_data import merge_master_data
from hub.pipeline.read_ahead import prefetch, still_current
from hub.pipeline.route import route
from hub.runtime import Hub
from hub.store import unit_of_work, writes
from hub.store.history import record
from hub.store.tables import messages
from hub.transport import Item
from hub.transport.base import Handler

__all__ = ["STAGES", "Context", "Stage", "consumer", "dead", "handle", "prefetch", "still_current"]

log = structlog.get_logger("hub.pipeline")

STAGES: list[Stage] = [decode, resolve_identities, case_chain, detect_duplicate_report, chain_links, route, merge_master_data, deliver]

#: which message is timed stage by stage (hub_stage_seconds): every STAGE_SAMPLE-th
_timed = itertools.count()


def _run_timed(hub: Hub, conn: Connection, ctx: Context) -> None:
    """STAGES with each stage's time observed, labelled with its module's name (decode, identities, ...);
    a stage that refuses the message is timed too."""
    for stage in STAGES:
        started = time.perf_counter()
        try:
            stage(hub, conn, ctx)
        finally:
            STAGE_SECONDS.labels(stage.__module__.rpartition(".")[2]).observe(time.perf_counter() - started)


_SELECT_MESSAGE = sa.select(messages).where(messages.c.id == sa.bindparam("id")).with_for_update()


def handle(hub: Hub, conn: Connection, item: Item) -> list[tuple[str, str]]:
    """Process one message from the pipeline queue; return its deliveries as (id, recipient).

    Idempotent: a redelivered item, or a second item for the same message, is a no-op. The message
    row is locked (FOR UPDATE on PostgreSQL; SQLite has one writer anyway), so two workers holding
    items for the same message take turns and the second finds it processed.
    """
    started = time.perf_counter()
    message_id = item.payload["message_id"]
    ahead = read_ahead.of(conn)
    row = ahead.rows.pop(message_id, None) if ahead is not None else None
    if row is None:
        row = conn.execute(_SELECT_MESSAGE, {"id": message_id}).first()
    if row is None or row.status != "received" or (ahead is not None and message_id in ahead.processed):
        log.info("pipeline.skip", message_id=message_id, reason="already processed" if row else "unknown message")
        return []
    if ahead is not None:  # its status change waits in the unit of work: remember it is done
        ahead.processed.add(message_id)
    with structlog.contextvars.bound_contextvars(message_id=message_id, correlation_id=row.correlation_id):
        sender = hub.partners.get(row.sender)
        if sender is None:
            gone = Partner(id=row.sender, name=row.sender, role="unknown", format="", version="")
            refusal = Refusal("forbidden", f"Sender {row.sender} is no longer registered")
            reject(hub, conn, Context(row=row, sender=gone), refusal, answer_sender=False)
            return []
        ctx = Context(row=row, sender=sender)
        if item.payload.get("replay") or row.updated_at != row.created_at:
            # processed before (a replay): deliveries written then are not written twice
            ctx.existing = writes.existing_deliveries(conn, message_id)
        try:
            with unit_of_work.savepoint(conn):  # a refusal or duplicate undoes whatever the stages wrote so far
                if next(_timed) % STAGE_SAMPLE:
                    for stage in STAGES:
                        stage(hub, conn, ctx)
                else:
                    _run_timed(hub, conn, ctx)
        except Refusal as refusal:
            ctx.written.clear()  # the stages' deliveries were rolled back with them
            reject(hub, conn, ctx, refusal)
            return ctx.written
        except Duplicate as duplicate:
            ctx.written.clear()
            record(conn, row.id, "dedup", "duplicate", of=duplicate.first, reason="same report content received before")
            quittung(hub, conn, ctx)
            writes.set_status(conn, row.id, "duplicate")
            return ctx.written
        except Exception as exc:  # noqa: BLE001 - permanent failures are answered, passing ones retried
            if errors.passing(exc):
                raise
            # the same message would fail the same way on every attempt: answer the sender now
            # instead of burying the message after five tries with nothing said
            ctx.written.clear()
            cause = errors.describe(exc)
            log.error("pipeline.cannot_pass_on", error=cause, exc_info=exc)
            reject(hub, conn, ctx, Refusal(
                "business-rule", "The hub cannot pass this message on",
                [Finding(f"processing failed: {cause}")],
            ))
            return ctx.written
        quittung(hub, conn, ctx)
        writes.set_status(conn, row.id, "routed")
    PIPELINE_SECONDS.observe(time.perf_counter() - started)
    return ctx.written


def consumer(hub: Hub, handle_item: Callable[[Connection, Item], object] | None = None) -> Handler:
    """The pipeline as a transport's handler, with its batch hooks (read-ahead, speculation check).
    `handle_item` replaces plain `handle` where the caller does more in the same transaction."""
    work = handle_item or (lambda conn, item: handle(hub, conn, item))

    def handler(conn: Connection, item: Item) -> None:
        work(conn, item)

    handler.prefetch = lambda conn, items: prefetch(hub, conn, items)  # type: ignore[attr-defined]
    handler.still_current = still_current  # type: ignore[attr-defined]
    return handler


def dead(hub: Hub, conn: Connection, item: Item, reason: str) -> None:
    """A message whose processing failed on every attempt: park it for an operator."""
    message_id = item.payload.get("message_id")
    if message_id:
        record(conn, message_id, "pipeline", "dead", reason=reason)
        writes.set_status(conn, message_id, "dead")

