"""Provider JSON: `{"header": {...}, "body": {...}}` with the canonical model's camelCase names.

The simplest adapter on purpose: small provider web apps should be able to produce it by hand.
Agency identifiers are not in the provider contracts, so they can never be written here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pydantic.alias_generators import to_camel

from hub.adapters.base import Adapter, wide_unicode
from hub.canonical import Header
from hub.findings import MAX_FINDINGS, Finding, Refusal, undecodable
from hub.schemas.registry import Contract
from hub.schemas.shape import json_paths, snake


#: nesting a message may have; the contracts need fewer than 10 levels. Deeper documents are refused
#: before anything recurses over them (the JSON decoder, schema validation, renaming)
MAX_DEPTH = 64


class _DuplicateName(Exception):
    """An object of the document has a member name twice (raised by `_unique_object`)."""


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook: the object as a dict, or _DuplicateName if a name repeats.

    RFC 8259 only says names SHOULD be unique; parsers differ on which value wins (Python's the last,
    others the first or an error), so a message the hub and a partner's system would read differently
    is refused. Counting after building the dict keeps the common case at C speed."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateName
    return obj


class _Pairs(list):
    """An object as parsed, member pairs in order, repeats kept (to locate the repeated names)."""


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _duplicate_findings(text: str) -> list[Finding]:
    """Every repeated member name of `text` with its JSON pointer, in document order (error path only)."""
    try:
        doc = json.loads(text, object_pairs_hook=_Pairs, parse_constant=_no_constant)
    except RecursionError:
        raise _too_deep() from None
    findings: list[Finding] = []
    stack: list[tuple[str, Any]] = [("", doc)]
    while stack and len(findings) < MAX_FINDINGS:
        at, value = stack.pop()
        children: list[tuple[str, Any]] = []
        if isinstance(value, _Pairs):
            seen: set[str] = set()
            for name, item in value:
                if name in seen:
                    findings.append(Finding(f"the member name {name!r} appears more than once in this object", pointer=f"{at}/{_escape(name)}"))
                seen.add(name)
                children.append((f"{at}/{_escape(name)}", item))
        elif isinstance(value, list):
            children = [(f"{at}/{i}", item) for i, item in enumerate(value)]
        stack.extend(reversed(children))
    return findings


def parse_json(data: bytes) -> Any:
    """Strict JSON: UTF-8 only (RFC 8259), no NaN or Infinity, every member name once per object,
    at most MAX_DEPTH levels deep."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        _refuse_wide_unicode(data)
        raise Refusal("bad-encoding", "JSON must be encoded as UTF-8", [undecodable(exc, "UTF-8", data)]) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        doc = json.loads(text, object_pairs_hook=_unique_object, parse_constant=_no_constant)
    except _DuplicateName:
        raise Refusal(
            "schema-invalid",
            "The JSON has a member name twice in one object; systems differ on which value counts, so the hub takes neither",
            _duplicate_findings(text),
        ) from None
    except json.JSONDecodeError as exc:
        _refuse_wide_unicode(data)  # ASCII in UTF-16 is valid UTF-8, with a NUL after every letter
        raise Refusal(
            "malformed", "The JSON is not well-formed", [Finding(exc.msg, line=exc.lineno, column=exc.colno)]
        ) from None
    except ValueError as exc:
        raise Refusal("malformed", "The JSON is not well-formed", [Finding(str(exc))]) from None
    except RecursionError:
        raise _too_deep() from None
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and _deeper_than(doc, MAX_DEPTH):  # counting is cheaper
        raise _too_deep()
    return doc


def _refuse_wide_unicode(data: bytes) -> None:
    """On the error path: name UTF-16 or UTF-32, rather than report the byte or the syntax it breaks."""
    width = wide_unicode(data)
    if width is not None:
        raise Refusal("bad-encoding", f"{width} is not accepted; JSON must be encoded as UTF-8")


def _too_deep() -> Refusal:
    return Refusal("malformed", f"The JSON is nested more than {MAX_DEPTH} levels deep", [Finding(f"more than {MAX_DEPTH} levels of arrays and objects")])


def _deeper_than(doc: Any, limit: int) -> bool:
    """True if arrays and objects nest more than `limit` levels (level by level: no recursion)."""
    level = [doc] if isinstance(doc, (dict, list)) else []
    for _ in range(limit):
        if not level:
            return False
        level = [c for v in level for c in (v.values() if isinstance(v, dict) else v) if isinstance(c, (dict, list))]
    return bool(level)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _rename(value: Any, rename: Any) -> Any:
    if isinstance(value, dict):
        return {rename(k): _rename(v, rename) for k, v in value.items()}
    if isinstance(value, list):
        return [_rename(v, rename) for v in value]
    return value


def _require_text(header: dict[str, Any], names: tuple[str, ...]) -> None:
    """The header fields that pick the contract must be strings: a list or an object names no contract."""
    findings = [
        Finding(f"{name} must be a string, not {type(header[name]).__name__ if header[name] is not None else 'null'}", pointer=f"/header/{name}")
        for name in names
        if name in header and not isinstance(header[name], str)
    ]
    if findings:
        raise Refusal("missing-header", "The header does not name a message type and version as strings", findings)


def _strings(value: Any, pointer: str, field: str) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(canonical field name, {"pointer": ...}, text) of every string in a JSON document, keys too."""
    if isinstance(value, str):
        yield field, {"pointer": pointer or "/"}, value
    elif isinstance(value, dict):
        for key, item in value.items():
            at = f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}"
            yield snake(key), {"pointer": at}, key
            yield from _strings(item, at, snake(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{pointer}/{i}", field)


class ProviderJsonAdapter(Adapter):
    format = "provider-json"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head[:1] in (b"{", b"[")

    def pointer(self, path: str) -> str | None:
        return "/body/" + "/".join(to_camel(part) for part in path.split("."))

    def parse(self, data: bytes) -> Any:
        return parse_json(data)

    def paths(self, contract: Contract) -> frozenset[str]:
        return json_paths(contract.schema_path)

    def peek_header(self, data: bytes, doc: Any = None) -> dict[str, Any]:
        doc = self.parse(data) if doc is None else doc
        header = doc.get("header") if isinstance(doc, dict) else None
        if not isinstance(header, dict):
            raise Refusal("missing-header", "The message has no header object", [Finding("header missing", pointer="/header")])
        _require_text(header, ("messageType", "version"))
        author, reader = header.get("author"), header.get("reader")
        return {
            "message_type": header.get("messageType"),
            "version": header.get("version"),
            "sender": author.get("id") if isinstance(author, dict) else None,
            "reader": reader.get("id") if isinstance(reader, dict) else None,
            "reader_at": {"pointer": "/header/reader/id"},
            "message_uuid": header.get("messageUuid"),
            "reference_uuid": header.get("referenceUuid"),
            "test": header.get("test") is True,
        }

    def read(self, data: bytes, doc: Any, contract: Contract) -> tuple[dict[str, Any], dict[str, Any]]:
        return _rename(doc["header"], snake), _rename(doc.get("body", {}), snake)

    def texts(self, data: bytes, doc: Any, contract: Contract, every: bool) -> Iterator[tuple[str, dict[str, Any], str]]:
        """Strings (names and values) with their JSON pointers. The decoder refuses raw control
        characters, so without `every` only a body with a \\u escape or a raw U+FFFE/U+FFFF is walked."""
        if every or b"\\u" in data or b"\xef\xbf\xbe" in data or b"\xef\xbf\xbf" in data:
            yield from _strings(doc, "", "")

    def write(self, header: Header, body: dict[str, Any], contract: Contract) -> bytes:
        doc = {"header": header.model_dump(mode="json", by_alias=True, exclude_none=True), "body": _rename(body, to_camel)}
        return json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8")
