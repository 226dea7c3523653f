"""Every way a message can be refused: the right status, precise findings, nothing stored, the hub
keeps serving. Run against a live `hub serve`, as a partner would meet them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from hub.store import db
from hub.runtime import Hub
from hub.store.tables import messages
from tests.conftest import JOBCENTER, PROVIDER, LiveHub, agency_sample, embedded_env, encode, hub_for, issue_tokens, new_uuid, post, provider_sample

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<foo>&xxe;</foo>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""


def count_messages(live: LiveHub) -> int:
    with db.read(live.hub.engine) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()


def assert_problem(r: httpx.Response, status: int, kind: str) -> dict:
    assert r.status_code == status, f"expected {status} {kind}, got {r.status_code}: {r.text}"
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    problem = r.json()
    assert problem["type"] == f"urn:casechain:problem:{kind}", problem
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert "Traceback" not in r.text and 'File "' not in r.text, "a traceback leaked to the partner"
    return problem


def jc_xml(live: LiveHub, **body) -> bytes:
    return encode(live.hub, "agency-xml", agency_sample("zuweisung.anmeldung.1020", **body))


def replace(data: bytes, old: str, new: str) -> bytes:
    assert old.encode() in data, f"{old!r} not in the message"
    return data.replace(old.encode(), new.encode(), 1)


@pytest.fixture(scope="module")
def live_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """One running hub for the module: every test here refuses input (or sends under fresh UUIDs) and
    checks what changed relative to before, so they need not each wait for a `hub serve` of their own."""
    env = embedded_env(tmp_path_factory.mktemp("rejections"))
    hub = hub_for(env)
    live = LiveHub(env, hub, issue_tokens(hub))
    live.start()
    yield live
    live.stop()
    hub.close()


@pytest.fixture
def jc(live_hub: LiveHub):
    with live_hub.client(JOBCENTER) as client:
        yield client


CASES = {
    # name: (build(live) -> (body, content type), partner, status, problem kind)
    "malformed XML": (lambda live: (b"<fk:zuweisung.anmeldung.1020><unclosed>", "application/xml"), JOBCENTER, 400, "malformed"),
    "XXE": (lambda live: (XXE, "application/xml"), JOBCENTER, 400, "forbidden-construct"),
    "billion laughs": (lambda live: (BILLION_LAUGHS, "application/xml"), JOBCENTER, 400, "forbidden-construct"),
    "XXE in UTF-16": (lambda live: (XXE.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16"), "application/xml"), JOBCENTER, 400, "forbidden-construct"),
    "schema-invalid XML": (lambda live: (replace(jc_xml(live), "<fk:code>06</fk:code>", "<fk:code>6x</fk:code>"), "application/xml"), JOBCENTER, 422, "schema-invalid"),
    "unknown message type": (lambda live: (jc_xml(live).replace(b"zuweisung.anmeldung.1020", b"zuweisung.erfunden.9999"), "application/xml"), JOBCENTER, 422, "unknown-message-type"),
    "unsupported version": (lambda live: (replace(jc_xml(live), 'version="1.0"', 'version="7.3"'), "application/xml"), JOBCENTER, 422, "unsupported-version"),
    "author is another partner": (lambda live: (replace(jc_xml(live), "<fk:kennung>jobcenter-musterstadt</fk:kennung>", "<fk:kennung>kreis-musterland</fk:kennung>"), "application/xml"), JOBCENTER, 403, "forbidden"),
    "type not in the partner's contract": (lambda live: (encode(live.hub, "agency-xml", agency_sample("teilnahme.mitwirkung.2040")), "application/xml"), JOBCENTER, 403, "forbidden"),
    "JSON from an XML partner": (lambda live: (encode(live.hub, "provider-json", provider_sample("teilnahme.mitwirkung.2040", "F-XXXXXXXX")), "application/json"), JOBCENTER, 415, "unsupported-media-type"),
    "wrong media type": (lambda live: (jc_xml(live), "text/plain"), JOBCENTER, 415, "unsupported-media-type"),
    "oversize body": (lambda live: (b"<a>" + b"x" * (300 * 1024) + b"</a>", "application/xml"), JOBCENTER, 413, "too-large"),
    "JSON not UTF-8": (lambda live: (json.dumps({"header": {"x": "Müller"}}, ensure_ascii=False).encode("latin-1"), "application/json"), PROVIDER, 400, "bad-encoding"),
    "malformed JSON": (lambda live: (b'{"header": {', "application/json"), PROVIDER, 400, "malformed"),
    "JSON without header": (lambda live: (b'{"body": {}}', "application/json"), PROVIDER, 400, "missing-header"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_refused_input_gets_precise_problem_changes_nothing_and_hub_keeps_serving(live_hub: LiveHub, name: str) -> None:
    build, partner, status, kind = CASES[name]
    body, media = build(live_hub)
    before = count_messages(live_hub)
    with live_hub.client(partner) as client:
        r = client.post("/v1/messages", content=body, headers={"Content-Type": media})
        assert_problem(r, status, kind)
    assert count_messages(live_hub) == before, f"{name}: a refused message was stored"
    assert httpx.get(f"{live_hub.url}/healthz").status_code == 200, f"the hub stopped serving after {name}"


def test_schema_findings_name_line_and_column(live_hub: LiveHub, jc) -> None:
    body = replace(jc_xml(live_hub), "<fk:wochenstunden>25.0</fk:wochenstunden>", "<fk:wochenstunden>viele</fk:wochenstunden>")
    body = replace(body, "<fk:postleitzahl>01067</fk:postleitzahl>", "<fk:postleitzahl>1067</fk:postleitzahl>")
    problem = assert_problem(post(jc, body, "agency-xml"), 422, "schema-invalid")
    lines = {f["line"] for f in problem["findings"]}
    text = body.decode().splitlines()
    expected = {i + 1 for i, line in enumerate(text) if "viele" in line or ">1067<" in line}
    assert expected <= lines, f"findings must locate both errors at their lines {expected}, got {problem['findings']}"
    assert all("column" in f and f["location"].startswith("line ") for f in problem["findings"])


def test_json_findings_carry_json_pointers(live_hub: LiveHub) -> None:
    data = provider_sample("teilnahme.mitwirkung.2040", "F-AAAABBBBCCCC")
    data["body"]["event"] = "keine_lust"
    body = json.loads(encode(live_hub.hub, "provider-json", {**data, "body": {**data["body"], "event": "verweigerung"}}))
    body["body"]["event"] = "keine_lust"
    body["body"]["unexpected"] = 1
    with live_hub.client(PROVIDER) as pr:
        problem = assert_problem(pr.post("/v1/messages", json=body), 422, "schema-invalid")
    pointers = {f["pointer"] for f in problem["findings"]}
    assert "/body/event" in pointers and "/body" in pointers, problem["findings"]


def test_missing_or_bad_token_is_401(live_hub: LiveHub) -> None:
    body = jc_xml(live_hub)
    r = httpx.post(f"{live_hub.url}/v1/messages", content=body, headers={"Content-Type": "application/xml"})
    assert_problem(r, 401, "unauthenticated")
    assert r.headers.get("www-authenticate", "").startswith("Bearer")
    r = httpx.post(f"{live_hub.url}/v1/messages", content=body, headers={"Content-Type": "application/xml", "Authorization": "Bearer cch_forged"})
    assert_problem(r, 401, "unauthenticated")


def test_unknown_routes_are_problem_json(live_hub: LiveHub, jc) -> None:
    assert_problem(jc.get("/v1/nothing-here"), 404, "not-found")
    assert_problem(jc.get("/v1/messages/01NOPE"), 404, "not-found")
    assert_problem(jc.post("/v1/inbox/01NOPE/ack"), 404, "not-found")


def test_uuid_reuse_by_another_partner_is_a_different_message(live_hub: LiveHub) -> None:
    """(sender, message UUID) is the key: one partner's UUIDs cannot shadow another's messages."""
    shared = new_uuid()
    a = agency_sample("zuweisung.anmeldung.1020")
    a["header"]["message_uuid"] = shared
    with live_hub.client(JOBCENTER) as jc:
        first = post(jc, encode(live_hub.hub, "agency-xml", a), "agency-xml")
    assert first.status_code == 202
    b = agency_sample("person.stammdaten.0100")
    b["header"]["message_uuid"] = shared
    b["header"]["author"] = {"id": "kreis-musterland"}
    b["header"]["reader"] = {"id": JOBCENTER}
    with live_hub.client("kreis-musterland") as kr:
        second = post(kr, encode(live_hub.hub, "agency-xml", b), "agency-xml")
    assert second.status_code == 202 and second.json()["id"] != first.json()["id"]


def test_a_revoked_token_is_refused_within_the_token_cache_time(hub) -> None:  # noqa: ANN001
    """Verified tokens are remembered per process for `token_cache_seconds`; a revocation takes
    effect within that time, never later. The cache's clock is injected: time passes when the test says."""
    from fastapi.testclient import TestClient

    from hub.store import db
    from hub.api.app import create_app
    from hub.partners import issue_token, revoke_tokens
    from tests.conftest import FakeClock

    hub.settings.token_cache_seconds = 0.5
    with db.write(hub.engine) as conn:
        token = issue_token(conn, "traeger-bildungswerk")
    app = create_app(hub, role="api")
    clock = app.state.tokens.clock = FakeClock()
    client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    assert client.get("/v1/inbox").status_code == 200
    with db.write(hub.engine) as conn:
        revoke_tokens(conn, "traeger-bildungswerk")
    clock.advance(0.6)
    r = client.get("/v1/inbox")
    assert r.status_code == 401, f"a revoked token still worked after the cache time: {r.status_code}"
    assert r.headers["x-request-id"], "every answer carries its request id"


def test_message_submission_answers_like_every_other_endpoint(hub, tokens, monkeypatch) -> None:  # noqa: ANN001
    """POST /v1/messages is served in front of the framework (hub.api.MessageIntake): its answers keep
    the API's conventions -- request id echoed, Location on success, WWW-Authenticate on 401,
    problem+json on every error, and a 500 that says nothing internal."""
    from fastapi.testclient import TestClient

    from hub.endpoints import ingress
    from hub.api.app import create_app
    from tests.conftest import agency_sample, encode

    client = TestClient(create_app(hub, role="api"), raise_server_exceptions=False)
    body = encode(hub, "agency-xml", agency_sample("zuweisung.anmeldung.1020"))
    auth = {"Authorization": f"Bearer {tokens['jobcenter-musterstadt']}", "Content-Type": "application/xml", "X-Request-ID": "req-1"}

    taken = client.post("/v1/messages", content=body, headers=auth)
    assert taken.status_code == 202 and taken.headers["location"] == f"/v1/messages/{taken.json()['id']}"
    assert taken.headers["x-request-id"] == "req-1" and taken.headers["content-type"] == "application/json"
    again = client.post("/v1/messages", content=body, headers=auth)
    assert (again.status_code, again.json()["id"], again.json()["duplicate"]) == (200, taken.json()["id"], True), "a resend is answered with the first id"

    anonymous = client.post("/v1/messages", content=body, headers={"Content-Type": "application/xml"})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.headers["content-type"] == "application/problem+json" and anonymous.json()["instance"] == "/v1/messages"
    assert anonymous.headers["x-request-id"], "every answer carries its request id"

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(ingress, "accept_async", broken)
    failed = client.post("/v1/messages", content=body, headers=auth)
    assert failed.status_code == 500 and failed.headers["content-type"] == "application/problem+json"
    assert "secret" not in failed.text, "a 500 must not show internals to the caller"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("c" * 65, id="65 characters"),
        pytest.param("two words", id="a space"),
        pytest.param("id\x01", id="a control character"),
        pytest.param("zürich", id="not ASCII"),
    ],
)
def test_a_bad_correlation_id_header_is_refused_400_naming_the_header(hub, tokens, value: str) -> None:  # noqa: ANN001
    """X-Correlation-ID is stored (64 characters at most) and logged: a value that does not fit is
    the partner's error, answered 400 before anything is stored -- on every database alike (SQLite
    would store it, PostgreSQL would refuse the insert)."""
    from fastapi.testclient import TestClient

    from hub.api.app import create_app

    client = TestClient(create_app(hub, role="api"), raise_server_exceptions=False)
    body = encode(hub, "agency-xml", agency_sample("zuweisung.anmeldung.1020"))
    headers = {"Authorization": f"Bearer {tokens[JOBCENTER]}", "Content-Type": "application/xml", "X-Correlation-ID": value.encode()}
    r = client.post("/v1/messages", content=body, headers=headers)
    problem = assert_problem(r, 400, "malformed")
    assert "X-Correlation-ID" in problem["detail"], f"the answer names the header: {problem}"
    with db.read(hub.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one() == 0, "a refused message was stored"


def test_a_correlation_id_of_64_characters_is_taken_and_kept(hub, tokens) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from hub.api.app import create_app

    client = TestClient(create_app(hub, role="api"), raise_server_exceptions=False)
    body = encode(hub, "agency-xml", agency_sample("zuweisung.anmeldung.1020"))
    value = "ABC-2024/17:" + "x" * 52
    headers = {"Authorization": f"Bearer {tokens[JOBCENTER]}", "Content-Type": "application/xml", "X-Correlation-ID": value}
    r = client.post("/v1/messages", content=body, headers=headers)
    assert r.status_code == 202, r.text
    view = client.get(r.json()["status_url"], headers={"Authorization": f"Bearer {tokens[JOBCENTER]}"}).json()
    assert view["correlation_id"] == value


def test_a_message_uuid_that_is_not_a_uuid_is_refused_422_and_not_stored(hub, tokens) -> None:  # noqa: ANN001
    """The message UUID is the resend key and is stored in 36 characters. A value the contract's
    "format: uuid" lets through loosely (here 32 hex digits in 38 characters) is still no UUID."""
    from fastapi.testclient import TestClient

    from hub.api.app import create_app

    client = TestClient(create_app(hub, role="api"), raise_server_exceptions=False)
    data = json.loads(encode(hub, "provider-json", provider_sample("teilnahme.mitwirkung.2040", "F-AAAABBBBCCCC")))
    data["header"]["messageUuid"] = "12345678-1234-1234-1234-1234-5678-9abc"
    r = client.post("/v1/messages", content=json.dumps(data).encode(), headers={"Authorization": f"Bearer {tokens[PROVIDER]}", "Content-Type": "application/json"})
    problem = assert_problem(r, 422, "schema-invalid")
    assert [f["pointer"] for f in problem["findings"]] == ["/header/messageUuid"], problem
    with db.read(hub.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one() == 0, "a refused message was stored"


def test_a_request_id_that_is_no_plain_token_is_replaced_not_logged(hub: Hub) -> None:
    """X-Request-ID is echoed and bound to every log line of the request: a caller may not put 3 KB or
    line breaks there."""
    from fastapi.testclient import TestClient

    from hub.api.app import create_app

    client = TestClient(create_app(hub, role="api"))
    kept = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    replaced = client.get("/healthz", headers={"X-Request-ID": "x" * 3000})
    assert kept.headers["x-request-id"] == "abc-123", "a plain request id is kept"
    assert len(replaced.headers["x-request-id"]) == 32, "an oversized request id is replaced by the hub's own"


def test_a_wrong_method_is_405_and_a_bad_query_parameter_is_an_invalid_request_not_a_malformed_message(live_hub: LiveHub, jc) -> None:
    r = jc.delete("/v1/messages/x")
    problem = assert_problem(r, 405, "method-not-allowed")
    assert "Malformed" not in problem["title"], problem
    problem = assert_problem(jc.get("/v1/inbox", params={"limit": "many"}), 400, "invalid-request")
    assert problem["findings"][0]["pointer"] == "/query/limit", problem
