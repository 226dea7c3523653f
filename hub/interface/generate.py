"""Scaffold contract files (XSD and JSON Schema) for a message type from the canonical model.

Integrators run this once when a message type is introduced
(`python -c "from pathlib import Path; from hub.interface.generate import write_contract;
write_contract(Path('contracts'), 'TYPE', '1.0')"`); the files it writes are then the contract: reviewed, committed, versioned and edited as data. Generating
the first version keeps the schema, the adapters' name tables and the canonical model in step.
"""

from __future__ import annotations

import copy
import json
import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree
from pydantic import BaseModel

from hub.adapters.base import load_format
from hub.schemas.formats import formats_in
from hub.canonical import BODY_TYPES, Header
from hub.schemas.codelists import load_codelists

XS = "http://www.w3.org/2001/XMLSchema"


@dataclass(frozen=True)
class FieldSpec:
    """What an adapter needs to know about one canonical field to write or read it generically."""

    name: str
    alias: str
    model: type[BaseModel] | None  # nested model, if the field holds one (or a list of them)
    many: bool
    required: bool
    codelist: str | None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional[...] and Annotated[...] down to the core type."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
        else:
            return annotation


@lru_cache(maxsize=None)
def fields_of(model: type[BaseModel]) -> tuple[FieldSpec, ...]:
    specs = []
    for name, info in model.model_fields.items():
        core = _unwrap(info.annotation)
        many = typing.get_origin(core) is list
        if many:
            core = _unwrap(typing.get_args(core)[0])
        nested = core if isinstance(core, type) and issubclass(core, BaseModel) else None
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        specs.append(
            FieldSpec(
                name=name,
                alias=info.alias or name,
                model=nested,
                many=many,
                required=info.is_required(),
                codelist=extra.get("codelist"),  # type: ignore[arg-type]
            )
        )
    return tuple(specs)



def _x(tag: str) -> str:
    return f"{{{XS}}}{tag}"


def _prop_schema(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The JSON Schema of one field, with Optional and Decimal's number-or-string unwrapped."""
    schema = model.model_json_schema(by_alias=False)
    prop = copy.deepcopy(schema["properties"][name])
    if "anyOf" in prop:
        branches = [b for b in prop.pop("anyOf") if b.get("type") != "null"]
        numeric = [b for b in branches if b.get("type") == "number"]
        prop.update(numeric[0] if numeric else branches[0])
    if prop.get("type") == "array":
        prop["items"] = copy.deepcopy(prop["items"])
    return prop


def _simple_restriction(parent: etree._Element, prop: dict[str, Any]) -> None:
    """Write the XSD type of a scalar field onto `parent` (an xs:element)."""
    fmt, typ = prop.get("format"), prop.get("type")
    if fmt == "date":
        parent.set("type", "xs:date")
        return
    if fmt == "date-time":
        parent.set("type", "fk:Zeitpunkt")
        return
    if fmt == "uuid":
        parent.set("type", "fk:UUID")
        return
    if typ == "boolean":
        parent.set("type", "xs:boolean")
        return
    base = {"number": "xs:decimal", "integer": "xs:integer"}.get(typ, "xs:string")
    facets = []
    for key, facet in (("minLength", "minLength"), ("maxLength", "maxLength"), ("minimum", "minInclusive"), ("maximum", "maxInclusive")):
        if key in prop:
            value = prop[key]
            facets.append((facet, str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)))
    if "pattern" in prop:
        facets.append(("pattern", prop["pattern"].lstrip("^").rstrip("$")))
    enum = prop.get("enum") or ([prop["const"]] if "const" in prop else None)
    if not facets and not enum:
        parent.set("type", base)
        return
    simple = etree.SubElement(parent, _x("simpleType"))
    restriction = etree.SubElement(simple, _x("restriction"), base=base)
    for facet, value in facets:
        etree.SubElement(restriction, _x(facet), value=value)
    for value in enum or ():
        etree.SubElement(restriction, _x("enumeration"), value=str(value))


def _doc(element: etree._Element, text: str | None) -> None:
    if text:
        ann = etree.SubElement(element, _x("annotation"))
        etree.SubElement(ann, _x("documentation")).text = text


def _sequence(parent: etree._Element, model: type[BaseModel], fmt: dict[str, Any]) -> None:
    seq = etree.SubElement(parent, _x("sequence"))
    names, exclude, required = fmt["names"], set(fmt.get("exclude", ())), set(fmt.get("required", ()))
    for spec in fields_of(model):
        if spec.name in exclude:
            continue
        prop = _prop_schema(model, spec.name)
        el = etree.SubElement(seq, _x("element"), name=names[spec.name])
        if not (spec.required or spec.name in required):
            el.set("minOccurs", "0")
        if spec.many:
            el.set("maxOccurs", "unbounded")
            if not spec.required:
                el.set("minOccurs", "0")
            elif prop.get("minItems", 0) == 0:
                el.set("minOccurs", "0")
        _doc(el, prop.get("description") or (prop.get("items") or {}).get("description"))
        if spec.model is not None:
            el.set("type", f"fk:{spec.model.__name__}Typ")
        elif spec.codelist:
            el.set("type", f"fk:Code.{spec.codelist}")
        else:
            _simple_restriction(el, prop["items"] if spec.many else prop)


def _nested_models(model: type[BaseModel], seen: dict[str, type[BaseModel]]) -> None:
    for spec in fields_of(model):
        if spec.model is not None and spec.model.__name__ not in seen:
            seen[spec.model.__name__] = spec.model
            _nested_models(spec.model, seen)


def baukasten_xsd(contracts_dir: Path, name: str = "agency-xml") -> bytes:
    """Shared types of an XSD format's standard (the agency XML's): header, code types, nested structures."""
    fmt = load_format(contracts_dir, name)
    ns = fmt["namespace"]
    schema = etree.Element(
        _x("schema"), nsmap={"xs": XS, "fk": ns}, targetNamespace=ns, elementFormDefault="qualified", version="1.0"
    )
    _doc(schema, "Baukasten of the CaseChain agency XML standard: header, code types and shared structures.")
    header_xsd = f"""
<xs:schema xmlns:xs="{XS}" xmlns:fk="{ns}">
  <xs:simpleType name="UUID"><xs:restriction base="xs:string">
    <xs:pattern value="[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}"/>
  </xs:restriction></xs:simpleType>
  <xs:simpleType name="Zeitpunkt">
    <xs:annotation><xs:documentation>A point in time with its time zone.</xs:documentation></xs:annotation>
    <xs:restriction base="xs:dateTime"><xs:pattern value=".+(Z|[+\\-][0-9]{{2}}:[0-9]{{2}})"/></xs:restriction>
  </xs:simpleType>
  <xs:complexType name="OrganisationTyp"><xs:sequence>
    <xs:element name="kennung"><xs:simpleType><xs:restriction base="xs:string"><xs:minLength value="1"/><xs:maxLength value="40"/><xs:pattern value="[A-Za-z0-9_.\\-]+"/></xs:restriction></xs:simpleType></xs:element>
    <xs:element name="name" minOccurs="0"><xs:simpleType><xs:restriction base="xs:string"><xs:minLength value="1"/><xs:maxLength value="255"/></xs:restriction></xs:simpleType></xs:element>
  </xs:sequence></xs:complexType>
  <xs:complexType name="NachrichtenkopfTyp">
    <xs:annotation><xs:documentation>Nachrichtenkopf: identification, sender, reader, purpose and legal basis.</xs:documentation></xs:annotation>
    <xs:sequence>
      <xs:element name="identifikation.nachricht"><xs:complexType><xs:sequence>
        <xs:element name="nachrichtenUUID" type="fk:UUID"/>
        <xs:element name="nachrichtentyp" type="fk:Code.nachrichtentyp"/>
        <xs:element name="erstellungszeitpunkt" type="fk:Zeitpunkt"/>
      </xs:sequence></xs:complexType></xs:element>
      <xs:element name="autor" type="fk:OrganisationTyp"/>
      <xs:element name="leser" type="fk:OrganisationTyp" minOccurs="0"/>
      <xs:element name="referenzUUID" type="fk:UUID" minOccurs="0"/>
      <xs:element name="zweck" type="fk:Code.zweck"/>
      <xs:element name="rechtsgrundlage"><xs:simpleType><xs:restriction base="xs:string"><xs:minLength value="1"/><xs:maxLength value="255"/></xs:restriction></xs:simpleType></xs:element>
    </xs:sequence>
  </xs:complexType>
  <xs:attributeGroup name="Nachrichtenattribute">
    <xs:attribute name="version" type="xs:string" use="required"/>
    <xs:attribute name="test" type="xs:boolean" default="false"/>
  </xs:attributeGroup>
</xs:schema>"""
    for child in etree.fromstring(header_xsd.encode()):
        schema.append(child)
    for cl in load_codelists(contracts_dir).values():
        ct = etree.SubElement(schema, _x("complexType"), name=f"Code.{cl.key}")
        _doc(ct, f"{cl.name} ({cl.list_uri}, version {cl.list_version})")
        seq = etree.SubElement(ct, _x("sequence"))
        code = etree.SubElement(seq, _x("element"), name="code")
        simple = etree.SubElement(code, _x("simpleType"))
        restriction = etree.SubElement(simple, _x("restriction"), base="xs:token")
        for value, meaning in cl.codes.items():
            enum = etree.SubElement(restriction, _x("enumeration"), value=value)
            _doc(enum, meaning)
        etree.SubElement(ct, _x("attribute"), name="listURI", type="xs:anyURI", use="required", fixed=cl.list_uri)
        etree.SubElement(ct, _x("attribute"), name="listVersionID", type="xs:normalizedString", use="required", fixed=cl.list_version)
    nested: dict[str, type[BaseModel]] = {}
    for body in BODY_TYPES.values():
        _nested_models(body, nested)
    for name, model in sorted(nested.items()):
        ct = etree.SubElement(schema, _x("complexType"), name=f"{name}Typ")
        _doc(ct, (model.__doc__ or "").strip() or None)
        _sequence(ct, model, fmt)
    return etree.tostring(schema, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def message_xsd(contracts_dir: Path, message_type: str, version: str, name: str = "agency-xml") -> bytes:
    fmt = load_format(contracts_dir, name)
    ns = fmt["namespace"]
    model = BODY_TYPES[message_type]
    schema = etree.Element(
        _x("schema"), nsmap={"xs": XS, "fk": ns}, targetNamespace=ns, elementFormDefault="qualified", version=version
    )
    etree.SubElement(schema, _x("include"), schemaLocation=f"../../../common/{name}/{version}/baukasten.xsd")
    root = etree.SubElement(schema, _x("element"), name=message_type)
    _doc(root, (model.__doc__ or "").strip())
    ct = etree.SubElement(root, _x("complexType"))
    _sequence(ct, model, fmt)
    seq = ct.find(_x("sequence"))
    seq.insert(0, etree.Element(_x("element"), name="nachrichtenkopf", type="fk:NachrichtenkopfTyp"))
    etree.SubElement(ct, _x("attributeGroup"), ref="fk:Nachrichtenattribute")
    return etree.tostring(schema, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _json_field(model: type[BaseModel], name: str, codelists: dict, defs: dict, exclude: set[str], required: set[str]) -> dict:
    prop = _prop_schema(model, name)
    prop.pop("title", None)
    prop.pop("default", None)
    spec = next(s for s in fields_of(model) if s.name == name)
    target = prop["items"] if spec.many else prop
    if spec.model is not None:
        defs.setdefault(spec.model.__name__, None)
        if defs[spec.model.__name__] is None:
            defs[spec.model.__name__] = _json_object(spec.model, codelists, defs, exclude, required)
        target.clear()
        target["$ref"] = f"#/$defs/{spec.model.__name__}"
    if spec.codelist:
        cl = codelists[spec.codelist]
        target.pop("codelist", None)
        target["enum"] = list(cl.codes)
        target["description"] = f"{prop.get('description', '')} ({cl.list_uri}, version {cl.list_version})".strip()
    if spec.many:
        prop.pop("items", None)
        prop["items"] = target
    return prop


def _json_object(model: type[BaseModel], codelists: dict, defs: dict, exclude: set[str], required: set[str]) -> dict:
    props, req = {}, []
    for spec in fields_of(model):
        if spec.name in exclude:
            continue
        props[spec.alias] = _json_field(model, spec.name, codelists, defs, exclude, required)
        if spec.required or (spec.name in required and issubclass(model, tuple(BODY_TYPES.values()))):
            req.append(spec.alias)
    out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": props}
    if model.__doc__:
        out["description"] = model.__doc__.strip()
    if req:
        out["required"] = req
    return out


def message_json_schema(contracts_dir: Path, message_type: str, version: str, name: str = "provider-json") -> dict[str, Any]:
    fmt = load_format(contracts_dir, name)
    codelists = load_codelists(contracts_dir)
    exclude, required = set(fmt.get("exclude", ())), set(fmt.get("required", ()))
    if message_type.startswith(("person.", "administration.")):
        required = set()  # no case is involved in these
    defs: dict[str, Any] = {}
    header = _json_object(Header, codelists, defs, set(), set())
    header["properties"]["messageType"] = {"const": message_type}
    # the version is routing metadata checked by the registry; a const here would make every new
    # version formally incompatible with the last
    header["properties"]["version"] = {"type": "string", "pattern": r"^[0-9]+\.[0-9]+$", "description": "contract version of the message"}
    header["properties"]["purpose"]["enum"] = list(codelists["zweck"].codes)
    body = _json_object(BODY_TYPES[message_type], codelists, defs, exclude, required)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:casechain:contract:{message_type}:{version}:{name}",
        "title": f"{message_type} {version} ({fmt.get('title') or name})",
        "description": (BODY_TYPES[message_type].__doc__ or "").strip(),
        "type": "object",
        "additionalProperties": False,
        "required": ["header", "body"],
        "properties": {"header": header, "body": body},
        "$defs": {k: v for k, v in defs.items() if v is not None},
    }


def write_contract(contracts_dir: Path, message_type: str, version: str = "1.0", formats: tuple[str, ...] | None = None) -> list[Path]:
    """The schema files of a new contract version in every format (or `formats`) whose schema
    describes a whole message, generated by the format's schema kind (contracts/formats/*.yaml)."""
    base = contracts_dir / "messages" / message_type / version
    base.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats_in(contracts_dir.resolve()).values():
        if (formats is not None and fmt.name not in formats) or fmt.per_record:
            continue  # a per-record schema (a batch file's row) names its columns by hand
        path = base / fmt.schema_file
        if fmt.schema_kind == "xsd":
            common = contracts_dir / "common" / fmt.name / version
            common.mkdir(parents=True, exist_ok=True)
            (common / "baukasten.xsd").write_bytes(baukasten_xsd(contracts_dir, fmt.name))
            path.write_bytes(message_xsd(contracts_dir, message_type, version, fmt.name))
            written += [common / "baukasten.xsd", path]
        else:
            schema = message_json_schema(contracts_dir, message_type, version, fmt.name)
            path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            written.append(path)
    return written
