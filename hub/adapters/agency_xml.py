"""Agency XML: XÖV-style messages of Jobcenter and municipal Fachverfahren.

The root element is named after the message type (as in XÖV), carries `version` and `test`
attributes, and starts with a `nachrichtenkopf`. Body elements are named by the format's name table
(contracts/formats/agency-xml.yaml); their order, cardinality and code types come from the contract
version's own XSD (its shape), so a hand-edited or restructured version needs no code. Codes are XÖV
code types: listURI and listVersionID of the version's code list, and a `code` child.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from hub.schemas import safe_xml
from hub.adapters.base import Adapter
from hub.canonical import Header
from hub.schemas.codelists import load_codelists
from hub.findings import Finding, Refusal
from hub.schemas.registry import Contract
from hub.schemas.shape import Node, xml_paths, xsd_shape


class AgencyXmlAdapter(Adapter):
    format = "agency-xml"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head[:1] == b"<"

    def __init__(self, contracts_dir: Path, fmt: str | None = None) -> None:
        super().__init__(contracts_dir, fmt)
        self.ns: str = self.spec["namespace"]
        self.names: dict[str, str] = self.spec["names"]
        self.names_inv = {v: k for k, v in self.names.items()}
        self.codelists = load_codelists(contracts_dir)

    def q(self, local: str) -> str:
        return f"{{{self.ns}}}{local}"

    def shape(self, contract: Contract) -> tuple[Node, ...]:
        return xsd_shape(contract.schema_path, contract.message_type)

    def paths(self, contract: Contract) -> frozenset[str]:
        return frozenset(xml_paths(self.shape(contract), self.names_inv))

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
            node = parent.find(path.format(ns=self.ns)) if parent is not None else None
            return node.text.strip() if node is not None and node.text else None

        reader = kopf.find(f"{self.q('leser')}/{self.q('kennung')}")
        return {
            "message_type": text(ident, "{{{ns}}}nachrichtentyp/{{{ns}}}code") or etree.QName(root).localname,
            "version": root.get("version"),
            "sender": text(kopf, "{{{ns}}}autor/{{{ns}}}kennung"),
            "reader": text(kopf, "{{{ns}}}leser/{{{ns}}}kennung"),
            "reader_at": {"field": "nachrichtenkopf/leser/kennung", "line": reader.sourceline if reader is not None else None},
            "message_uuid": text(ident, "{{{ns}}}nachrichtenUUID"),
            "reference_uuid": text(kopf, "{{{ns}}}referenzUUID"),
            "test": root.get("test", "false") in ("true", "1"),
        }

    def read(self, data: bytes, root: etree._Element, contract: Contract) -> tuple[dict[str, Any], dict[str, Any]]:
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
        return {k: v for k, v in header.items() if v is not None}, self._read(root, self.shape(contract))

    def texts(self, data: bytes, root: etree._Element, contract: Contract, every: bool) -> Iterator[tuple[str, dict[str, Any], str]]:
        """Element texts and attribute values with their lines. The XML parser already refuses
        whatever XML cannot carry, so without `every` there is nothing to look at."""
        if not every:
            return
        for element in root.iter(etree.Element):
            local = etree.QName(element).localname
            field = self.names_inv.get(local, local)
            text = "".join(element.itertext()) if len(element) == 0 else (element.text or "")
            if text.strip():
                yield field, {"line": element.sourceline}, text
            for name, value in element.attrib.items():
                yield name, {"line": element.sourceline}, value

    def _party(self, node: etree._Element | None) -> dict[str, str] | None:
        if node is None:
            return None
        party = {"id": node.findtext(self.q("kennung"))}
        name = node.findtext(self.q("name"))
        if name:
            party["name"] = name
        return party

    def _read(self, parent: etree._Element, nodes: tuple[Node, ...]) -> dict[str, Any]:
        by_name = {n.name: n for n in nodes}
        out: dict[str, Any] = {}
        for child in parent:
            if not isinstance(child.tag, str):
                continue  # comments and processing instructions
            node = by_name.get(etree.QName(child).localname)
            if node is None:
                continue  # the header, or content the schema already refused
            if node.code is not None:
                value: Any = child.findtext(self.q("code"))
            elif node.children is not None:
                value = self._read(child, node.children)
            else:
                value = "".join(child.itertext())  # all of it, even if a comment split the text
            key = self.names_inv.get(node.name, node.name)
            if node.many:
                out.setdefault(key, []).append(value)
            else:
                out[key] = value
        return out

    # -- writing -----------------------------------------------------------------------------------
    def write(self, header: Header, body: dict[str, Any], contract: Contract) -> bytes:
        h = header
        root = etree.Element(self.q(h.message_type), nsmap={self.spec["prefix"]: self.ns})
        root.set("version", h.version)
        root.set("test", "true" if h.test else "false")
        kopf = etree.SubElement(root, self.q("nachrichtenkopf"))
        ident = etree.SubElement(kopf, self.q("identifikation.nachricht"))
        etree.SubElement(ident, self.q("nachrichtenUUID")).text = str(h.message_uuid)
        self._code(ident, "nachrichtentyp", self._list("nachrichtentyp"), h.message_type)
        etree.SubElement(ident, self.q("erstellungszeitpunkt")).text = h.created_at.isoformat()
        self._party_out(kopf, "autor", h.author.id, h.author.name)
        if h.reader is not None:
            self._party_out(kopf, "leser", h.reader.id, h.reader.name)
        if h.reference_uuid is not None:
            etree.SubElement(kopf, self.q("referenzUUID")).text = str(h.reference_uuid)
        self._code(kopf, "zweck", self._list("zweck"), h.purpose)
        etree.SubElement(kopf, self.q("rechtsgrundlage")).text = h.legal_basis
        self._write(root, body, self.shape(contract))
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)

    def _list(self, key: str) -> tuple[str, str]:
        cl = self.codelists[key]
        return cl.list_uri, cl.list_version

    def _party_out(self, parent: etree._Element, tag: str, kennung: str, name: str | None) -> None:
        node = etree.SubElement(parent, self.q(tag))
        etree.SubElement(node, self.q("kennung")).text = kennung
        if name:
            etree.SubElement(node, self.q("name")).text = name

    def _code(self, parent: etree._Element, tag: str, code_list: tuple[str, str], value: str) -> None:
        node = etree.SubElement(parent, self.q(tag), listURI=code_list[0], listVersionID=code_list[1])
        etree.SubElement(node, self.q("code")).text = value

    def _write(self, parent: etree._Element, data: dict[str, Any], nodes: tuple[Node, ...]) -> None:
        for node in nodes:
            key = self.names_inv.get(node.name, node.name)
            if key not in data or data[key] is None:
                continue
            for value in data[key] if node.many else [data[key]]:
                if node.code is not None:
                    self._code(parent, node.name, node.code, value)
                elif node.children is not None:
                    self._write(etree.SubElement(parent, self.q(node.name)), value, node.children)
                else:
                    etree.SubElement(parent, self.q(node.name)).text = _text(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
