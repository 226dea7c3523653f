"""Interface documentation (Schnittstellendokumentation) rendered as static HTML from contracts/.

The pages are generated from the same files the hub validates against: the field tables come from the
schema files themselves (XSD through xmlschema introspection, JSON Schema by walking it), never from a
hand-written description that could drift. Layout of the output directory:

    index.html                                catalogue: message types, partners, purposes
    codelists.html                            every code list with its values and meanings
    partners/<id>.html                        one page per partner profile
    messages/<type>/<version>/index.html      one page per message type and version,
    messages/<type>/<version>/<schema files>  next to the schema files and examples (downloads)
    common/...                                shared schema parts, so relative xs:include still resolve

Everything is escaped by the template engine (autoescape on); contracts are data from many hands.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import jinja2
import xmlschema
import yaml

from hub.adapters import get_adapter
from hub.schemas.codelists import CodeList, load_codelists
from hub.partners import Partner, load_partners
from hub.routing.purposes import PurposeProfiles
from hub.schemas.registry import Contract, Registry

TEMPLATES = Path(__file__).parent.parent / "templates"  # hub/interface/templates (package data)
XSD_NS = "http://www.w3.org/2001/XMLSchema"

COMPAT_LABELS = {
    "BACKWARD": "Empfänger mit dieser Version lesen auch Nachrichten der vorigen Version.",
    "BACKWARD_TRANSITIVE": "Empfänger mit dieser Version lesen Nachrichten aller früheren Versionen.",
    "FORWARD": "Empfänger mit der vorigen Version lesen auch Nachrichten dieser Version.",
    "FORWARD_TRANSITIVE": "Empfänger mit irgendeiner früheren Version lesen Nachrichten dieser Version.",
    "FULL": "Rückwärts- und vorwärtskompatibel zur vorigen Version.",
    "FULL_TRANSITIVE": "Rückwärts- und vorwärtskompatibel zu allen früheren Versionen.",
    "NONE": "Keine Kompatibilitätszusage zwischen Versionen.",
}
ROLE_LABELS = {
    "jobcenter": "Jobcenter (gemeinsame Einrichtung)",
    "municipal": "Kommunaler Träger",
    "provider": "Maßnahmeträger (provider)",
    "operator": "Hub-Betrieb (operator)",
}


# -- field tables --------------------------------------------------------------------------------------
@dataclass
class CodeListRef:
    """A code list a field draws its values from, and whether schema and list agree."""

    uri: str
    version: str | None
    key: str | None = None  # the file stem under contracts/codelists, if the list is known there
    name: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class FieldRow:
    path: str
    name: str
    depth: int
    kind: str = "element"  # element | attribute | any | property
    type: str = ""
    cardinality: str = ""  # XSD: minOccurs..maxOccurs
    required: bool | None = None  # JSON Schema
    constraints: list[tuple[str, str]] = field(default_factory=list)  # (label, value shown as code)
    enum: list[tuple[str, str]] = field(default_factory=list)  # (value, meaning)
    codelist: CodeListRef | None = None
    doc: str = ""


@dataclass
class FieldTable:
    format: str
    kind: str  # xsd | json | none
    root: str = ""
    doc: str = ""
    rows: list[FieldRow] = field(default_factory=list)
    error: str | None = None


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


class _CodeLists:
    def __init__(self, lists: dict[str, CodeList]) -> None:
        self.lists = lists
        self.by_uri = {c.list_uri: c for c in lists.values()}

    def ref(self, uri: str | None, version: str | None, values: list[str] | None) -> CodeListRef | None:
        """A reference by listURI, or by an enumeration that is exactly one list's set of codes."""
        known = self.by_uri.get(uri) if uri else None
        if known is None and values:
            matches = [c for c in self.lists.values() if set(c.codes) == set(values)]
            known = matches[0] if len(matches) == 1 else None
        if known is None and not uri:
            return None
        ref = CodeListRef(uri=uri or known.list_uri, version=version)  # type: ignore[union-attr]
        if known is None:
            ref.warnings.append("Codeliste ist nicht unter contracts/codelists hinterlegt")
            return ref
        ref.key, ref.name = known.key, known.name
        if version is None:
            ref.version = known.list_version
        elif version != known.list_version:
            ref.warnings.append(f"Schema nennt listVersionID {version}, hinterlegt ist Version {known.list_version}")
        if values is not None:
            extra = [v for v in values if v not in known.codes]
            missing = [v for v in known.codes if v not in values]
            if extra:
                ref.warnings.append("im Schema, nicht in der Codeliste: " + ", ".join(extra))
            if missing:
                ref.warnings.append("in der Codeliste, nicht im Schema: " + ", ".join(missing))
        return ref

    def meanings(self, ref: CodeListRef | None, values: list[str]) -> list[tuple[str, str]]:
        codes = self.lists[ref.key].codes if ref and ref.key else {}
        return [(v, codes.get(v, "")) for v in values]


# XSD --------------------------------------------------------------------------------------------------
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
    def __init__(self, codelists: _CodeLists) -> None:
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
    walker = _XsdWalker(_CodeLists(codelists))
    for root in roots:
        table.root = table.root or root.local_name
        table.doc = table.doc or _text(root.annotation)
        walker.element(root, root.local_name, 0, (), is_root=True)
    table.rows = walker.rows
    return table


# JSON Schema ------------------------------------------------------------------------------------------
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
    def __init__(self, root: dict[str, Any], codelists: _CodeLists) -> None:
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
    walker = _JsonWalker(schema, _CodeLists(codelists))
    walker.properties(schema, "", 0, ())
    table.rows = walker.rows
    return table


def field_table(contract: Contract, codelists: dict[str, CodeList]) -> FieldTable:
    """The field table of one contract; a schema that cannot be read is reported, not fatal."""
    try:
        if contract.schema_path.suffix == ".xsd":
            table = xsd_field_table(contract.schema_path, contract.message_type, codelists)
        elif contract.schema_path.name.endswith(".json"):
            table = json_field_table(contract.schema_path, codelists)
        else:
            return FieldTable(format=contract.format, kind="none")
    except Exception as exc:  # noqa: BLE001 - a broken schema must not take the documentation down
        return FieldTable(format=contract.format, kind="none", error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
    table.format = contract.format
    return table


# -- partners and purposes ------------------------------------------------------------------------------
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _format_names(contracts_dir: Path) -> dict[str, dict[str, str]]:
    names = {}
    for path in sorted((contracts_dir / "formats").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if isinstance(data.get("names"), dict):
            names[data.get("format", path.stem)] = {str(k): str(v) for k, v in data["names"].items()}
    return names


def field_in_format(fmt: str, path: str, names: dict[str, dict[str, str]], pointers: dict[str, Any] | None = None) -> str | None:
    """A canonical field path (participant.given_name) as the partner's format names it, if known."""
    if path == "*":
        return None
    parts = path.split(".")
    if fmt in names:
        table = names[fmt]
        return "/".join(table[p] for p in parts) if all(p in table for p in parts) else None
    pointer = (pointers or {}).get(fmt)  # a format without a name table names fields by JSON pointer
    return pointer(path) if pointer else None


def _version_key(version: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in version.split("."))


def partner_version(partner: Partner, message_type: str, registry: Registry) -> str:
    """The contract version a partner exchanges `message_type` in, as the hub resolves it."""
    available = sorted((v for (t, v, f) in registry.contracts if t == message_type and f == partner.format), key=_version_key)
    resolve = getattr(partner, "version_for", None)  # the hub's own rule, where the Partner has one
    if resolve is not None and available:
        return str(resolve(message_type, available))
    per_type = partner.profile.get("versions")
    if isinstance(per_type, dict) and message_type in per_type:
        return str(per_type[message_type])
    return partner.version


# -- rendering ------------------------------------------------------------------------------------------
def environment(titles: dict[str, str] | None = None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every value comes from contract files: escape all of it
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["format_label"] = lambda f: (titles or {}).get(f, f)
    env.filters["compat_label"] = lambda c: COMPAT_LABELS.get(str(c).upper(), "")
    env.filters["role_label"] = lambda r: ROLE_LABELS.get(r, r)
    env.filters["is_mapping"] = lambda v: isinstance(v, dict)
    env.filters["is_sequence"] = lambda v: isinstance(v, (list, tuple))
    return env


def _message_meta(contracts_dir: Path, code: str) -> dict[str, Any]:
    path = contracts_dir / "messages" / code / "contract.yaml"
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError:
        return {}


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def render_docs(contracts_dir: Path, out: Path) -> list[Path]:
    """Render the interface documentation of `contracts_dir` into `out`; returns the HTML pages written."""
    contracts_dir, out = Path(contracts_dir).resolve(), Path(out)
    registry = Registry(contracts_dir)
    partners = load_partners(contracts_dir)
    codelists = load_codelists(contracts_dir)
    purposes_file = contracts_dir / "purposes.yaml"
    purposes = PurposeProfiles.load(purposes_file).purposes if purposes_file.exists() else {}
    names = _format_names(contracts_dir)
    pointers = {name: get_adapter(contracts_dir, name).pointer for name in registry.format_specs}
    env = environment({name: fmt.title for name, fmt in registry.format_specs.items()})
    out.mkdir(parents=True, exist_ok=True)
    pages: list[Path] = []

    def write(rel: str, template: str, **context: Any) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        root = "../" * rel.count("/")
        path.write_text(env.get_template(template).render(root=root, **context), encoding="utf-8")
        pages.append(path)

    # shared schema parts (xs:include ../../../common/...) so downloaded schemas resolve as a tree
    if (contracts_dir / "common").is_dir():
        shutil.copytree(contracts_dir / "common", out / "common", dirs_exist_ok=True)

    def senders(code: str) -> list[Partner]:
        return [p for p in partners.values() if code in p.sends]

    def receivers(code: str) -> list[Partner]:
        return [p for p in partners.values() if code in p.receives]

    types = []
    for mt in registry.types.values():
        meta = _message_meta(contracts_dir, mt.code)
        versions = sorted(mt.versions, key=_version_key)
        types.append(
            {
                "code": mt.code,
                "title": mt.title,
                "description": mt.description,
                "direction": str(meta.get("direction", "")),
                "compatibility": mt.compatibility,
                "versions": versions,
                "latest": versions[-1] if versions else None,
                "formats": sorted({f for (t, _, f) in registry.contracts if t == mt.code}),
            }
        )
    type_by_code = {t["code"]: t for t in types}
    tables: dict[tuple[str, str, str], FieldTable] = {}

    def message_link(code: str, version: str | None = None) -> str | None:
        t = type_by_code.get(code)
        if t is None or not t["versions"]:
            return None
        v = version if version in t["versions"] else t["latest"]
        return f"messages/{code}/{v}/index.html"

    # message type pages, one per (type, version)
    for t in types:
        mt = registry.types[t["code"]]
        for version in t["versions"]:
            rel_dir = f"messages/{t['code']}/{version}"
            formats = []
            used_lists: dict[str, CodeListRef] = {}
            for (code, ver, fmt), contract in sorted(registry.contracts.items()):
                if code != t["code"] or ver != version:
                    continue
                _copy(contract.schema_path, out / rel_dir / contract.schema_path.name)
                examples = []
                for example in contract.examples:
                    _copy(example, out / rel_dir / "examples" / example.name)
                    examples.append({"name": example.name, "text": example.read_text(encoding="utf-8", errors="replace")})
                table = tables[(code, ver, fmt)] = field_table(contract, codelists)
                for row in table.rows:
                    if row.codelist and row.codelist.key:
                        used_lists.setdefault(row.codelist.key, row.codelist)
                formats.append({"format": fmt, "schema": contract.schema_path.name, "table": table, "examples": examples})
            info = mt.versions.get(version) or {}
            write(
                f"{rel_dir}/index.html",
                "message.html",
                t=t,
                version=version,
                info={k: v for k, v in info.items() if k not in ("changes", "status")},
                changes=info.get("changes", ""),
                status=info.get("status", ""),
                history=[(v, (mt.versions.get(v) or {}).get("changes", "")) for v in t["versions"]],
                formats=formats,
                lists=[codelists[k] for k in sorted(used_lists)],
                senders=senders(t["code"]),
                receivers=receivers(t["code"]),
            )

    # partner pages
    for partner in partners.values():
        profile = partner.profile

        def flows(codes: tuple[str, ...], partner: Partner = partner) -> list[dict[str, Any]]:
            rows = []
            for code in codes:
                version = partner_version(partner, code, registry)
                t = type_by_code.get(code)
                available = (code, version, partner.format) in registry.contracts
                rows.append(
                    {
                        "code": code,
                        "title": t["title"] if t else "",
                        "format": partner.format,
                        "version": version,
                        "link": message_link(code, version),
                        "available": available,
                    }
                )
            return rows

        partner_purposes = []
        for code in partner.purposes:
            purpose = purposes.get(code)
            if purpose is None:
                partner_purposes.append({"code": code, "missing": True})
                continue
            allowed = []
            for pattern, paths in purpose.fields.items():
                matching = [c for c in partner.receives if fnmatchcase(c, pattern)]
                version = partner_version(partner, pattern, registry)
                table = tables.get((pattern, version, partner.format))
                known = {row.path for row in table.rows} if table else set()

                def native(path: str, known: set[str] = known) -> str | None:
                    # the name in the partner's format, shown only where its schema really has it
                    name = field_in_format(partner.format, path, names, pointers)
                    return name if name in known else None

                allowed.append(
                    {
                        "pattern": pattern,
                        "link": message_link(pattern, version) if pattern in type_by_code else None,
                        "received": bool(matching),
                        "all": "*" in paths,
                        "fields": [(p, native(p)) for p in paths if p != "*"],
                    }
                )
            partner_purposes.append(
                {"code": code, "missing": False, "legal_basis": purpose.legal_basis, "description": purpose.description, "allowed": allowed}
            )
        write(
            f"partners/{partner.id}.html",
            "partner.html",
            p=partner,
            description=profile.get("description", ""),
            responsibilities=profile.get("responsibilities") or [],
            quality=profile.get("quality") or [],
            contacts=profile.get("contacts") or [],
            delivery=profile.get("delivery", partner.delivery),
            sends=flows(partner.sends),
            receives=flows(partner.receives),
            purposes=partner_purposes,
        )

    write("codelists.html", "codelists.html", lists=list(codelists.values()))
    write(
        "index.html",
        "index.html",
        types=types,
        partners=list(partners.values()),
        purposes=list(purposes.values()),
        lists=list(codelists.values()),
    )
    return pages
