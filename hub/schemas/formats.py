"""What a partner format is, as data: `contracts/formats/<name>.yaml`.

A format is one adapter module (syntax and naming: `hub.adapters`) plus this file: which adapter
class implements it, its media type, the schema file each contract version has for it and what kind
of schema that is (XSD, or JSON Schema for the whole message or per record of a batch file), the
extension of its example files and its title in the interface documentation. The registry, the
interface documentation and the samples read it here, so no other module spells out format names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

SCHEMA_KINDS = ("xsd", "json-schema")


@dataclass(frozen=True)
class Format:
    name: str
    #: "module:Class" of the adapter
    adapter: str
    media_type: str
    schema_file: str
    #: xsd | json-schema
    schema_kind: str
    #: the schema describes a whole message, or one record (a row of a batch file)
    per_record: bool
    extension: str
    title: str
    #: the rest of the file (name tables, defaults) for the adapter
    spec: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


class FormatError(ValueError):
    """A format file that does not say what a format must say; the message names the file."""


def _load(path: Path) -> Format:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    missing = [k for k in ("format", "adapter", "media_type", "schema", "extension") if k not in data]
    schema = data.get("schema") or {}
    if missing or not isinstance(schema, dict) or "file" not in schema:
        raise FormatError(f"{path}: a format names {', '.join(missing or ['schema.file'])}")
    if schema.get("kind") not in SCHEMA_KINDS:
        raise FormatError(f"{path}: schema.kind must be one of {', '.join(SCHEMA_KINDS)}, not {schema.get('kind')!r}")
    if data["format"] != path.stem:
        raise FormatError(f"{path}: format {data['format']!r} must be named like its file ({path.stem!r})")
    return Format(
        name=data["format"], adapter=data["adapter"], media_type=data["media_type"], schema_file=schema["file"],
        schema_kind=schema["kind"], per_record=schema.get("per") == "record", extension=str(data["extension"]).lstrip("."),
        title=str(data.get("title") or data["format"]), spec=data,
    )


@lru_cache(maxsize=None)
def formats_in(contracts_dir: Path) -> dict[str, Format]:
    """Every format of a contracts directory, by name, in file-name order."""
    return {f.name: f for f in (_load(p) for p in sorted((contracts_dir / "formats").glob("*.yaml")))}
