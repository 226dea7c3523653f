"""What flows through the hub, for operators: per partner and message type the received, routed,
rejected, duplicate, delivered and dead messages of the last hour, day and 30 days, charts of the
last day and month, and the queues with the age of their oldest item.

The figures are hub.store.flows' (counters rolled up by the workers, the open hour counted live) and
the queue depths the transport's; both are metadata, no content -- no audit entry for viewing them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from hub.console import charts
from hub.console.i18n import ZONE
from hub.console.web import Operator
from hub.store import flows as flow_store
from hub.store.tables import OUTCOME_EVENTS

router = APIRouter()

Name = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9._-]*$")]
#: the outcomes drawn, bottom to top
DRAWN = ("delivered", "received", "duplicate", "rejected", "dead")


@router.get("/flows", include_in_schema=False)
def flows(v: Operator, partner: Name = None, message_type: Name = None, span: Annotated[str, Query(pattern="^(hour|day)$")] = "hour") -> Response:
    with v.read() as conn:
        found = flow_store.flows(conn, partner=partner or None, message_type=message_type or None)
        points = flow_store.series(conn, span, partner=partner or None, message_type=message_type or None)
    queues = v.hub.transport.queue_depths()
    fmt = "%H:%M" if span == "hour" else "%d.%m."
    labels = {o: v._(o) for o in DRAWN}
    chart = charts.stacked_bars(
        v._("Messages per hour, last 24 hours") if span == "hour" else v._("Messages per day, last 30 days"),
        v._("Stacked bars per outcome; the figures are in the table below."),
        [(p.start.astimezone(ZONE).strftime(fmt), p.counts) for p in points], DRAWN, labels,
    )
    return v.page("flows.html", flows=found, chart=chart, points=points, span=span, queues=queues, outcomes=OUTCOME_EVENTS, fmt=fmt, zone=ZONE)
