"""The OpenAPI document and /docs as a partner's integrator meets them: the message bodies in the
media types the hub takes, the bearer scheme Swagger UI's Authorize needs, problem+json errors with
their findings, words written for partners, a Swagger UI that works on a network without internet --
and POST /v1/validate, which answers what POST /v1/messages would without storing anything."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from fastapi.testclient import TestClient

from hub.adapters import format_names, get_adapter
from hub.runtime import Hub
from tests.conftest import CONTRACTS, JOBCENTER, ROOT, agency_sample, encode
from tests.test_adapter_edges import client, csv_file, post_as, stored  # noqa: F401 - client is a fixture
from tests.test_file_drop import PARTNER, record

PROBLEM = "application/problem+json"
OPERATIONS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    r = client.get("/openapi.json")
    assert r.status_code == 200, r.text
    return r.json()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in document["paths"].items() for method, op in item.items() if method in OPERATIONS]


def against(document: dict[str, Any], name: str, instance: Any) -> None:
    """Validate `instance` against the document's component schema `name` (its $refs resolved)."""
    jsonschema.validate(instance, {"$ref": f"#/components/schemas/{name}", "components": document["components"]})


# -- the request bodies ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/validate"])
def test_a_message_body_is_documented_in_every_media_type_the_hub_takes(document: dict[str, Any], path: str) -> None:
    body = document["paths"][path]["post"].get("requestBody")
    assert body, f"POST {path} documents no request body"
    assert body.get("required") is True
    media = set(body["content"])
    taken = {get_adapter(CONTRACTS, name).media_type for name in format_names(CONTRACTS)}
    assert taken <= media, f"POST {path} does not document {sorted(taken - media)}"
    assert {"application/xml", "application/json", "text/csv"} <= media
    assert "charset=iso-8859-15" in json.dumps(body).lower(), "the municipal CSV's encoding is not said"


def test_the_answers_of_a_submission_are_documented(document: dict[str, Any]) -> None:
    responses = document["paths"]["/v1/messages"]["post"]["responses"]
    for status in ("202", "200", "400", "401", "403", "413", "415", "422", "503"):
        assert status in responses, f"POST /v1/messages does not document its {status} answer"
    accepted = responses["202"]["content"]["application/json"]["schema"]
    against(document, accepted["$ref"].rsplit("/", 1)[1], {"id": "m-1", "status_url": "/v1/messages/m-1", "duplicate": False})
    assert "Location" in responses["202"].get("headers", {}), "the Location header of a 202 is not documented"


# -- authentication --------------------------------------------------------------------------------
def test_partner_endpoints_declare_the_bearer_scheme_swagger_ui_authorizes_with(document: dict[str, Any]) -> None:
    schemes = document.get("components", {}).get("securitySchemes", {})
    bearer = [name for name, scheme in schemes.items() if scheme.get("type") == "http" and scheme.get("scheme", "").lower() == "bearer"]
    assert len(bearer) == 1, f"no single HTTP bearer scheme: {schemes}"
    for path, method, op in operations(document):
        if path.startswith("/v1/"):
            assert {bearer[0]: []} in op.get("security", []), f"{method.upper()} {path} does not declare the bearer scheme"


def test_authentication_still_answers_401_problems(client: TestClient) -> None:
    for header in ({}, {"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "Bearer not-a-token"}):
        r = client.get("/v1/contracts", headers=header)
        assert r.status_code == 401, f"{header}: {r.status_code} {r.text}"
        assert r.headers["content-type"].startswith(PROBLEM) and r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["type"] == "urn:casechain:problem:unauthenticated"


# -- errors ---------------------------------------------------------------------------------------
def test_every_error_answer_is_documented_as_a_problem_and_nothing_as_a_validation_error(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert "HTTPValidationError" not in text and "ValidationError" not in document["components"]["schemas"]
    for path, method, op in operations(document):
        errors = {s: r for s, r in op["responses"].items() if s[0] in "45" or s == "default"}
        assert errors, f"{method.upper()} {path} documents no error answer"
        for status, response in errors.items():
            assert set(response.get("content", {})) == {PROBLEM}, f"{method.upper()} {path} {status}: {list(response.get('content', {}))}"
            assert response["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}, f"{method.upper()} {path} {status}"


def test_the_problem_schema_is_what_the_hub_sends(hub: Hub, client: TestClient, document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert {"type", "title", "status", "detail", "findings", "instance"} <= set(schemas["Problem"]["properties"])
    assert {"message", "location", "line", "column", "pointer"} <= set(schemas["Finding"]["properties"])
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "detail"}
    xml_data = agency_sample("person.stammdaten.0100")
    xml_data["body"]["person"]["given_name"] = "Jürgen ☺"
    sent = [
        post_as(hub, client, JOBCENTER, encode(hub, "agency-xml", xml_data), "application/xml"),  # 422, line and column
        post_as(hub, client, PARTNER, b'{"header": {}}', "application/json"),  # 415
        post_as(hub, client, JOBCENTER, b'{"x": 1}', "application/xml"),  # 400 malformed
    ]
    sent.append(client.get("/v1/inbox").json())  # 401
    sent.append(client.get("/v1/inbox", params={"limit": "many"}, headers=auth(hub, JOBCENTER)).json())  # 400 with a pointer
    assert [p["status"] for p in sent] == [422, 415, 400, 401, 400], sent
    for problem in sent:  # post_as's "status" is the answer's, the same as the problem's own
        against(document, "Problem", problem)
    assert any(f.get("line") for f in sent[0]["findings"]) and any(f.get("pointer") for f in sent[-1]["findings"])
    from hub.api.app import error_answer  # an unexpected failure: the 500 body has no findings

    against(document, "Problem", error_answer(RuntimeError("boom"), "/v1/inbox")[1])


def auth(hub: Hub, partner: str) -> dict[str, str]:
    from hub.store import db
    from hub.partners import issue_token

    with db.write(hub.engine) as conn:
        return {"Authorization": f"Bearer {issue_token(conn, partner)}"}


# -- words for partners ---------------------------------------------------------------------------
def test_descriptions_are_written_for_partners(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    for internal in ("MessageIntake", "ASGI", "declared here", "FastAPI", "router"):
        assert internal not in text, f"the OpenAPI document shows the internal note {internal!r}"
    for path, method, op in operations(document):
        assert op.get("summary"), f"{method.upper()} {path} has no summary"
    for path in ("/v1/messages", "/v1/validate"):
        assert len(document["paths"][path]["post"].get("description", "")) > 80, f"POST {path} is not described"


# -- Swagger UI without internet -------------------------------------------------------------------
def test_docs_loads_swagger_ui_from_the_hub_itself(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for url in re.findall(r"https?://[^\s\"'<>)]+", html):
        assert urlsplit(url).hostname in ("testserver", "localhost", "127.0.0.1"), f"/docs loads {url} from another host"
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    assert {Path(urlsplit(a).path).suffix for a in assets} >= set(kinds), f"/docs does not load the Swagger UI assets: {assets}"
    for asset in assets:
        r = client.get(asset)
        assert r.status_code == 200, f"{asset}: {r.status_code}"
        assert kinds[Path(urlsplit(asset).path).suffix] in r.headers["content-type"], f"{asset}: {r.headers['content-type']}"
    assert '"validatorUrl": null' in html, "Swagger UI would ask the online validator about the document"
    assert "/openapi.json" in html


def test_redoc_loads_nothing_from_another_host(client: TestClient) -> None:
    r = client.get("/redoc")
    assert r.status_code == 404 or not re.search(r"https?://(?!testserver)", r.text), "/redoc loads assets from another host"


def test_the_vendored_swagger_ui_is_package_data() -> None:
    """An installed wheel must carry the assets: each is matched by a package-data glob."""
    assets = ROOT / "hub" / "api" / "static" / "swagger-ui"
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["hub"]
    files = [p.relative_to(ROOT / "hub").as_posix() for p in assets.iterdir()]
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "README.md"} <= {Path(f).name for f in files}
    for name in files:
        assert any(fnmatch.fnmatch(name, g) for g in globs), f"{name} is not package data"


# -- POST /v1/validate -----------------------------------------------------------------------------
def test_a_valid_message_gets_a_verdict_and_is_not_stored(hub: Hub, client: TestClient) -> None:
    xml = encode(hub, "agency-xml", agency_sample("zuweisung.anmeldung.1020"))
    verdict = post_as(hub, client, JOBCENTER, xml, "application/xml", path="/v1/validate")
    assert verdict == {
        "status": 200,
        "valid": True,
        "message_type": "zuweisung.anmeldung.1020",
        "version": "1.0",
        "format": "agency-xml",
        "findings": [],
    }, verdict
    assert stored(hub) == 0, "a validated message was stored"
    assert post_as(hub, client, JOBCENTER, xml, "application/xml")["status"] == 202, "after /v1/validate the message is not new"


def test_a_valid_municipal_record_gets_a_verdict(hub: Hub, client: TestClient) -> None:
    verdict = post_as(hub, client, PARTNER, csv_file(record("Anna", "Test")), "text/csv; charset=ISO-8859-15", path="/v1/validate")
    assert verdict["status"] == 200 and verdict["valid"] is True and verdict["format"] == "municipal-csv", verdict
    assert stored(hub) == 0


def refused(hub: Hub) -> list[tuple[str, bytes, str]]:
    """(partner, body, media type) of messages the hub refuses, one per kind of check."""
    xml_data = agency_sample("person.stammdaten.0100")
    xml_data["body"]["person"]["given_name"] = "Jürgen ☺"
    other_sender = agency_sample("zuweisung.anmeldung.1020")
    return [
        (JOBCENTER, encode(hub, "agency-xml", xml_data), "application/xml"),  # characters: 422
        (PARTNER, csv_file(record("Anna", "Test"), record("Berta", "Test")), "text/csv"),  # two records: 422
        (PARTNER, encode(hub, "agency-xml", other_sender), "application/xml"),  # the wrong media type: 415
        (JOBCENTER, b"<nachricht>", "application/xml"),  # malformed: 400
        (PARTNER, csv_file(record("Anna", "Test")).replace(PARTNER.encode(), JOBCENTER.encode()), "text/csv"),  # not the sender: 403
    ]


def test_an_invalid_message_gets_the_same_problem_as_a_submission_and_nothing_is_stored(hub: Hub, client: TestClient) -> None:
    for partner, body, media in refused(hub):
        checked = post_as(hub, client, partner, body, media, path="/v1/validate")
        submitted = post_as(hub, client, partner, body, media)
        assert submitted["status"] >= 400, f"the example is not refused: {submitted}"
        assert checked.pop("instance") == "/v1/validate" and submitted.pop("instance") == "/v1/messages"
        assert checked == submitted, f"/v1/validate and /v1/messages disagree:\n{checked}\n{submitted}"
    assert stored(hub) == 0


def test_validate_answers_problem_json_and_wants_a_token(hub: Hub, client: TestClient) -> None:
    r = client.post("/v1/validate", content=b"<x/>", headers={"Content-Type": "application/xml"})
    assert r.status_code == 401 and r.headers["content-type"].startswith(PROBLEM), r.text
    r = client.post("/v1/validate", content=b"<nachricht>", headers={"Content-Type": "application/xml", **auth(hub, JOBCENTER)})
    assert r.status_code == 400 and r.headers["content-type"].startswith(PROBLEM), r.text
    big = b"<x>" + b"a" * hub.settings.max_message_bytes + b"</x>"
    r = client.post("/v1/validate", content=big, headers={"Content-Type": "application/xml", **auth(hub, JOBCENTER)})
    assert r.status_code == 413 and r.json()["type"] == "urn:casechain:problem:too-large", r.text
