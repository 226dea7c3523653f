"""A message built to fail everywhere costs the hub a bounded, linear amount of work: the report lists
the first findings and counts the rest, and stops at the validation's time budget with a clear 422."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hub.store import db
from hub.schemas import safe_xml
from hub.api.app import create_app
from hub.findings import MAX_FINDINGS, Findings
from hub.partners import issue_token
from hub.runtime import Hub
from hub.schemas.registry import registry_for
from tests.conftest import CONTRACTS, JOBCENTER, PROVIDER, agency_sample, encode, hub_for, provider_sample

EXAMPLE = CONTRACTS / "messages" / "zuweisung.kontakt.1010" / "1.0" / "examples" / "example.xml"


def with_unexpected_elements(n: int, *, one_line: bool = False) -> bytes:
    """The contract example with `n` elements the schema does not allow before `antwortBis`."""
    junk = '<fk:x a="1"/>' if one_line else '<fk:x a="1"/>\n'
    return EXAMPLE.read_bytes().replace(b"<fk:antwortBis>", junk.encode() * n + b"<fk:antwortBis>", 1)


def report(data: bytes, seconds: float = 2.0) -> Findings:
    registry = registry_for(CONTRACTS)
    contract = registry.get("zuweisung.kontakt.1010", "1.0", "agency-xml")
    findings = registry.validate(contract, safe_xml.parse(data), seconds)
    assert isinstance(findings, Findings)
    return findings


def test_a_report_lists_the_first_hundred_findings_and_counts_the_rest() -> None:
    findings = report(with_unexpected_elements(2_000))
    assert len(findings) == MAX_FINDINGS + 1, "the first 100 findings and one line that counts the rest"
    assert findings.complete and findings.total == 2_000
    assert findings[-1].message == f"and 1,900 more finding(s) not listed (the first {MAX_FINDINGS} are)"
    assert [f.line for f in findings[:3]] == [51, 52, 53], "findings are in document order, at the offending element"


def test_a_message_that_fails_in_one_place_is_reported_whole() -> None:
    findings = report(with_unexpected_elements(1))
    assert findings.complete and findings.unlisted == 0 and len(findings) == 1


def test_the_report_of_a_message_of_350000_bad_elements_stays_within_its_budget() -> None:
    data = with_unexpected_elements(350_000)
    assert len(data) > 4_500_000, "the worst case the issue names: 4.5 MB of unexpected elements"
    started = time.process_time()
    findings = report(data, seconds=1.0)
    spent = time.process_time() - started
    assert spent < 1.0 + 2.0, f"validation took {spent:.1f} s of CPU for a budget of 1 s (it grew with the square of the elements)"
    assert not findings.complete, "the report says it stopped at its budget"
    assert "budget of 1 s" in findings[-1].message


def test_validation_time_grows_linearly_with_the_element_count() -> None:
    """Four times the elements may cost about four times the time, never sixteen (measured on CPU time,
    best of three, so that a busy machine does not decide)."""

    def cost(n: int) -> float:
        data = with_unexpected_elements(n)
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            report(data, seconds=60.0)
            best = min(best, time.process_time() - started)
        return best

    small, large = cost(4_000), cost(16_000)
    assert large < 8 * small, f"4,000 elements: {small:.3f} s, 16,000: {large:.3f} s -- not linear"


@pytest.fixture
def large_hub(tmp_path) -> Iterator[Hub]:  # noqa: ANN001
    from tests.conftest import embedded_env

    env = embedded_env(tmp_path)
    hub = hub_for({**env, "HUB_MAX_MESSAGE_BYTES": str(5 * 1024 * 1024)}, validation_seconds=1.0)
    yield hub
    hub.close()
    db.dispose_all()


def test_the_worst_body_at_the_size_limit_is_refused_422_in_bounded_time_and_the_hub_keeps_serving(large_hub: Hub) -> None:
    agency = encode(large_hub, "agency-xml", agency_sample("zuweisung.kontakt.1010"))
    junk = b'<fk:x a="1"/>\n'
    room = large_hub.settings.max_message_bytes - len(agency) - 100
    data = agency.replace(b"<fk:antwortBis>", junk * (room // len(junk)) + b"<fk:antwortBis>", 1)
    with db.write(large_hub.engine) as conn:
        token = issue_token(conn, JOBCENTER)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
    with TestClient(create_app(large_hub, role="api"), raise_server_exceptions=False) as client:
        started = time.monotonic()
        r = client.post("/v1/messages", content=data, headers=headers)
        took = time.monotonic() - started
        assert r.status_code == 422, r.text[:500]
        problem = r.json()
        assert problem["type"] == "urn:casechain:problem:schema-invalid"
        assert "budget of 1 s" in problem["findings"][-1]["message"], problem["findings"][-1]
        assert took < 15, f"the refusal took {took:.1f} s"
        assert client.get("/healthz").status_code == 200


def test_a_json_report_is_capped_as_well(hub: Hub) -> None:
    data = provider_sample("teilnahme.anwesenheit.2030", "F-7Q2K9M4X1B")
    data["body"]["days"] = [{"date": "2026-11-02", "code": "no-such-code"}] * 500
    raw = encode(hub, "provider-json", data)
    with db.write(hub.engine) as conn:
        token = issue_token(conn, PROVIDER)
    with TestClient(create_app(hub, role="api"), raise_server_exceptions=False) as client:
        r = client.post("/v1/messages", content=raw, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert r.status_code == 422, r.text[:300]
    findings = r.json()["findings"]
    assert len(findings) == MAX_FINDINGS + 1
    assert findings[0]["pointer"] == "/body/days/0/code"
    assert findings[-1]["message"].startswith("and 400 more finding(s)")
    assert "500 finding(s), the first 100 listed" in r.json()["detail"]
