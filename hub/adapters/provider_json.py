"""Provider JSON: `{"header": {...}, "body": {...}}` with the canonical model's camelCase names.

The simplest adapter on purpose: small provider web apps should be able to produce it by hand.
Agency identifiers are excluded by the format (contracts/formats/provider-json.yaml).
"""

from __future__ import annotations

import json
from typing import Any

from hub.adapters.base import Adapter
from hub.canonical import BODY_TYPES, Header, Message
from hub.findings import Finding, Refusal


def parse_json(data: bytes) -> Any:
    """Strict JSON: UTF-8 only (RFC 8259), no BOM games, no NaN."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal(
            "bad-encoding", "JSON must be encoded as UTF-8", [Finding(f"byte {exc.start}: {exc.reason}")]
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise Refusal(
            "malformed", "The JSON is not well-formed", [Finding(exc.msg, line=exc.lineno, column=exc.colno)]
        ) from None
    except ValueError as exc:
        raise Refusal("malformed", "The JSON is not well-formed", [Finding(str(exc))]) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class ProviderJsonAdapter(Adapter):
    format = "provider-json"
    media_type = "application/json"

    def parse(self, data: bytes) -> Any:
        return parse_json(data)

    def peek_header(self, data: bytes, doc: Any = None) -> dict[str, Any]:
        doc = self.parse(data) if doc is None else doc
        header = doc.get("header") if isinstance(doc, dict) else None
        if not isinstance(header, dict):
            raise Refusal("missing-header", "The message has no header object", [Finding("header missing", pointer="/header")])
        author = header.get("author")
        return {
            "message_type": header.get("messageType"),
            "version": header.get("version"),
            "sender": author.get("id") if isinstance(author, dict) else None,
            "message_uuid": header.get("messageUuid"),
            "reference_uuid": header.get("referenceUuid"),
        }

    def decode(self, data: bytes, doc: Any = None) -> Message:
        doc = self.parse(data) if doc is None else doc
        header = Header.model_validate(doc["header"])
        body_type = BODY_TYPES[header.message_type]
        body = body_type.model_validate(doc.get("body", {}))
        return Message(header=header, body=body)

    def encode(self, message: Message) -> bytes:
        body = message.body.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=set(self.exclude) or None)
        doc = {"header": message.header.model_dump(mode="json", by_alias=True, exclude_none=True), "body": body}
        return json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8")
