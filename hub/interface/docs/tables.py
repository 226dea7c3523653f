"""The field table of one contract: one row per element, attribute or property, as the pages show it.

Why a module of its own: the XSD and JSON Schema walkers fill the same rows, so the templates render
one shape whatever the schema language; a table carries the reading error instead of raising, so a
broken schema shows up on its page rather than taking the documentation down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.interface.docs.codelists import CodeListRef


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
