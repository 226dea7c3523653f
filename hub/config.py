"""Settings from the environment (and a `.env` file), as named in the public surface.

One object, read once per process: the broker and the database are chosen by URL, and nothing else in
the code needs to know which one it runs on.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_log_format() -> str:
    return "console" if sys.stderr.isatty() else "json"


class Settings(BaseSettings):
    """Runtime configuration. Every field maps to `HUB_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="HUB_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///var/hub.db"
    broker_url: str = "embedded"
    contracts_dir: Path = Path("contracts")
    log_format: str = Field(default_factory=_default_log_format)
    log_level: str = "info"
    max_message_bytes: int = 5 * 1024 * 1024
    #: seconds the findings report of one failing validation may take; what it found by then is
    #: the answer (the verdict itself is linear in the message, in C)
    validation_seconds: float = 2.0
    #: drop directories of partners that exchange files (<partner>/in, <partner>/out)
    drop_dir: Path = Path("var/drop")
    #: seconds a consumed queue message stays invisible before it is delivered again (crash recovery)
    visibility_timeout: float = 30.0
    #: deliveries of one queue message before it goes to the dead letter channel
    max_attempts: int = 5
    #: how often an idle embedded consumer looks for new work, seconds
    poll_interval: float = 0.05
    #: fault injection for crash tests: seconds each pipeline step holds its transaction open (0 = off)
    fault_pipeline_delay: float = 0.0
    #: fault injection for crash tests: seconds the deadline scheduler holds a claimed breach's
    #: transaction open before it commits (0 = off)
    fault_scheduler_delay: float = 0.0
    #: seconds between two runs of the deadline scheduler in each pipeline worker (0 = never)
    deadline_interval: float = 60.0
    #: prefix of every exchange and queue the AMQP transport declares (several hubs share one vhost)
    amqp_prefix: str = "hub."
    #: messages a consumer may hold unacknowledged (and processes as one database transaction)
    amqp_prefetch: int = 64
    #: embedded queue: items the pipeline processes per transaction. More is faster (fewer commits);
    #: on SQLite it also holds the single write lock longer, which accepts wait for
    embedded_commit_every: int = 16
    #: embedded queue on SQLite: process a batch outside the write lock first, then check and write
    #: under it (accepts no longer wait for the pipeline's work); false: all of it under the lock
    embedded_speculate: bool = True
    #: outbox rows the relay publishes per confirm window
    relay_batch: int = 500
    #: RabbitMQ management HTTP API for `hub partners amqp-setup` (default: the broker's host, port 15672)
    amqp_management_url: str | None = None
    #: seconds a verified bearer token is remembered per process (a revocation takes effect within this)
    token_cache_seconds: float = 2.0
    #: run `db upgrade` when a process starts (the embedded default wants it; production may not)
    auto_migrate: bool = True
    #: seconds `hub serve` and `hub worker` may take to stop after SIGTERM/SIGINT: in-flight requests
    #: get most of it to finish, worker threads the rest; past it the process exits anyway (logged)
    shutdown_timeout: float = 30.0
    #: seconds between two evaluations of the alerts (contracts/alerts.yaml) in each pipeline worker (0 = never)
    alert_interval: float = 30.0
    #: seconds before a notification that could not be sent is tried again (doubled per attempt, at most 10 min)
    alert_retry_seconds: float = 5.0
    #: fault injection for crash tests: seconds between sending a notification and recording it sent (0 = off)
    fault_alert_delay: float = 0.0
    #: the mail server alerts are sent through: smtp://host:port, smtp+starttls://..., smtps://...
    #: (user:password@ in the URL where the server wants a login); unset: no mail is sent
    smtp_url: str | None = None
    #: the sender of alert mails
    alert_mail_from: str = "casechain-hub@localhost"
    #: where the console is reached (e.g. https://hub.example): the start of the links in notifications
    console_url: str = ""
    #: where set, /metrics wants `Authorization: Bearer <this token>`
    metrics_token: str | None = None
    #: seconds between the audit anchors the workers record (`hub audit anchor` on a timer; 0 = off)
    audit_anchor_seconds: float = 3600.0
    #: minutes a console session may stay unused before it ends
    console_idle_minutes: float = 30.0
    #: hours after which a console session ends however busy it is
    console_session_hours: float = 12.0
    #: failed sign-ins in a row that lock a console account, and for how many minutes
    console_lockout_failures: int = 5
    console_lockout_minutes: float = 15.0
    #: seconds between two roll-ups of the console's flow counters in each pipeline worker (0 = off)
    flow_rollup_seconds: float = 60.0


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()
