"""The contracts are data that must hold together: every example validates and round-trips, every
format of every type has a compiled schema, and the CLI reports findings precisely."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hub.adapters import get_adapter
from hub.schemas.registry import Registry
from tests.conftest import CONTRACTS, ROOT

REGISTRY = Registry(CONTRACTS)
REQUIRED = [
    "person.stammdaten.0100",
    "zuweisung.anmeldung.1020",
    "teilnahme.anwesenheit.2030",
    "teilnahme.mitwirkung.2040",
    "administration.quittung.0020",
    "administration.rueckweisung.0010",
]
EXAMPLES = [(key, path) for key, c in sorted(REGISTRY.contracts.items()) for path in c.examples]


@pytest.mark.parametrize("message_type", REQUIRED)
def test_catalogue_has_version_1_0_in_agency_xml(message_type: str) -> None:
    assert (message_type, "1.0", "agency-xml") in REGISTRY.contracts, f"{message_type} 1.0 agency-xml missing"


@pytest.mark.parametrize("message_type", [t for t in REQUIRED if not t.startswith("person.")])
def test_catalogue_has_version_1_0_in_provider_json(message_type: str) -> None:
    assert (message_type, "1.0", "provider-json") in REGISTRY.contracts, f"{message_type} 1.0 provider-json missing"


def test_every_contract_has_an_example() -> None:
    lacking = [k for k, c in REGISTRY.contracts.items() if not c.examples]
    assert not lacking, f"contracts without examples: {lacking}"


@pytest.mark.parametrize(("key", "path"), EXAMPLES, ids=[f"{k[0]}-{k[2]}" for k, _ in EXAMPLES])
def test_example_validates_and_round_trips_through_its_adapter(key: tuple[str, str, str], path: Path) -> None:
    contract = REGISTRY.contracts[key]
    adapter = get_adapter(CONTRACTS, contract.format)
    data = path.read_bytes()
    findings = REGISTRY.validate(contract, adapter.parse(data))
    assert not findings, f"{path} does not validate: {findings}"
    message = adapter.decode(data)
    assert message.header.message_type == key[0]
    assert adapter.encode(message) == data, f"{path}: decode -> encode changed the bytes"


def test_provider_json_contracts_never_carry_agency_ids() -> None:
    for (t, v, f), c in REGISTRY.contracts.items():
        if f == "provider-json":
            text = c.schema_path.read_text()
            assert "customerNumber" not in text and "bgNumber" not in text, f"{t} {v} provider-json exposes agency ids"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_cli_validate_accepts_an_example() -> None:
    example = CONTRACTS / "messages/teilnahme.mitwirkung.2040/1.0/examples/example.json"
    r = run_cli("contracts", "validate", str(example))
    assert r.returncode == 0, r.stderr
    assert "valid against teilnahme.mitwirkung.2040 1.0" in r.stdout


def test_cli_validate_reports_every_finding_with_line_and_exits_1(tmp_path: Path) -> None:
    example = (CONTRACTS / "messages/zuweisung.anmeldung.1020/1.0/examples/example.xml").read_text()
    bad = example.replace("<fk:postleitzahl>01067</fk:postleitzahl>", "<fk:postleitzahl>1067</fk:postleitzahl>")
    bad = bad.replace("<fk:wochenstunden>25.0</fk:wochenstunden>", "<fk:wochenstunden>viel</fk:wochenstunden>")
    path = tmp_path / "bad.xml"
    path.write_text(bad)
    r = run_cli("contracts", "validate", str(path), "--json")
    assert r.returncode == 1, "an invalid file must exit 1"
    report = json.loads(r.stdout)
    lines = sorted(f["line"] for f in report["findings"])
    expected = sorted(i + 1 for i, line in enumerate(bad.splitlines()) if ">1067<" in line or ">viel<" in line)
    assert lines == expected, f"findings at {lines}, expected {expected}"
    assert "Traceback" not in r.stderr


def test_cli_validate_refuses_hostile_xml_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "xxe.xml"
    path.write_bytes(b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>')
    r = run_cli("contracts", "validate", str(path))
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "DOCTYPE" in r.stderr, r.stderr


def test_cli_validate_checks_every_record_of_a_batch_file_at_its_line(tmp_path: Path) -> None:
    """A municipal batch file holds many records: the CLI validates each one and names the lines of
    the file (it used to refuse the file as "one record per message over HTTP")."""
    from tests.test_adapter_edges import csv_file
    from tests.test_file_drop import record

    good = tmp_path / "stammdaten.csv"
    good.write_bytes(csv_file(record("Anna", "Groß"), record("Eva", "Klein"), record("Öznur", "Öztürk")))
    r = run_cli("contracts", "validate", str(good))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "valid against person.stammdaten.0100 1.0" in r.stdout and "3 records" in r.stdout and "HTTP" not in r.stdout + r.stderr, r.stdout

    bad = tmp_path / "fehler.csv"
    bad.write_bytes(csv_file(record("Anna", "Groß"), record("Eva", "Klein", postcode="1067"), record("Öznur", "Öztürk")))
    r = run_cli("contracts", "validate", str(bad), "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert not report["valid"] and {f["line"] for f in report["findings"]} == {3}, report
    assert "HTTP" not in r.stdout + r.stderr, r.stdout


def test_cli_usage_errors_exit_2() -> None:
    r = run_cli("contracts", "validate")
    assert r.returncode == 2, (r.returncode, r.stderr)
    r = run_cli("contracts", "validate", "/no/such/file.xml")
    assert r.returncode == 2 and "not a readable file" in r.stderr


def test_cli_contracts_check_passes_on_the_shipped_contracts() -> None:
    r = run_cli("contracts", "check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_cli_contracts_list_as_json() -> None:
    r = run_cli("contracts", "list", "--json")
    assert r.returncode == 0, r.stderr
    types = {c["message_type"] for c in json.loads(r.stdout)}
    assert set(REQUIRED) <= types


def _mutations(node: object, path: tuple = ()):  # noqa: ANN202
    """Broken variants of a JSON document: each value dropped, mistyped, emptied or misformatted, and
    an unknown member added to each object."""
    if isinstance(node, dict):
        yield path + ("<unknown member>",), {**node, "zzUnknown": "x"}
        for key, value in node.items():
            yield path + (key, "<dropped>"), {k: v for k, v in node.items() if k != key}
            for where, variant in _mutations(value, path + (key,)):
                yield where, {**node, key: variant}
    elif isinstance(node, list):
        for i, value in enumerate(node):
            for where, variant in _mutations(value, path + (i,)):
                yield where, [*node[:i], variant, *node[i + 1 :]]
    elif isinstance(node, str):
        yield path + ("<int>",), 42
        yield path + ("<empty>",), ""
        yield path + ("<bad date>",), "2024-13-45"
        yield path + ("<long>",), "x" * 5000
    elif isinstance(node, bool) or node is None:
        yield path + ("<str>",), "yes"
    elif isinstance(node, (int, float)):
        yield path + ("<str>",), "12"
        yield path + ("<negative>",), -1


JSON_EXAMPLES = [(key, path) for key, path in EXAMPLES if key[2] == "provider-json"]


@pytest.mark.parametrize(("key", "path"), JSON_EXAMPLES, ids=[f"{k[0]}-{k[1]}" for k, _ in JSON_EXAMPLES])
def test_the_fast_json_verdict_never_passes_what_jsonschema_refuses(key: tuple[str, str, str], path: Path) -> None:
    """The hot path asks jsonschema-rs "valid?" and asks jsonschema for findings only when the answer
    is no; so on every example and hundreds of broken variants of it, the fast verdict must never call
    valid what jsonschema refuses."""
    schema = REGISTRY.contracts[key].schema_path
    fast, full = REGISTRY.json_verdict(schema), REGISTRY.json_validator(schema)
    document = json.loads(path.read_bytes())
    assert fast(document), f"{path}: the fast verdict refuses a valid example"
    missed = [where for where, variant in _mutations(document) if fast(variant) and list(full.iter_errors(variant))]
    assert not missed, f"{path}: jsonschema-rs passed variants jsonschema refuses: {missed[:5]}"
