"""Field tables from JSON Schema: the properties walked with local ``$ref`` followed.

Why a module of its own: JSON Schema names fields by JSON pointer, marks them required on the
parent, composes with ``allOf``/``anyOf``/``oneOf`` and can be recursive; a code list is found by
the ``urn:`` its description names or by an enumeration that is exactly one list's codes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hub.interface.docs.codelists import CodeLists
from hub.interface.docs.tables import FieldRow, FieldTable
from hub.schemas.codelists import CodeList

_URN = re.compile(r"urn:[A-Za-z0-9:._-]+")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {str: "string", float: "number", list: "array", dict: "object", type(None): "null"}.get(type(value), "")


def _escape_pointer(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


class _JsonWalker:
    def __init__(self, root: dict[str, Any], codelists: CodeLists) -> None:
        self.root = root
        self.codelists = codelists
        self.rows: list[FieldRow] = []

    def resolve(self, node: Any, refs: tuple[str, ...]) -> tuple[dict[str, Any], str | None, tuple[str, ...]]:
        """Follow a local $ref (siblings kept, as in 2020-12). Returns node, the def's name, refs seen."""
        if not isinstance(node, dict) or "$ref" not in node:
            return (node if isinstance(node, dict) else {}), None, refs
        ref = node["$ref"]
        if not ref.startswith("#") or ref in refs:
            return {k: v for k, v in node.items() if k != "$ref"}, ref, refs
        target: Any = self.root
        for part in ref[1:].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part, {}) if isinstance(target, dict) else {}
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        inner, _, seen = self.resolve(merged, refs + (ref,))
        return inner, ref.rsplit("/", 1)[-1], seen

    def properties(self, node: dict[str, Any], pointer: str, depth: int, refs: tuple[str, ...]) -> None:
        node, _, refs = self.resolve(node, refs)
        required = set(node.get("required", ()))
        for name, child in (node.get("properties") or {}).items():
            self.property(child, f"{pointer}/{_escape_pointer(name)}", name, depth, name in required, refs)
        for branch_key in ("allOf", "anyOf", "oneOf"):
            for i, branch in enumerate(node.get(branch_key) or []):
                if isinstance(branch, dict):
                    self.properties(branch, pointer, depth, refs)
        items = node.get("items")
        if isinstance(items, dict):
            self.property(items, f"{pointer}/*", "*", depth, None, refs)

    def property(
        self, raw: Any, pointer: str, name: str, depth: int, required: bool | None, refs: tuple[str, ...]
    ) -> None:
        node, ref_name, inner_refs = self.resolve(raw, refs)
        if isinstance(raw, dict) and raw.get("$ref") in refs:
            row = FieldRow(pointer, name, depth, kind="property", type=ref_name or "", required=required)
            row.constraints.append(("rekursiv, siehe oben", raw["$ref"]))
            self.rows.append(row)
            return
        types = node.get("type")
        label = " | ".join(types) if isinstance(types, list) else (types or "")
        if not label and "const" in node:
            label = _json_type(node["const"]) + " (Konstante)"
        for branch_key in ("oneOf", "anyOf"):
            if branch_key in node and not label:
                label = branch_key
        if ref_name:
            label = f"{label} ({ref_name})" if label else ref_name
        row = FieldRow(pointer, name, depth, kind="property", type=label, required=required, doc=str(node.get("description", "")))
        c = row.constraints
        if "const" in node:
            c.append(("fester Wert", json.dumps(node["const"], ensure_ascii=False)))
        if "format" in node:
            c.append(("Format", str(node["format"])))
        if "pattern" in node:
            c.append(("Muster", str(node["pattern"])))
        for key, label_ in (
            ("minLength", "min. Länge"),
            ("maxLength", "max. Länge"),
            ("minimum", "≥"),
            ("maximum", "≤"),
            ("exclusiveMinimum", ">"),
            ("exclusiveMaximum", "<"),
            ("multipleOf", "Vielfaches von"),
            ("minItems", "min. Einträge"),
            ("maxItems", "max. Einträge"),
            ("minProperties", "min. Felder"),
            ("maxProperties", "max. Felder"),
        ):
            if key in node:
                c.append((label_, json.dumps(node[key])))
        if node.get("uniqueItems"):
            c.append(("Einträge eindeutig", ""))
        if node.get("additionalProperties") is False:
            c.append(("keine weiteren Felder", ""))
        if "default" in node:
            c.append(("Vorgabe", json.dumps(node["default"], ensure_ascii=False)))
        if node.get("deprecated"):
            c.append(("veraltet (deprecated)", ""))
        if "enum" in node:
            values = [v if isinstance(v, str) else json.dumps(v) for v in node["enum"]]
            urns = _URN.findall(row.doc)
            row.codelist = self.codelists.ref(urns[0] if urns else None, None, values)
            row.enum = self.codelists.meanings(row.codelist, values)
        self.rows.append(row)
        self.properties(node, pointer, depth + 1, inner_refs)


def json_field_table(schema_path: Path, codelists: dict[str, CodeList]) -> FieldTable:
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    table = FieldTable(format="provider-json", kind="json", root=str(schema.get("title", "")), doc=str(schema.get("description", "")))
    walker = _JsonWalker(schema, CodeLists(codelists))
    walker.properties(schema, "", 0, ())
    table.rows = walker.rows
    return table
