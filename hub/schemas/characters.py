"""The characters a message may carry.

Every message may be passed on to a partner that reads XML, and XML 1.0 cannot carry every
character a JSON string or a CSV cell can: control characters (U+0000-U+001F but tab, line feed and
carriage return), lone surrogates, U+FFFE and U+FFFF. A message holding one was once taken (202) and
then failed in the pipeline on every attempt, while encoding the recipient's XML. So ingress refuses
such characters, naming where they are.

Where a contract says so (`characters` in its `contract.yaml`), fields must also keep to a data type
of DIN 91379 (the characters of names and general text in German public administration; XÖV
standards use them): e.g. given and family names to data type A. The patterns are read from the
KoSIT's XSD of the norm (contracts/common/din-91379/).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from elementpath.regex import translate_pattern
from lxml import etree

from hub.findings import Finding

#: anything XML 1.0's Char production does not allow
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
DATATYPES = ("A", "B", "C", "D", "E")
_XS = "{http://www.w3.org/2001/XMLSchema}"


def describe(char: str) -> str:
    """U+001B (ESCAPE): a character named so that a person recognises it."""
    name = unicodedata.name(char, "")
    if not name and ord(char) < 0x20:
        name = {0: "NULL", 0x1B: "ESCAPE"}.get(ord(char), "control character")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def xml_finding(value: str, where: dict) -> Finding | None:
    """A finding for the first character XML cannot carry in `value`, at `where` (Finding fields)."""
    found = NOT_XML.search(value)
    if found is None:
        return None
    return Finding(f"{describe(found.group())} at position {found.start() + 1} cannot be carried by every recipient's format (XML 1.0)", **where)


@lru_cache(maxsize=None)
def din_91379(contracts_dir: Path, datatype: str) -> re.Pattern[str]:
    """The pattern of a DIN 91379 data type (A-E), from the norm's XSD, as a Python regular expression."""
    if datatype not in DATATYPES:
        raise ValueError(f"unknown DIN 91379 data type {datatype!r} (one of {', '.join(DATATYPES)})")
    path = contracts_dir / "common" / "din-91379" / "din-norm-91379-datatypes.xsd"
    tree = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    pattern = tree.find(f"{_XS}simpleType[@name='datatype{datatype}']/{_XS}restriction/{_XS}pattern")
    if pattern is None:
        raise ValueError(f"{path} has no pattern for data type {datatype}")
    return re.compile(translate_pattern(pattern.get("value"), xsd_version="1.0", anchors=False))


@dataclass(frozen=True)
class CharacterRules:
    """`characters` of a contract: canonical field name (at any depth, or "*" for every other text
    field) -> DIN 91379 data type."""

    contracts_dir: Path
    by_field: Mapping[str, str]

    @classmethod
    def of(cls, contracts_dir: Path, declared: Mapping[str, str] | None) -> CharacterRules | None:
        if not declared:
            return None
        for datatype in declared.values():
            din_91379(contracts_dir, str(datatype))  # an unknown data type fails when contracts load
        return cls(contracts_dir, {str(k): str(v) for k, v in declared.items()})

    def finding(self, field: str, value: str, where: dict) -> Finding | None:
        datatype = self.by_field.get(field) or self.by_field.get("*")
        if datatype is None or din_91379(self.contracts_dir, datatype).fullmatch(unicodedata.normalize("NFC", value)):
            return None
        bad = next((c for c in value if not din_91379(self.contracts_dir, datatype).fullmatch(c)), value[:1])
        return Finding(f"{describe(bad)} is not a character of DIN 91379 data type {datatype}, which this contract requires for {field}", **where)


def findings(texts: Iterable[tuple[str, dict, str]], rules: CharacterRules | None, limit: int = 100) -> list[Finding]:
    """Findings for the (field, where, value) texts of a message: characters XML cannot carry, and
    where `rules` say so, characters outside a field's DIN 91379 data type."""
    out: list[Finding] = []
    for field, where, value in texts:
        found = xml_finding(value, where) or (rules.finding(field, value, where) if rules else None)
        if found is not None:
            out.append(found)
            if len(out) >= limit:
                break
    return out
