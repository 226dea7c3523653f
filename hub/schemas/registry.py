"""The contract registry: contracts/ loaded, schemas compiled once and cached, messages validated.

A contract is (message type, version, format). Validation on the hot path uses lxml's compiled
XMLSchema (libxml2, C speed) and a compiled jsonschema validator; xmlschema is used only where schema
introspection is needed (documentation, compatibility), never per message.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import jsonschema_rs
import yaml
from lxml import etree

from hub.findings import Finding, Refusal, Report, clock
from hub.schemas.characters import CharacterRules
from hub.schemas.formats import formats_in
from hub.schemas.translator import VersionMap



#: seconds the report of one failing validation may take (HUB_VALIDATION_SECONDS sets the hub's)
DEFAULT_BUDGET = 2.0


@dataclass(frozen=True)
class Contract:
    message_type: str
    version: str
    format: str
    schema_path: Path
    #: the format's schema kind (xsd | json-schema) and whether the schema is one record's (formats.py)
    kind: str = "xsd"
    per_record: bool = False
    extension: str = "xml"

    @property
    def examples(self) -> list[Path]:
        return sorted((self.schema_path.parent / "examples").glob(f"*.{self.extension}"))


@dataclass(frozen=True)
class Standard:
    """An external XÖV standard onboarded offline (contracts/standards/*.yaml)."""

    name: str
    version: str
    namespace: str
    schema_path: Path
    catalog_path: Path | None


@dataclass
class MessageType:
    code: str
    title: str
    description: str
    compatibility: str
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: DIN 91379 data types its text fields keep to (contract.yaml `characters`), or None
    characters: CharacterRules | None = None


class Registry:
    """Reads contracts/messages/*/contract.yaml and the schema files beside them."""

    def __init__(self, contracts_dir: Path) -> None:
        self.dir = Path(contracts_dir)
        self.format_specs = formats_in(self.dir.resolve())
        self.types: dict[str, MessageType] = {}
        self.contracts: dict[tuple[str, str, str], Contract] = {}
        for meta_path in sorted((self.dir / "messages").glob("*/contract.yaml")):
            meta = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
            mt = MessageType(
                code=meta["message_type"],
                title=meta.get("title", meta["message_type"]),
                description=meta.get("description", ""),
                compatibility=meta.get("compatibility", "BACKWARD"),
                versions={str(k): v or {} for k, v in meta.get("versions", {}).items()},
                characters=CharacterRules.of(self.dir, meta.get("characters")),
            )
            self.types[mt.code] = mt
            for version in mt.versions:
                for fmt in self.format_specs.values():
                    path = (meta_path.parent / version / fmt.schema_file).resolve()
                    if path.exists():
                        self.contracts[(mt.code, version, fmt.name)] = Contract(
                            mt.code, version, fmt.name, path, fmt.schema_kind, fmt.per_record, fmt.extension
                        )
        self.standards: dict[str, Standard] = {}
        for path in sorted((self.dir / "standards").glob("*.yaml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            schema = (path.parent / data["schema"]).resolve()
            if not schema.exists():
                continue  # an optional standard whose files are not installed here
            catalog = (path.parent / data["catalog"]).resolve() if data.get("catalog") else None
            self.standards[data["namespace"]] = Standard(data["name"], str(data["version"]), data["namespace"], schema, catalog)
        self._version_maps = {
            (code, v): VersionMap.from_data(meta.get("to_canonical")) for code, mt in self.types.items() for v, meta in mt.versions.items()
        }
        self._local = threading.local()
        self._json_validators: dict[Path, jsonschema.protocols.Validator] = {}
        self._json_verdicts: dict[Path, Callable[[Any], bool]] = {}
        self._versions: dict[tuple[str, str], list[str]] = {}
        self._reporters: dict[Path, Any] = {}

    def version_map(self, message_type: str, version: str) -> VersionMap:
        """How a version's body maps onto the canonical model (contract.yaml: versions.<v>.to_canonical)."""
        return self._version_maps.get((message_type, version)) or VersionMap()

    @property
    def formats(self) -> frozenset[str]:
        return frozenset(self.format_specs)

    def get(self, message_type: str | None, version: str | None, fmt: str) -> Contract:
        """The contract for a message, or a Refusal that says precisely what is missing.

        The names come from partner input: anything but a string (a JSON list, say) is refused like an
        unknown name, never looked up (a list is unhashable)."""
        if not isinstance(message_type, str) or message_type not in self.types:
            raise Refusal(
                "unknown-message-type",
                f"Message type {message_type!r} is not in the contract catalogue",
                [Finding(f"unknown message type {message_type!r}")],
            )
        contract = self.contracts.get((message_type, version, fmt)) if isinstance(version, str) else None
        if contract is None:
            known = sorted(v for (t, v, f) in self.contracts if t == message_type and f == fmt)
            raise Refusal(
                "unsupported-version",
                f"Version {version!r} of {message_type} is not supported in format {fmt}; supported: {', '.join(known) or 'none'}",
                [Finding(f"unsupported version {version!r}")],
            )
        return contract

    def versions(self, message_type: str, fmt: str) -> list[str]:
        """The versions of a type in a format, oldest first (asked for every delivery: computed once)."""
        key = (message_type, fmt)
        found = self._versions.get(key)
        if found is None:
            found = self._versions[key] = sorted(
                (v for (t, v, f) in self.contracts if t == message_type and f == fmt), key=lambda v: tuple(int(p) for p in v.split("."))
            )
        return list(found)

    # -- validation --------------------------------------------------------------------------------
    def xml_schema(self, path: Path) -> etree.XMLSchema:
        # XMLSchema objects keep their error log on the instance: one compiled copy per thread.
        cache = self._local.__dict__.setdefault("xsd", {})
        schema = cache.get(path)
        if schema is None:
            parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
            schema = cache[path] = etree.XMLSchema(etree.parse(str(path), parser))
        return schema

    def _complete_xml_findings(self, schema_path: Path, catalog: Path | None, document: Any, quick: list[Finding], report: Report) -> list[Finding]:
        """libxml2's findings completed by xmlschema's, within the report's limit and budget.

        libxml2's findings carry columns; xmlschema adds the lines libxml2 never reached. Where the
        budget does not allow xmlschema's check (a message of very many elements), the report is
        libxml2's: one finding per element whose content is wrong, and says so."""
        from hub.schemas.catalog import BudgetExceeded, iter_xmlschema_findings, xmlschema_schema

        reporter = self._reporters.get(schema_path)
        if reporter is None:
            compiling = clock()
            reporter = self._reporters[schema_path] = xmlschema_schema(schema_path, catalog)
            report.exempt(clock() - compiling)
        covered = {f.line for f in quick}
        report.collect(quick)
        try:
            for f in iter_xmlschema_findings(reporter, document.getroottree(), report.deadline):
                if f.line not in covered and not report.add(Finding(f.message, line=f.line, column=f.column)):
                    break
                if report.spent:
                    report.stop(f"checking took longer than the budget of {report.seconds:g} s")
                    break
        except BudgetExceeded:
            report.stop(
                f"the message has too many elements to check them all within the budget of {report.seconds:g} s; "
                "listed is the first finding in each element whose content is wrong"
            )
        return report.findings(order=lambda f: (f.line or 0, f.column or 0))

    def standard_schema(self, standard: Standard) -> etree.XMLSchema:
        from hub.schemas.catalog import compile_xsd

        cache = self._local.__dict__.setdefault("std", {})
        if standard.namespace not in cache:
            cache[standard.namespace] = compile_xsd(standard.schema_path, standard.catalog_path)
        return cache[standard.namespace]

    def validate_standard(self, standard: Standard, root: Any, seconds: float | None = DEFAULT_BUDGET) -> list[Finding]:
        """Validate a message of an onboarded XÖV standard, imports resolved through its catalog."""
        schema = self.standard_schema(standard)
        if schema.validate(root):
            return []
        return self._complete_xml_findings(standard.schema_path, standard.catalog_path, root, _libxml2_findings(schema), Report(seconds))

    def json_validator(self, path: Path) -> jsonschema.protocols.Validator:
        validator = self._json_validators.get(path)
        if validator is None:
            schema = json.loads(path.read_text(encoding="utf-8"))
            cls = jsonschema.validators.validator_for(schema)
            validator = self._json_validators[path] = cls(schema, format_checker=cls.FORMAT_CHECKER)
        return validator

    def json_verdict(self, path: Path) -> Callable[[Any], bool]:
        """A fast yes/no for JSON documents (jsonschema-rs, compiled; ~100x jsonschema's speed).

        The hot path asks only "valid?"; when the answer is no, `jsonschema` writes the findings,
        as xmlschema does behind lxml for XML. A test holds the two to the same verdict on every
        example of every contract."""
        verdict = self._json_verdicts.get(path)
        if verdict is None:
            schema = json.loads(path.read_text(encoding="utf-8"))
            verdict = self._json_verdicts[path] = jsonschema_rs.validator_for(schema, validate_formats=True).is_valid
        return verdict

    def validate(self, contract: Contract, document: Any, seconds: float | None = DEFAULT_BUDGET) -> list[Finding]:
        """The findings of `document` (an lxml element or parsed JSON) against its contract: at most
        MAX_FINDINGS of them and a count of the rest, found within `seconds` (hub.findings.Report).

        The verdict is a compiled validator's (libxml2 for XML, jsonschema-rs for JSON), in time linear
        in the message. Only a message that fails gets a report: libxml2 stops at the first
        content-model error inside an element, so xmlschema completes its report; jsonschema writes
        the JSON one. Both are slow, so the report has a limit and a time budget (HUB_VALIDATION_SECONDS)."""
        if contract.kind == "xsd":
            schema = self.xml_schema(contract.schema_path)
            if schema.validate(document):
                return []
            return self._complete_xml_findings(contract.schema_path, None, document, _libxml2_findings(schema), Report(seconds))
        verdict = self.json_verdict(contract.schema_path)
        if contract.per_record:  # one row per record: findings at line and column
            if all(verdict(row) for _, row in document):
                return []
            return Report(seconds).collect(self._row_findings(contract, document)).findings()
        if verdict(document):
            return []
        validator = self.json_validator(contract.schema_path)
        errors = (Finding(error.message, pointer=_pointer(error.absolute_path)) for error in validator.iter_errors(document))
        return Report(seconds).collect(errors).findings(order=lambda f: f.pointer.split("/"))

    def _row_findings(self, contract: Contract, document: Any) -> Iterator[Finding]:
        validator = self.json_validator(contract.schema_path)
        columns = document.columns
        for line, row in document:
            for error in validator.iter_errors(row):
                column = str(error.absolute_path[0]) if error.absolute_path else None
                position = columns.index(column) + 1 if column in columns else None
                prefix = f"column {column}: " if column else ""
                yield Finding(prefix + error.message, line=line, column=position)

    @cached_property
    def catalogue(self) -> list[dict[str, Any]]:
        return [
            {
                "message_type": mt.code,
                "title": mt.title,
                "compatibility": mt.compatibility,
                "versions": {
                    v: sorted(f for (t, ver, f) in self.contracts if t == mt.code and ver == v) for v in mt.versions
                },
            }
            for mt in self.types.values()
        ]


def _libxml2_findings(schema: etree.XMLSchema) -> list[Finding]:
    """libxml2's own findings of the last validation (at most one per element content model)."""
    return [Finding(e.message, line=e.line, column=e.column) for e in schema.error_log]


def _pointer(path: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


@lru_cache(maxsize=None)
def registry_for(contracts_dir: Path) -> Registry:
    """One registry per contracts directory and process: compiled schemas are shared."""
    return Registry(contracts_dir)
