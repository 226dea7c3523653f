"""Prometheus metrics (text format at /metrics). Names follow the Prometheus naming guide."""

from __future__ import annotations

from collections.abc import Container

from prometheus_client import Counter, Histogram

MESSAGES_RECEIVED = Counter("hub_messages_received_total", "Messages accepted at ingress", ["message_type", "sender"])
MESSAGES_REFUSED = Counter(
    "hub_messages_refused_total",
    "Messages refused at ingress (a 4xx answer to POST /v1/messages, a refused file-drop record), by problem kind, authenticated partner and message type",
    ["reason", "partner", "type"],
)
STAGE_EVENTS = Counter("hub_stage_events_total", "History events written, by stage and event", ["stage", "event"])
DELIVERIES = Counter("hub_deliveries_total", "Deliveries written, by recipient and message type", ["recipient", "message_type"])
SLA_BREACHES = Counter("hub_sla_breaches_total", "Deadlines missed, by the partner that owed them and kind", ["partner", "kind"])
TASKS_OPENED = Counter("hub_tasks_opened_total", "Tasks the steering rules opened, by owner and kind", ["owner", "kind"])
PIPELINE_SECONDS = Histogram("hub_pipeline_seconds", "Time to process one message in the pipeline")


#: the label value where the partner is not authenticated or the message names no catalogue type
UNKNOWN = "unknown"


def count_refused(reason: str, partner: str | None, message_type: str | None, catalogue: Container[str]) -> None:
    """Count one refused message. Label values are only ones the hub chose: a problem kind, the
    authenticated partner's id, a catalogue message type -- never a string the caller made up (a
    token, a message type), which would make a time series per request."""
    known = message_type if isinstance(message_type, str) and message_type in catalogue else UNKNOWN
    MESSAGES_REFUSED.labels(reason, partner or UNKNOWN, known).inc()
