"""Transports by URL: `embedded` (database-backed queue) or `amqp://...` (RabbitMQ)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from hub.config import Settings
from hub.transport.base import PIPELINE, Item, Transport
from hub.transport.embedded import EmbeddedTransport

__all__ = ["PIPELINE", "Item", "Transport", "create_transport"]


def create_transport(settings: Settings, engine: Engine) -> Transport:
    options = dict(
        visibility_timeout=settings.visibility_timeout,
        max_attempts=settings.max_attempts,
        poll_interval=settings.poll_interval,
    )
    if settings.broker_url == "embedded":
        transport = EmbeddedTransport(engine, **options)
        transport.commit_every = max(1, settings.embedded_commit_every)
        transport.speculate = settings.embedded_speculate
        return transport
    if settings.broker_url.startswith(("amqp://", "amqps://")):
        from hub.transport.amqp import AmqpTransport  # pika only where it is used

        return AmqpTransport(
            engine, settings.broker_url, prefix=settings.amqp_prefix, prefetch=settings.amqp_prefetch, relay_batch=settings.relay_batch, **options
        )
    raise ValueError(f"HUB_BROKER_URL must be 'embedded' or an amqp:// URL, not {settings.broker_url!r}")
