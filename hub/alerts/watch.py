"""The alerts in the worker: every HUB_ALERT_INTERVAL seconds, evaluate, record, notify.

Runs in every pipeline worker (`hub serve`, `hub worker`) beside the deadline scheduler, in a
thread of its own: a slow mail server never holds up a deadline or a message. Any number of workers
may run it; each instance is notified once (hub.alerts.firing, hub.alerts.notifier).
"""

from __future__ import annotations

import threading

import structlog

from hub.alerts.firing import record, rules_of
from hub.alerts.notifier import Notifier
from hub.runtime import Hub

log = structlog.get_logger("hub.alerts")


class AlertWatch:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.notifier = Notifier(hub)
        for channel in rules_of(hub).channels.values():  # said once at start, not with every failed send
            if channel.kind == "mail" and not hub.settings.smtp_url:
                log.warning("alert.channel_unusable: HUB_SMTP_URL is not set", channel=channel.name)
            elif channel.kind == "webhook" and not (channel.url() and channel.secret()):
                log.warning("alert.channel_unusable: its webhook variables are not set", channel=channel.name, url=channel.url_env, secret=channel.secret_env)

    def sweep(self) -> tuple[int, int]:
        """One round: (instances this worker claimed, notifications it sent)."""
        return record(self.hub), self.notifier.deliver()

    def run(self, stop: threading.Event) -> None:
        """Sweep every `alert_interval` seconds until `stop`; a failed round is logged and retried."""
        while not stop.is_set():
            try:
                self.sweep()
            except Exception as exc:  # noqa: BLE001 - an outage must not end the worker thread
                log.warning("alert.sweep_failed", error=repr(exc))
            stop.wait(self.hub.settings.alert_interval)
