"""Prometheus metrics (text format at /metrics). Names follow the Prometheus naming guide."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MESSAGES_RECEIVED = Counter("hub_messages_received_total", "Messages accepted at ingress", ["message_type", "sender"])
MESSAGES_REFUSED = Counter("hub_messages_refused_total", "Messages refused at ingress", ["problem"])
STAGE_EVENTS = Counter("hub_stage_events_total", "History events written, by stage and event", ["stage", "event"])
DELIVERIES = Counter("hub_deliveries_total", "Deliveries written, by recipient and message type", ["recipient", "message_type"])
PIPELINE_SECONDS = Histogram("hub_pipeline_seconds", "Time to process one message in the pipeline")
