"""Agency XML: XÖV-style messages of Jobcenter and municipal Fachverfahren.

The root element is named after the message type (as in XÖV), carries `version` and `test`
attributes, and starts with a `nachrichtenkopf`. Body elements are named by the format's name table
(contracts/formats/agency-xml.yaml) and written in canonical field order, which is the order of the
xs:sequence in the generated schemas. Codes are XÖV code types: listURI and listVersionID attributes
and a `code` child.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lxml import etree
from pydantic import BaseModel

from hub import safe_xml
from hub.adapters.base import Adapter, fields_of
from hub.canonical import BODY_TYPES, Message
from hub.codelists import load_codelists
from hub.findings import Finding, Refusal


class AgencyXmlAdapter(Adapter):
    format = "agency-xml"
    media_type = "application/xml"

    def __init__(self, contracts_dir: Path) -> None:
        super().__init__(contracts_dir)
        self.ns: str = self.spec["namespace"]
        self.names: dict[str, str] = self.spec["names"]
        self.fields_by_xml = {v: k for k, v in self.names.items()}
        self.codelists = load_codelists(contracts_dir)

    def q(self, local: str) -> str:
        return f"{{{self.ns}}}{local}"

    # -- reading -----------------------------------------------------------------------------------
    def parse(self, data: bytes) -> etree._Element:
        return safe_xml.parse(data)

    def peek_header(self, data: bytes, root: etree._Element | None = None) -> dict[str, Any]:
        root = self.parse(data) if root is None else root
        kopf = root.find(self.q("nachrichtenkopf"))
        if etree.QName(root).namespace != self.ns or kopf is None:
            raise Refusal(
                "missing-header",
                f"The root element is not a message of namespace {self.ns} with a nachrichtenkopf",
                [Finding(f"unexpected root element {root.tag}", line=root.sourceline)],
            )
        ident = kopf.find(self.q("identifikation.nachricht"))

        def text(parent: etree._Element | None, path: str) -> str | None:
            if parent is None:
                return None
            node = parent.find(path.format(ns=self.ns))
            return node.text.strip() if node is not None and node.text else None

        return {
            "message_type": text(ident, "{{{ns}}}nachrichtentyp/{{{ns}}}code") or etree.QName(root).localname,
            "version": root.get("version"),
            "sender": text(kopf, "{{{ns}}}autor/{{{ns}}}kennung"),
            "message_uuid": text(ident, "{{{ns}}}nachrichtenUUID"),
            "reference_uuid": text(kopf, "{{{ns}}}referenzUUID"),
        }

    def decode(self, data: bytes, root: etree._Element | None = None) -> Message:
        root = self.parse(data) if root is None else root
        kopf = root.find(self.q("nachrichtenkopf"))
        ident = kopf.find(self.q("identifikation.nachricht"))
        header = {
            "message_uuid": ident.findtext(self.q("nachrichtenUUID")),
            "message_type": ident.findtext(f"{self.q('nachrichtentyp')}/{self.q('code')}"),
            "created_at": ident.findtext(self.q("erstellungszeitpunkt")),
            "author": self._party(kopf.find(self.q("autor"))),
            "reader": self._party(kopf.find(self.q("leser"))),
            "reference_uuid": kopf.findtext(self.q("referenzUUID")),
            "purpose": kopf.findtext(f"{self.q('zweck')}/{self.q('code')}"),
            "legal_basis": kopf.findtext(self.q("rechtsgrundlage")),
            "version": root.get("version"),
            "test": root.get("test", "false") in ("true", "1"),
        }
        body_type = BODY_TYPES[header["message_type"]]
        body = self._read(root, body_type, skip=("nachrichtenkopf",))
        return Message.build({k: v for k, v in header.items() if v is not None}, body)

    def _party(self, node: etree._Element | None) -> dict[str, str] | None:
        if node is None:
            return None
        party = {"id": node.findtext(self.q("kennung"))}
        name = node.findtext(self.q("name"))
        if name:
            party["name"] = name
        return party

    def _read(self, parent: etree._Element, model: type[BaseModel], skip: tuple[str, ...] = ()) -> dict[str, Any]:
        specs = {s.name: s for s in fields_of(model)}
        out: dict[str, Any] = {}
        for child in parent:
            if not isinstance(child.tag, str):
                continue  # comments and processing instructions
            local = etree.QName(child).localname
            if local in skip:
                continue
            name = self.fields_by_xml.get(local)
            spec = specs.get(name) if name else None
            if spec is None:
                continue  # the schema decides what is allowed; unknown content was refused there
            if spec.model is not None:
                value: Any = self._read(child, spec.model)
            elif spec.codelist:
                value = child.findtext(self.q("code"))
            else:
                value = child.text or ""
            if spec.many:
                out.setdefault(name, []).append(value)
            else:
                out[name] = value
        return out

    # -- writing -----------------------------------------------------------------------------------
    def encode(self, message: Message) -> bytes:
        h = message.header
        root = etree.Element(self.q(h.message_type), nsmap={self.spec["prefix"]: self.ns})
        root.set("version", h.version)
        root.set("test", "true" if h.test else "false")
        kopf = etree.SubElement(root, self.q("nachrichtenkopf"))
        ident = etree.SubElement(kopf, self.q("identifikation.nachricht"))
        etree.SubElement(ident, self.q("nachrichtenUUID")).text = str(h.message_uuid)
        self._code(ident, "nachrichtentyp", "nachrichtentyp", h.message_type)
        etree.SubElement(ident, self.q("erstellungszeitpunkt")).text = h.created_at.isoformat()
        self._write_party(kopf, "autor", h.author.id, h.author.name)
        if h.reader is not None:
            self._write_party(kopf, "leser", h.reader.id, h.reader.name)
        if h.reference_uuid is not None:
            etree.SubElement(kopf, self.q("referenzUUID")).text = str(h.reference_uuid)
        self._code(kopf, "zweck", "zweck", h.purpose)
        etree.SubElement(kopf, self.q("rechtsgrundlage")).text = h.legal_basis
        self._write(root, message.body_dict(), type(message.body))
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)

    def _write_party(self, parent: etree._Element, tag: str, kennung: str, name: str | None) -> None:
        node = etree.SubElement(parent, self.q(tag))
        etree.SubElement(node, self.q("kennung")).text = kennung
        if name:
            etree.SubElement(node, self.q("name")).text = name

    def _code(self, parent: etree._Element, tag: str, codelist: str, value: str) -> None:
        cl = self.codelists[codelist]
        node = etree.SubElement(parent, self.q(tag), listURI=cl.list_uri, listVersionID=cl.list_version)
        etree.SubElement(node, self.q("code")).text = value

    def _write(self, parent: etree._Element, data: dict[str, Any], model: type[BaseModel]) -> None:
        for spec in fields_of(model):
            if spec.name in self.exclude or spec.name not in data:
                continue
            values = data[spec.name] if spec.many else [data[spec.name]]
            tag = self.names[spec.name]
            for value in values:
                if spec.model is not None:
                    self._write(etree.SubElement(parent, self.q(tag)), value, spec.model)
                elif spec.codelist:
                    self._code(parent, tag, spec.codelist, value)
                else:
                    etree.SubElement(parent, self.q(tag)).text = _text(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
