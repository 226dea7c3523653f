"""Interface documentation (issue 4, part 5): static HTML generated from the contract files.

The field tables must come from the schemas themselves, so these tests read the schema-derived rows
as well as the rendered pages, and compare the pages against the contract data rather than copies of it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from markupsafe import escape

from hub.api.app import create_app
from hub.schemas.codelists import load_codelists
from hub.partners import load_partners
from hub.runtime import Hub
from hub.interface.docs import json_field_table, render_docs, xsd_field_table
from hub.schemas.registry import Registry

from .conftest import CONTRACTS, PROVIDER, ROOT

MITWIRKUNG = "teilnahme.mitwirkung.2040"
MITWIRKUNG_DIR = CONTRACTS / "messages" / MITWIRKUNG / "1.0"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("docs")
    return out, render_docs(CONTRACTS, out)


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_one_page_per_partner_and_per_type_and_version(rendered: tuple[Path, list[Path]]) -> None:
    out, pages = rendered
    registry = Registry(CONTRACTS)
    expected = {out / "index.html", out / "codelists.html"}
    expected |= {out / "partners" / f"{pid}.html" for pid in load_partners(CONTRACTS.resolve())}
    expected |= {out / "messages" / t / v / "index.html" for t, mt in registry.types.items() for v in mt.versions}
    assert set(pages) == expected
    assert all(p.is_file() for p in pages)
    index = text(out / "index.html")
    for t, mt in registry.types.items():
        for v in mt.versions:
            assert f'href="messages/{t}/{v}/index.html"' in index
    # the schema files are copied next to each page, with the shared parts their xs:include reaches
    for (t, v, _fmt), contract in registry.contracts.items():
        assert (out / "messages" / t / v / contract.schema_path.name).read_bytes() == contract.schema_path.read_bytes()
    assert (out / "common" / "agency-xml" / "1.0" / "baukasten.xsd").is_file()


def test_xsd_field_table_is_walked_from_the_schema() -> None:
    table = xsd_field_table(MITWIRKUNG_DIR / "agency-xml.xsd", MITWIRKUNG, load_codelists(CONTRACTS.resolve()))
    rows = {r.path: r for r in table.rows}
    assert table.root == MITWIRKUNG
    facts = rows["sachverhalt"]
    assert facts.doc == "the facts, stated without judgement"
    assert facts.cardinality == "1..1"
    assert ("max. Länge", "4000") in facts.constraints
    assert rows["bgNummer"].cardinality == "0..1"
    assert ("Muster", "[0-9]{5}[A-Z]{2}[0-9]{7}") in rows["bgNummer"].constraints
    # named types from the included baukasten are walked recursively
    assert rows["nachrichtenkopf/identifikation.nachricht/nachrichtenUUID"].type == "fk:UUID"
    assert rows["nachrichtenkopf/autor/kennung"].depth == 3  # root 0, nachrichtenkopf 1, autor 2
    assert rows["@version"].cardinality == "1..1"
    event = rows["ereignis"]
    assert event.doc == "event code"
    assert event.codelist is not None and event.codelist.key == "mitwirkungsereignis"
    assert event.codelist.uri == "urn:casechain:codeliste:mitwirkungsereignis"
    assert not event.codelist.warnings
    assert dict(event.enum)["nichtantritt"] == "Nichtantritt der Maßnahme"


def test_json_field_table_is_walked_from_the_schema() -> None:
    table = json_field_table(MITWIRKUNG_DIR / "provider-json.schema.json", load_codelists(CONTRACTS.resolve()))
    rows = {r.path: r for r in table.rows}
    assert rows["/body/facts"].required is True
    assert rows["/body/facts"].doc == "the facts, stated without judgement"
    assert rows["/body/decisionRequestedBy"].required is False
    assert ("Format", "date") in rows["/body/decisionRequestedBy"].constraints
    assert rows["/header/author"].type == "object (Party)"  # $ref resolved
    assert rows["/header/author/id"].required is True
    event = rows["/body/event"]
    assert event.codelist is not None and event.codelist.key == "mitwirkungsereignis"
    assert [v for v, _ in event.enum] == list(load_codelists(CONTRACTS.resolve())["mitwirkungsereignis"].codes)


def test_type_page_shows_fields_code_lists_examples_and_change_notes(rendered: tuple[Path, list[Path]]) -> None:
    out, _ = rendered
    page_dir = out / "messages" / MITWIRKUNG / "1.0"
    page = text(page_dir / "index.html")
    mt = Registry(CONTRACTS).types[MITWIRKUNG]
    assert escape(mt.title) in page
    assert escape(mt.compatibility) in page
    assert escape(str(mt.versions["1.0"]["changes"])) in page
    # the field rows of both formats, with their annotations
    row = re.search(r'<tr class="d1 element" id="agency-xml-sachverhalt">.*?</tr>', page, re.S)
    assert row and "the facts, stated without judgement" in row.group(0) and "4000" in row.group(0)
    row = re.search(r'<tr class="d1 element" id="agency-xml-ereignis">.*?</tr>', page, re.S)
    assert row is not None
    for code in load_codelists(CONTRACTS.resolve())["mitwirkungsereignis"].codes:
        assert "<code title=" in row.group(0) and f">{code}</code>" in row.group(0)
    assert 'href="#cl-mitwirkungsereignis"' in row.group(0)
    assert 'id="provider-json-/body/facts"' in page
    # the code list with its meanings
    assert 'id="cl-mitwirkungsereignis"' in page and "Nichtantritt der Maßnahme" in page
    # examples escaped inside <pre>, schema files linked for download
    example = (page_dir / "examples" / "example.xml").read_text(encoding="utf-8")
    assert escape(example.strip().splitlines()[1]) in page
    assert "<fk:sachverhalt>" not in page and "&lt;fk:sachverhalt&gt;" in page
    assert 'href="agency-xml.xsd"' in page and 'href="provider-json.schema.json"' in page
    assert 'href="examples/example.json"' in page


def test_partner_page_lists_flows_deadlines_contacts_and_purposes(rendered: tuple[Path, list[Path]]) -> None:
    out, _ = rendered
    partner = load_partners(CONTRACTS.resolve())[PROVIDER]
    page = text(out / "partners" / f"{PROVIDER}.html")
    assert escape(partner.name) in page
    sends = page.split('id="sendet"')[1].split('id="empfaengt"')[0]
    receives = page.split('id="empfaengt"')[1].split('id="zwecke"')[0]
    for code in partner.sends:
        assert f"<code>{code}</code>" in sends
    for code in partner.receives:
        assert f"<code>{code}</code>" in receives
    assert "Provider JSON" in sends and f"<td>{partner.version}" in sends
    for deadline in partner.profile["quality"]:  # e.g. "Monthly attendance (2030) by the 8th of the following month."
        assert escape(deadline) in page
    for contact in partner.profile["contacts"]:
        assert f'href="mailto:{contact["email"]}"' in page
    assert escape(partner.profile["description"]) in page
    for purpose in partner.purposes:
        assert f'id="zweck-{purpose}"' in page
    assert "<code>participant.given_name</code>" in page  # what massnahmedurchfuehrung lets it see


def test_everything_is_escaped_and_drift_is_shown(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, contracts)
    profile_path = contracts / "partners" / f"{PROVIDER}.yaml"
    profile = yaml.safe_load(profile_path.read_text(encoding="utf-8"))
    profile["description"] = "<script>alert('x')</script> & Co."
    profile["quality"] = ["Reports within <b>3</b> days"]
    profile_path.write_text(yaml.safe_dump(profile, allow_unicode=True), encoding="utf-8")
    codelist_path = contracts / "codelists" / "mitwirkungsereignis.yaml"
    codelist = yaml.safe_load(codelist_path.read_text(encoding="utf-8"))
    del codelist["codes"]["nichtantritt"]
    codelist_path.write_text(yaml.safe_dump(codelist, allow_unicode=True), encoding="utf-8")

    out = tmp_path / "out"
    render_docs(contracts, out)
    page = text(out / "partners" / f"{PROVIDER}.html")
    assert "<script>" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co." in page
    assert "&lt;b&gt;3&lt;/b&gt;" in page
    type_page = text(out / "messages" / MITWIRKUNG / "1.0" / "index.html")
    assert "Abweichung: im Schema, nicht in der Codeliste: nichtantritt" in type_page


def test_hub_serves_the_pages_under_docs_interfaces_without_a_token(hub: Hub) -> None:
    client = TestClient(create_app(hub, role="api"))
    index = client.get("/docs/interfaces/")
    assert index.status_code == 200, index.text
    assert index.headers["content-type"].startswith("text/html")
    assert "Schnittstellendokumentation" in index.text
    assert "default-src 'none'" in index.headers["content-security-policy"]
    assert client.get("/docs/interfaces", follow_redirects=True).url.path == "/docs/interfaces/"

    page = client.get(f"/docs/interfaces/messages/{MITWIRKUNG}/1.0/")
    assert page.status_code == 200 and "sachverhalt" in page.text
    assert client.get(f"/docs/interfaces/messages/{MITWIRKUNG}/1.0/index.html").text == page.text
    partner = client.get(f"/docs/interfaces/partners/{PROVIDER}.html")
    assert partner.status_code == 200 and "Qualitätsstandards" in partner.text
    schema = client.get(f"/docs/interfaces/messages/{MITWIRKUNG}/1.0/agency-xml.xsd")
    assert schema.status_code == 200 and b"xs:schema" in schema.content

    missing = client.get("/docs/interfaces/messages/nope/1.0/")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    assert client.get("/docs/interfaces/..%2F..%2Fpyproject.toml").status_code == 404
    # FastAPI's own Swagger UI still lives at /docs, and the partner API still wants a token
    assert client.get("/docs").status_code == 200 and "swagger" in client.get("/docs").text.lower()
    assert client.get("/v1/contracts").status_code == 401


def test_cli_writes_the_pages(tmp_path: Path) -> None:
    out = tmp_path / "site"
    env = {**os.environ, "HUB_CONTRACTS_DIR": str(CONTRACTS), "HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}"}
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "contracts", "docs", "--out", str(out)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    written = sorted(out.rglob("*.html"))
    assert result.stdout.startswith(f"{len(written)} pages written")
    assert (out / "index.html").is_file() and (out / "partners" / f"{PROVIDER}.html").is_file()

    (tmp_path / "file").write_text("x")
    refused = subprocess.run(
        [sys.executable, "-m", "hub.cli", "contracts", "docs", "--out", str(tmp_path / "file")],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
