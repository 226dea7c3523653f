"""Prometheus metrics (text format at /metrics). Names follow the Prometheus naming guide.

Counters and histograms count on the way (per process); the gauges describe the store as a whole
and are measured when /metrics is scraped (hub.alerts.gauges), so any process answers them alike.
"""

from __future__ import annotations

from collections.abc import Container

from prometheus_client import Counter, Gauge, Histogram

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
#: every STAGE_SAMPLE-th message is timed stage by stage: the distribution at a sixteenth of the cost
STAGE_SAMPLE = 16
STAGE_SECONDS = Histogram(
    "hub_stage_seconds", f"Time of one pipeline stage for one message (every {STAGE_SAMPLE}th message is timed)", ["stage"],
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
MESSAGES_REJECTED = Counter("hub_messages_rejected_total", "Messages the pipeline rejected (a rueckweisung), by sender, message type and problem kind", ["sender", "type", "reason"])

# -- measured at scrape ---------------------------------------------------------------------------------
QUEUE_DEPTH = Gauge("hub_queue_depth", "Items in the outbox by queue: the embedded queue itself, or what the relay has still to publish", ["queue"])
QUEUE_OLDEST = Gauge("hub_queue_oldest_seconds", "Age of the oldest item in the outbox, by queue", ["queue"])
PIPELINE_WAITING = Gauge("hub_pipeline_oldest_waiting_seconds", "Age of the oldest message waiting for the pipeline (0: none waits)")
DEAD_LETTERS = Gauge("hub_dead_letters", "Dead letters not replayed")
SLA_BREACHES_OPEN = Gauge("hub_sla_breaches_outstanding", "Missed deadlines whose message has not come yet, by the partner that owes it", ["partner"])
ALERT_NOTIFICATIONS = Gauge("hub_alert_notifications_unsent", "Alert notifications not sent: pending (waiting, or tried again after a backoff) and failed (given up)", ["status"])
ALERTS_ACTIVE = Gauge("hub_alerts_active", "Alerts firing (contracts/alerts.yaml) as the workers last evaluated them: subjects by alert and severity", ["alert", "severity"])


#: the label value where the partner is not authenticated or the message names no catalogue type
UNKNOWN = "unknown"


def count_refused(reason: str, partner: str | None, message_type: str | None, catalogue: Container[str]) -> None:
    """Count one refused message. Label values are only ones the hub chose: a problem kind, the
    authenticated partner's id, a catalogue message type -- never a string the caller made up (a
    token, a message type), which would make a time series per request."""
    known = message_type if isinstance(message_type, str) and message_type in catalogue else UNKNOWN
    MESSAGES_REFUSED.labels(reason, partner or UNKNOWN, known).inc()
