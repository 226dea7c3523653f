"""The shape of a contract version: which fields, in which order, repeated or not, codes or values.

Read once per contract from its schema (xmlschema introspection for XSD, a walk of the JSON Schema)
and cached, so adapters can write and read any version's structure, and the translator can tell which
canonical fields a version cannot carry. Paths use the canonical snake_case names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import xmlschema

SKIP = {"nachrichtenkopf"}


@dataclass(frozen=True)
class Node:
    """One element of an XML contract: its local name, cardinality, and either a code or children."""

    name: str
    many: bool
    children: tuple[Node, ...] | None = None  # None: a simple value
    code: tuple[str, str] | None = None  # (listURI, listVersionID) of a code type


def _code(xsd_type: Any) -> tuple[str, str] | None:
    attrs = getattr(xsd_type, "attributes", None)
    if not attrs or "listURI" not in attrs or "listVersionID" not in attrs:
        return None
    return attrs["listURI"].fixed or "", attrs["listVersionID"].fixed or ""


def _nodes(xsd_type: Any, depth: int = 0) -> tuple[Node, ...]:
    out = []
    for el in xsd_type.content.iter_elements():
        if el.local_name in SKIP:
            continue
        many = el.max_occurs is None or el.max_occurs > 1
        code = _code(el.type) if el.type.is_complex() else None
        children = None
        if el.type.is_complex() and code is None and depth < 12:
            children = _nodes(el.type, depth + 1)
        out.append(Node(el.local_name, many, children, code))
    return tuple(out)


@lru_cache(maxsize=None)
def xsd_shape(schema_path: Path, root_name: str) -> tuple[Node, ...]:
    schema = xmlschema.XMLSchema(str(schema_path), allow="local")
    root = next(e for e in schema.elements.values() if e.local_name == root_name)
    return _nodes(root.type)


def xml_paths(nodes: tuple[Node, ...], names_inv: dict[str, str], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for node in nodes:
        path = prefix + names_inv.get(node.name, node.name)
        paths.add(path)
        if node.children:
            paths |= xml_paths(node.children, names_inv, path + ".")
    return paths


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def _json_walk(schema: dict[str, Any], root: dict[str, Any], prefix: str, out: set[str], depth: int = 0) -> None:
    if depth > 12:
        return
    if "$ref" in schema:
        ref = schema["$ref"].removeprefix("#/")
        target = root
        for part in ref.split("/"):
            target = target[part]
        schema = target
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        _json_walk(schema["items"], root, prefix, out, depth + 1)
        return
    for name, sub in (schema.get("properties") or {}).items():
        path = prefix + snake(name)
        out.add(path)
        if isinstance(sub, dict):
            _json_walk(sub, root, path + ".", out, depth + 1)


@lru_cache(maxsize=None)
def json_paths(schema_path: Path) -> frozenset[str]:
    """Canonical paths a JSON contract version can carry in its body."""
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    body = schema["properties"]["body"]
    out: set[str] = set()
    _json_walk(body, schema, "", out)
    return frozenset(out)
