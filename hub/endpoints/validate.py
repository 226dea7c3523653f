"""Offline validation for integrators: a message file against its contract, and every contract's
own consistency (examples valid and round-tripping through the adapters)."""

from __future__ import annotations

import json
from typing import Any

from lxml import etree

from hub.chain import controlling
from hub.chain.steering import Steering, profile_problems
from hub.yaml_lines import ContractError
from hub.findings import Finding, Findings, Refusal
from hub.schemas import characters, compat
from hub.runtime import Hub
from hub.schemas.registry import Contract


def sniff_format(hub: Hub, data: bytes) -> str:
    """The format a file looks like, asked of each format's adapter (`Adapter.sniff`)."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    for name in hub.registry.format_specs:
        if type(hub.adapter(name)).sniff(head):
            return name
    raise Refusal(
        "malformed", "The file is in none of the hub's formats",
        [Finding(f"expected one of: {', '.join(f'{f.name} ({f.media_type})' for f in hub.registry.format_specs.values())}")],
    )


def validate_file(hub: Hub, data: bytes) -> tuple[str, list[Finding]]:
    """The contract a message names and every finding against it (Refusal if it names none).

    Messages of an onboarded external XÖV standard (contracts/standards/) are recognised by their
    root namespace and validated against that standard, imports resolved offline via its catalog.
    """
    fmt = sniff_format(hub, data)
    adapter = hub.adapter(fmt)
    if hub.registry.format_specs[fmt].per_record:  # a batch file: many records, one message each
        records = adapter.split(data)
        if len(records) > 1:
            return _validate_batch(hub, fmt, records)
    document = adapter.parse(data)
    if hub.registry.format_specs[fmt].schema_kind == "xsd":
        namespace = etree.QName(document).namespace
        standard = hub.registry.standards.get(namespace or "")
        if standard is not None:
            name = f"{standard.name} {standard.version} ({etree.QName(document).localname})"
            return name, hub.registry.validate_standard(standard, document, hub.settings.validation_seconds)
    head = adapter.peek_header(data, document)
    contract = hub.registry.get(head["message_type"], head["version"], fmt)
    problem = contract_problem(hub, data, document, contract)
    return f"{contract.message_type} {contract.version} ({contract.format})", problem.findings if problem else []


def _validate_batch(hub: Hub, fmt: str, records: list[tuple[int, bytes]]) -> tuple[str, Findings]:
    """A batch file (municipal CSV) record by record, as the file drop takes it: every record against its
    own contract, each finding (or refusal) at the line of the file the record starts on."""
    contracts: set[str] = set()
    findings = Findings()
    for line, record in records:
        try:
            contract, found = validate_file(hub, record)
        except Refusal as refusal:
            found = refusal.findings or [Finding(refusal.detail)]
            found = [Finding(f"{refusal.detail} ({f.message})" if refusal.findings else f.message, f.line, f.column) for f in found]
        else:
            contracts.add(contract.rsplit(" (", 1)[0])
        # in the single-record file the record starts on line 2, after the header line (line 1 in both)
        findings += [Finding(f.message, line - 2 + f.line if f.line and f.line > 1 else (f.line or line), f.column) for f in found]
    return f"{', '.join(sorted(contracts)) or 'no contract'} ({fmt}), each of its {len(records)} records", findings


def contract_problem(hub: Hub, data: bytes, document: Any, contract: Contract) -> Refusal | None:
    """What is wrong with a parsed message against its contract, as ingress refuses it: the schema's
    findings (hub.findings.Report), else characters the contract or XML do not allow; None if nothing."""
    findings = hub.registry.validate(contract, document, hub.settings.validation_seconds)
    if findings:
        count = findings.summary() if isinstance(findings, Findings) else f"{len(findings)} finding(s)"
        return Refusal("schema-invalid", f"The message does not satisfy {contract.message_type} {contract.version} ({contract.format}): {count}", findings)
    rules = hub.registry.types[contract.message_type].characters
    found = characters.findings(hub.adapter(contract.format).texts(data, document, contract, every=rules is not None), rules)
    if found:
        return Refusal("schema-invalid", f"The message holds characters that {contract.message_type} does not allow", found)
    return None


def _major(version: str) -> int:
    return int(version.split(".")[0])


def check_compatibility(hub: Hub) -> list[str]:
    """Each type's declared level (contract.yaml `compatibility`) holds between its versions.

    Levels apply within a major version, as in semantic versioning: a new major version (declared
    `breaking: true`) starts a new line, and the hub translates across lines instead.
    """
    problems = []
    for code, mt in sorted(hub.registry.types.items()):
        for fmt, kind in ((f.name, "xsd" if f.schema_kind == "xsd" else "json") for f in hub.registry.format_specs.values() if not f.per_record):
            versions = hub.registry.versions(code, fmt)
            for major in sorted({_major(v) for v in versions}):
                line = [v for v in versions if _major(v) == major]
                if major > 1 and not any(mt.versions.get(v, {}).get("breaking") for v in line):
                    problems.append(f"{code} {line[0]} ({fmt}): a new major version must be declared `breaking: true`")
                schemas = [(v, _schema_for(hub.registry.contracts[(code, v, fmt)], kind)) for v in line]
                for violation in compat.check(mt.compatibility, schemas, kind):
                    problems.append(f"{code} ({fmt}): {violation}")
    return problems


def _schema_for(contract: Contract, kind: str) -> Any:
    return contract.schema_path if kind == "xsd" else json.loads(contract.schema_path.read_text(encoding="utf-8"))


def chain_problems(hub: Hub) -> list[str]:
    """The case chain's contracts (lifecycle, rules, measures, what controlling counts) and the profiles' deadlines."""
    try:
        steering = Steering.load(hub.contracts_dir)
        controlling.Definition.load(hub.contracts_dir)
    except ContractError as exc:
        return [str(exc)]
    return profile_problems(steering, hub.partners, hub.contracts_dir)


def check_contracts(hub: Hub) -> list[str]:
    problems = check_compatibility(hub) + chain_problems(hub)
    for key, contract in sorted(hub.registry.contracts.items()):
        name = " ".join(key)
        if not contract.examples:
            problems.append(f"{name}: no example")
        adapter = hub.adapter(contract.format)
        for example in contract.examples:
            data = example.read_bytes()
            findings = hub.registry.validate(contract, adapter.parse(data))
            for f in findings:
                problems.append(f"{example}:{f.location}: {f.message}")
            if not findings and adapter.decode(adapter.encode(adapter.decode(data))) != adapter.decode(data):
                problems.append(f"{example}: does not round-trip through the {contract.format} adapter")
    return problems
