"""Field tables from XSD: the root element's content model walked through xmlschema introspection.

Why a module of its own: XSD has its own notions a reader must see (occurrences, choices, xs:any,
attributes, facets on derived simple types, XÖV code types with a fixed ``listURI``), all read from
the schema file the hub validates against, never from a hand-written description that could drift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xmlschema

from hub.interface.docs.codelists import CodeLists
from hub.interface.docs.tables import FieldRow, FieldTable
from hub.schemas.codelists import CodeList

XSD_NS = "http://www.w3.org/2001/XMLSchema"


def _text(annotation: Any) -> str:
    """The documentation text of an xmlschema annotation (several xs:documentation joined)."""
    if annotation is None:
        return ""
    docs = getattr(annotation, "documentation", None)
    if docs:
        return " ".join(" ".join((d.text or "").split()) for d in docs).strip()
    return " ".join(str(annotation).split())


def _occurs(lo: int | None, hi: int | None) -> str:
    return f"{lo if lo is not None else 1}..{'*' if hi is None else hi}"


def _is_builtin(t: Any) -> bool:
    return bool(t.name) and t.target_namespace == XSD_NS


def _type_label(t: Any) -> str:
    if t.name:
        return t.prefixed_name or t.local_name
    if t.is_simple():
        if t.is_list():
            return f"Liste von {_type_label(t.item_type)}"
        if t.is_union():
            return "Vereinigung von " + ", ".join(_type_label(m) for m in t.member_types)
        base = getattr(t, "base_type", None)
        return _type_label(base) if base is not None else "anySimpleType"
    if t.has_simple_content():
        return f"{_type_label(t.content)} mit Attributen"
    return "komplex"


def _simple_facets(t: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Constraints and enumeration (value, annotation) of a simple type, most derived first."""
    constraints: list[tuple[str, str]] = []
    enum: list[tuple[str, str]] = []
    seen: set[str] = set()
    cur = t
    while cur is not None and cur.is_simple() and not _is_builtin(cur):
        facets = getattr(cur, "facets", None) or {}
        for tag, facet in facets.items():
            local = (tag or "").rpartition("}")[2]
            if local == "pattern":
                for p in getattr(facet, "regexps", None) or []:
                    constraints.append(("Muster", p))
            elif local == "enumeration":
                if "enumeration" not in seen:
                    for i, value in enumerate(facet.enumeration):
                        enum.append((str(value), _text(facet.get_annotation(i))))
            elif local == "whiteSpace" or local in seen or local is None:
                continue
            elif local == "assertion":
                constraints.append(("Zusicherung", getattr(facet, "path", "")))
            else:
                value = getattr(facet, "value", None)
                label = {
                    "length": "Länge",
                    "minLength": "min. Länge",
                    "maxLength": "max. Länge",
                    "minInclusive": "≥",
                    "maxInclusive": "≤",
                    "minExclusive": ">",
                    "maxExclusive": "<",
                    "totalDigits": "Stellen gesamt",
                    "fractionDigits": "Nachkommastellen",
                }.get(local, local)
                constraints.append((label, str(value)))
            seen.add(local)
        if cur.is_list() or cur.is_union():
            break
        cur = getattr(cur, "base_type", None)
    return constraints, enum


def _codelist_type(t: Any) -> tuple[str, str | None] | None:
    """(listURI, listVersionID) of an XÖV-style code type: fixed listURI attribute on a complex type."""
    if t.is_simple():
        return None
    attrs = getattr(t, "attributes", None) or {}
    uri = attrs.get("listURI")
    if uri is None or uri.fixed is None:
        return None
    version = attrs.get("listVersionID")
    return uri.fixed, (version.fixed if version is not None else None)


def _code_values(t: Any) -> tuple[list[str], list[str]]:
    """Enumerated values (and their annotations) of the `code` child of a code type."""
    content = getattr(t, "content", None)
    for item in content.iter_elements() if content is not None and hasattr(content, "iter_elements") else ():
        if item.local_name == "code" and item.type.is_simple():
            _, enum = _simple_facets(item.type)
            return [v for v, _ in enum], [d for _, d in enum]
    return [], []


class _XsdWalker:
    def __init__(self, codelists: CodeLists) -> None:
        self.codelists = codelists
        self.rows: list[FieldRow] = []

    def element(
        self, el: Any, path: str, depth: int, stack: tuple[Any, ...], note: str | None = None, is_root: bool = False
    ) -> None:
        """One row for `el`, then its content; paths below the root element are relative to it."""
        t = el.type
        inner = "" if is_root else path
        row = FieldRow(
            path=path,
            name=el.local_name,
            depth=depth,
            type=_type_label(t),
            cardinality=_occurs(el.min_occurs, el.max_occurs),
            doc=_text(el.annotation) or (_text(t.annotation) if t.name and not _is_builtin(t) else ""),
        )
        if note:
            row.constraints.append((note, ""))
        if el.fixed is not None:
            row.constraints.append(("fester Wert", str(el.fixed)))
        if el.default is not None:
            row.constraints.append(("Vorgabe", str(el.default)))
        if getattr(el, "nillable", False):
            row.constraints.append(("nillable", "true"))
        self.rows.append(row)

        code = _codelist_type(t)
        if code is not None:
            values, docs = _code_values(t)
            row.codelist = self.codelists.ref(code[0], code[1], values)
            meanings = dict(self.codelists.meanings(row.codelist, values))
            row.enum = [(v, d or meanings.get(v, "")) for v, d in zip(values, docs)]
            return
        if t.is_simple():
            row.constraints[:0], row.enum = _simple_facets(t)
            if row.enum:
                row.codelist = self.codelists.ref(None, None, [v for v, _ in row.enum])
                if row.codelist is not None:
                    meanings = dict(self.codelists.meanings(row.codelist, [v for v, _ in row.enum]))
                    row.enum = [(v, d or meanings.get(v, "")) for v, d in row.enum]
            return
        if any(t is s for s in stack):
            row.constraints.append(("rekursiv, siehe oben", t.prefixed_name or ""))
            return
        if t.has_simple_content():
            constraints, row.enum = _simple_facets(t.content)
            row.constraints[:0] = constraints
        elif t.content is not None and hasattr(t.content, "iter_elements"):
            self.group(t.content, inner, depth + 1, stack + (t,))
        self.attributes(t, inner, depth + 1)

    def group(self, group: Any, path: str, depth: int, stack: tuple[Any, ...], note: str | None = None) -> None:
        if group.model == "choice":
            note = f"Auswahl (choice) {_occurs(group.min_occurs, group.max_occurs)}"
        elif (group.min_occurs, group.max_occurs) != (1, 1):
            note = f"in Gruppe {_occurs(group.min_occurs, group.max_occurs)}"
        for item in group:
            if hasattr(item, "model"):  # nested xs:sequence / xs:choice / xs:all / group ref
                self.group(item, path, depth, stack, note)
            elif hasattr(item, "namespace") and not hasattr(item, "type"):  # xs:any
                ns = " ".join(item.namespace) if isinstance(item.namespace, (list, tuple)) else str(item.namespace)
                self.rows.append(
                    FieldRow(
                        path=f"{path}/*" if path else "*",
                        name="*",
                        depth=depth,
                        kind="any",
                        type="beliebiges Element (xs:any)",
                        cardinality=_occurs(item.min_occurs, item.max_occurs),
                        constraints=[("Namensraum", ns), ("processContents", str(item.process_contents))],
                    )
                )
            else:
                self.element(item, f"{path}/{item.local_name}" if path else item.local_name, depth, stack, note)

    def attributes(self, t: Any, path: str, depth: int) -> None:
        for name, attr in (getattr(t, "attributes", None) or {}).items():
            if name is None or not hasattr(attr, "use"):  # xs:anyAttribute
                continue
            local = attr.local_name
            row = FieldRow(
                path=f"{path}/@{local}" if path else f"@{local}",
                name=f"@{local}",
                depth=depth,
                kind="attribute",
                type=_type_label(attr.type),
                cardinality="1..1" if attr.use == "required" else ("0..0" if attr.use == "prohibited" else "0..1"),
                doc=_text(attr.annotation),
            )
            row.constraints, row.enum = _simple_facets(attr.type)
            if attr.fixed is not None:
                row.constraints.append(("fester Wert", str(attr.fixed)))
            if attr.default is not None:
                row.constraints.append(("Vorgabe", str(attr.default)))
            self.rows.append(row)


def xsd_field_table(schema_path: Path, message_type: str, codelists: dict[str, CodeList]) -> FieldTable:
    """The field table of an XSD: the root element's content model walked recursively."""
    table = FieldTable(format="agency-xml", kind="xsd")
    # allow="local": xs:include/xs:import may only read local files, never the network
    schema = xmlschema.XMLSchema(str(schema_path), allow="local")
    roots = [schema.elements[message_type]] if message_type in schema.elements else list(schema.elements.values())
    walker = _XsdWalker(CodeLists(codelists))
    for root in roots:
        table.root = table.root or root.local_name
        table.doc = table.doc or _text(root.annotation)
        walker.element(root, root.local_name, 0, (), is_root=True)
    table.rows = walker.rows
    return table
