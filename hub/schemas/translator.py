"""Message translator between contract versions (EIP: Message Translator), driven by data.

Each version of a message type declares in its contract.yaml how its body maps onto the canonical
model: `moves` (version path -> canonical path, for restructured content) and `fill` (values a version
requires but the canonical message may lack, e.g. a country that older versions never carried).
Fields a version cannot carry are dropped on the way out, and the caller records which: the drop
policy is documented and visible in the message history, never silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_MISSING = object()


@dataclass(frozen=True)
class VersionMap:
    moves: dict[str, str] = field(default_factory=dict)
    fill: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: dict[str, Any] | None) -> VersionMap:
        data = data or {}
        return cls(moves=dict(data.get("moves") or {}), fill=dict(data.get("fill") or {}))


def _pop(data: dict[str, Any], path: str) -> Any:
    *parents, leaf = path.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return _MISSING
    if not isinstance(node, dict):
        return _MISSING
    return node.pop(leaf, _MISSING)


def _get(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def get_path(data: dict[str, Any], path: str) -> Any:
    """The value at a dotted path, or None."""
    value = _get(data, path)
    return None if value is _MISSING else value


def put_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path, creating the dicts on the way."""
    _put(data, path, value)


def _put(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _prune_empty(data: dict[str, Any]) -> None:
    for key in [k for k, v in data.items() if isinstance(v, dict)]:
        _prune_empty(data[key])
        if not data[key]:
            del data[key]


def to_canonical(body: dict[str, Any], vmap: VersionMap) -> dict[str, Any]:
    """A body read in a version's structure, moved into the canonical structure."""
    for version_path, canonical_path in vmap.moves.items():
        value = _pop(body, version_path)
        if value is not _MISSING:
            _put(body, canonical_path, value)
    _prune_empty(body)
    return body


def from_canonical(body: dict[str, Any], vmap: VersionMap, allowed: set[str] | frozenset[str]) -> tuple[dict[str, Any], list[str]]:
    """A canonical body in a version's structure, and the canonical fields that version cannot carry."""
    dropped: list[str] = []
    for version_path, canonical_path in vmap.moves.items():
        value = _pop(body, canonical_path)
        if value is not _MISSING:
            _put(body, version_path, value)
    for version_path, value in vmap.fill.items():
        parent = version_path.rpartition(".")[0]
        if _get(body, version_path) is _MISSING and (not parent or _get(body, parent) is not _MISSING):
            _put(body, version_path, value)
    _prune(body, allowed, "", dropped)
    _prune_empty(body)
    return body, dropped


def _prune(data: dict[str, Any], allowed: set[str] | frozenset[str], prefix: str, dropped: list[str]) -> None:
    for key in list(data):
        path = prefix + key
        if path not in allowed:
            del data[key]
            dropped.append(path)
            continue
        value = data[key]
        if isinstance(value, dict):
            _prune(value, allowed, path + ".", dropped)
        elif isinstance(value, list):
            before = len(dropped)
            for item in value:
                if isinstance(item, dict):
                    _prune(item, allowed, path + ".", dropped)
            if len(dropped) > before:  # report a list field once, not once per item
                dropped[before:] = sorted(set(dropped[before:]))
