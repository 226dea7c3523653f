"""The typed context a message carries through the stages, and what a stage may raise besides `Refusal`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from hub.canonical import Message
from hub.chain.membership import Case
from hub.partners import Partner
from hub.routing.rules import Route
from hub.runtime import Hub


@dataclass
class Recipient:
    partner: Partner
    route: Route


@dataclass
class Context:
    """Everything the stages learn about one message, field by field (no string-keyed memo)."""

    row: Any
    sender: Partner
    message: Message | None = None
    routes: list[Route] = field(default_factory=list)
    case: Case | None = None
    person_id: str | None = None
    #: the person's data as the sender gave it (for the recipient's pseudonym record)
    person_data: dict[str, Any] | None = None
    recipients: list[Recipient] = field(default_factory=list)
    #: deliveries this message already has, (recipient, message type) -> id: only after a replay
    existing: dict[tuple[str, str], str] = field(default_factory=dict)
    #: the deliveries written or found for this message, (id, recipient)
    written: list[tuple[str, str]] = field(default_factory=list)


#: a stage does one job on the context; it refuses the message by raising `Refusal`
Stage = Callable[[Hub, Connection, Context], None]


class Duplicate(Exception):
    """The report was received before under another message id (or from another system)."""

    def __init__(self, first: str) -> None:
        super().__init__(first)
        self.first = first


def case_ref(message: Message) -> str | None:
    """The sender's own reference for the case a message concerns."""
    return getattr(message.body, "case_id", None) or getattr(message.body, "customer_number", None)
