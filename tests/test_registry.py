"""The registry as integrators meet it: declared compatibility enforced, a real XÖV standard
onboarded offline, and every finding of a message reported, not just the first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hub.schemas.registry import Registry
from tests.conftest import CONTRACTS, ROOT

XWASSER = ROOT / "contracts" / "standards" / "xwasser-1.0.0"


def run_cli(*args: str, contracts: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"HUB_CONTRACTS_DIR": str(contracts)} if contracts else {})}
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def contracts_copy(tmp_path: Path) -> Path:
    target = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, target)
    return target


def add_version(contracts: Path, message_type: str, version: str, mutate) -> None:  # noqa: ANN001
    base = contracts / "messages" / message_type
    shutil.copytree(base / "1.1", base / version)
    schema_path = base / version / "provider-json.schema.json"
    schema = json.loads(schema_path.read_text())
    mutate(schema["properties"]["body"])
    schema_path.write_text(json.dumps(schema))
    (base / version / "agency-xml.xsd").unlink()  # only the JSON line is under test
    meta = base / "contract.yaml"
    meta.write_text(meta.read_text() + f"  '{version}':\n    status: draft\n    changes: test\n")


def test_check_passes_on_shipped_contracts() -> None:
    r = run_cli("contracts", "check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_fails_and_names_the_change_when_a_version_breaks_its_level(contracts_copy: Path) -> None:
    def remove_required_field(body: dict) -> None:
        body["properties"].pop("facts")
        body["required"].remove("facts")

    add_version(contracts_copy, "teilnahme.mitwirkung.2040", "1.2", remove_required_field)
    r = run_cli("contracts", "check", contracts=contracts_copy)
    assert r.returncode == 1, "a breaking 1.2 under BACKWARD must fail the check"
    assert "1.2" in r.stdout and "facts" in r.stdout and "removed" in r.stdout, r.stdout


def test_check_accepts_an_additive_version(contracts_copy: Path) -> None:
    def add_optional(body: dict) -> None:
        body["properties"]["remark"] = {"type": "string", "maxLength": 200}

    add_version(contracts_copy, "teilnahme.mitwirkung.2040", "1.2", add_optional)
    r = run_cli("contracts", "check", contracts=contracts_copy)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_published_xoev_standard_ships_with_the_contracts() -> None:
    """The XWasser tests below read the standard shipped in contracts/standards/; without it they
    would collect nothing and pass silently."""
    assert sorted(p.name for p in (XWASSER / "examples" / "valid").glob("*.xml")), f"no XWasser 1.0.0 examples at {XWASSER}"


@pytest.mark.parametrize("example", sorted((XWASSER / "examples" / "valid").glob("*.xml")), ids=lambda p: p.name)
def test_real_xoev_standard_valid_examples_pass_offline(example: Path) -> None:
    r = run_cli("contracts", "validate", str(example))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "valid against XWasser 1.0.0" in r.stdout


def test_real_xoev_standard_version_drift_is_refused_with_all_three_findings() -> None:
    r = run_cli("contracts", "validate", str(XWASSER / "examples" / "invalid" / "monitoring_plan_minimal.xml"), "--json")
    assert r.returncode == 1
    findings = json.loads(r.stdout)["findings"]
    assert [f["line"] for f in findings] == [74, 101, 119], findings
    assert "probennahmestelleKategorie" in findings[0]["message"]
    assert "listVersionID" in findings[1]["message"] and "listVersionID" in findings[2]["message"]


def test_every_finding_in_one_element_is_reported_not_just_the_first() -> None:
    """libxml2 stops at the first content-model error in an element; the registry must not."""
    registry = Registry(CONTRACTS)
    contract = registry.contracts[("zuweisung.anmeldung.1020", "1.0", "agency-xml")]
    xml = contract.examples[0].read_text()
    xml = xml.replace("<fk:beginn>2026-12-01</fk:beginn>", "<fk:beginn>morgen</fk:beginn>")
    xml = xml.replace("<fk:zeitplan>Mo-Fr 8:00-13:00</fk:zeitplan>\n", "")
    xml = xml.replace("<fk:wochenstunden>25.0</fk:wochenstunden>", "<fk:wochenstunden>x</fk:wochenstunden>")
    from hub.schemas import safe_xml

    findings = registry.validate(contract, safe_xml.parse(xml.encode()))
    lines = {f.line for f in findings}
    expected = {i + 1 for i, line in enumerate(xml.splitlines()) if ">morgen<" in line or ">x<" in line}
    assert expected <= lines, f"expected findings at {expected}, got {[(f.line, f.message) for f in findings]}"


def test_partners_add_writes_a_profile_that_the_rules_can_route_to(contracts_copy: Path, tmp_path: Path) -> None:
    r = run_cli("partners", "add", "traeger-neu", "--name", "Neuer Träger", "--role", "provider", contracts=contracts_copy)
    assert r.returncode == 0, r.stderr
    import yaml

    profile = yaml.safe_load((contracts_copy / "partners" / "traeger-neu.yaml").read_text())
    assert "teilnahme.mitwirkung.2040" in profile["sends"] and "zuweisung.anmeldung.1020" in profile["receives"]
    assert "massnahmedurchfuehrung" in profile["purposes"]
    again = run_cli("partners", "add", "traeger-neu", "--name", "X", "--role", "provider", contracts=contracts_copy)
    assert again.returncode == 1 and "already exists" in again.stderr
    listed = run_cli("partners", "list", "--json", contracts=contracts_copy)
    assert "traeger-neu" in {p["id"] for p in json.loads(listed.stdout)}
