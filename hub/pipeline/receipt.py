"""The quittung (administration.quittung.0020) back to the sender, from a template per sender.

Every message the pipeline takes gets a quittung, so it is half of all deliveries; building,
encoding, re-parsing and validating each one took a fifth of a pipeline worker's time. Yet a
sender's quittungen differ only in five values: their own UUID and creation time, the UUID they
answer, when the hub received that message, and its hub id. So each (sender, format, version) gets a
template: a quittung with sentinel values, encoded by the sender's adapter and validated against the
sender's contract like any delivery, in which each value is later replaced by its real one.

A template is only used when it provably gives the bytes the full path gives: when it is built, a
second quittung with other values is encoded the full way and must equal the substituted template
byte for byte; each sentinel must occur exactly once. Otherwise (a format that reshapes a value,
escapes it, or writes it twice) the full path is used for that sender, always.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.canonical import Message

if TYPE_CHECKING:
    from hub.partners import Partner
    from hub.runtime import Hub

MESSAGE_TYPE = "administration.quittung.0020"
HUB_PARTY = {"id": "hub", "name": "CaseChain Hub"}

#: how a value may be written: the renderings a format may use for it (the first that occurs wins)
_RENDERINGS: dict[str, tuple[Callable[[Any], str], ...]] = {
    "uuid": (str,),
    "datetime": (lambda v: v.isoformat(), lambda v: v.isoformat().replace("+00:00", "Z")),
    "text": (str,),
}
_KINDS = {"message_uuid": "uuid", "created_at": "datetime", "reference_uuid": "uuid", "received_at": "datetime", "hub_id": "text"}


def _sentinels(n: int, microsecond: int) -> dict[str, Any]:
    """Values no real quittung has and no two sentinel sets share (a hub id sorts in the year 10889)."""
    at = dt.datetime(2001, 2, 3, 4, 5, 6, microsecond, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=n)
    return {
        "message_uuid": uuid.UUID(f"00000000-0000-4000-8000-{n:06d}00aa01"),
        "created_at": at,
        "reference_uuid": uuid.UUID(f"00000000-0000-4000-8000-{n:06d}00aa02"),
        "received_at": at + dt.timedelta(days=1),
        "hub_id": f"7ZZZZZZZZZ{n:016d}",
    }


def answer_header(
    sender: Partner, message_type: str, version: str, message_uuid: Any, created_at: dt.datetime, reference_uuid: Any, test: bool = False
) -> dict[str, Any]:
    """The header of an answer from the hub to a sender (quittung, rueckweisung); the answer to a test
    message is a test message too."""
    return {
        "test": bool(test),
        "message_uuid": str(message_uuid),
        "message_type": message_type,
        "created_at": created_at.isoformat(),
        "author": HUB_PARTY,
        "reader": {"id": sender.id, "name": sender.name},
        "reference_uuid": str(reference_uuid),
        "purpose": "administration",
        "legal_basis": "§ 80 SGB X",
        "version": version,
    }


def message(sender: Partner, version: str, values: dict[str, Any]) -> Message:
    """The quittung as a canonical message (the full path)."""
    header = answer_header(sender, MESSAGE_TYPE, version, values["message_uuid"], values["created_at"], values["reference_uuid"], values.get("test", False))
    return Message.build(header, {"received_at": values["received_at"].isoformat(), "hub_id": values["hub_id"]})


@dataclass(frozen=True)
class Template:
    """Encoded quittung split at its values: parts[0] + value + parts[1] + value ..."""

    parts: tuple[bytes, ...]
    order: tuple[tuple[str, Callable[[Any], str]], ...]  # (field, rendering) between the parts

    def fill(self, values: dict[str, Any]) -> bytes:
        out = [self.parts[0]]
        for (field, render), part in zip(self.order, self.parts[1:]):
            out.append(render(values[field]).encode("utf-8"))
            out.append(part)
        return b"".join(out)


def encode_full(hub: Hub, sender: Partner, version: str, values: dict[str, Any]) -> bytes:
    """Encode and check a quittung the way every delivery is (hub.pipeline.write_delivery)."""
    return hub.adapter(sender.format).encode_checked(message(sender, version, values), version, sender.id)[0]


def build(hub: Hub, sender: Partner, version: str, test: bool = False) -> Template | None:
    """The sender's template, or None where substitution would not give the full path's bytes
    (checked on a second quittung whose times have no fraction of a second: some renderings drop it)."""
    first, second = _sentinels(1, 700001), _sentinels(2, 0)
    data = encode_full(hub, sender, version, {**first, "test": test})
    located: list[tuple[int, str, Callable[[Any], str], bytes]] = []
    for field, value in first.items():
        for render in _RENDERINGS[_KINDS[field]]:
            token = render(value).encode("utf-8")
            if data.count(token) == 1:
                located.append((data.index(token), field, render, token))
                break
        else:
            return None
    located.sort()
    parts, at = [], 0
    for start, _, _, token in located:
        if start < at:
            return None  # overlapping values
        parts.append(data[at:start])
        at = start + len(token)
    parts.append(data[at:])
    template = Template(tuple(parts), tuple((field, render) for _, field, render, _ in located))
    if template.fill(second) != encode_full(hub, sender, version, {**second, "test": test}):
        return None
    return template


class Receipts:
    """The templates of one hub, built on first use per (sender, name, format, version)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._templates: dict[tuple[str, str, str, str, bool], Template | None] = {}

    def encode(self, sender: Partner, version: str, values: dict[str, Any], test: bool = False) -> bytes:
        key = (sender.id, sender.name, sender.format, version, bool(test))
        if key not in self._templates:
            self._templates[key] = build(self.hub, sender, version, bool(test))
        template = self._templates[key]
        return template.fill(values) if template is not None else encode_full(self.hub, sender, version, {**values, "test": bool(test)})
