"""Alerts and notifications as data (contracts/alerts.yaml): evaluated by the worker, sent once (docs/alerts.md)."""
