"""Offline validation for integrators: a message file against its contract, and every contract's
own consistency (examples valid and round-tripping through the adapters)."""

from __future__ import annotations

from hub.findings import Finding
from hub.runtime import Hub
from hub.schemas.registry import Contract


def sniff_format(data: bytes) -> str:
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return "agency-xml" if head == b"<" else "provider-json"


def validate_file(hub: Hub, data: bytes) -> tuple[Contract, list[Finding]]:
    """The contract a message names and every finding against it (Refusal if it names none)."""
    fmt = sniff_format(data)
    adapter = hub.adapter(fmt)
    document = adapter.parse(data)
    head = adapter.peek_header(data, document)
    contract = hub.registry.get(head["message_type"], head["version"], fmt)
    return contract, hub.registry.validate(contract, document)


def check_contracts(hub: Hub) -> list[str]:
    problems = []
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
