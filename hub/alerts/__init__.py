"""Alerts and notifications as data (contracts/alerts.yaml): evaluated by the worker, sent once (docs/alerts.md).

The console and /metrics call `active(conn, hub)`: what fires now. The workers run `AlertWatch`.
"""

from hub.alerts.firing import ActiveAlert, active, rules_of
from hub.alerts.rules import AlertRules
from hub.alerts.watch import AlertWatch

__all__ = ["ActiveAlert", "AlertRules", "AlertWatch", "active", "rules_of"]
