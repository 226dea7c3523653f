"""Scale-out as deployed: `hub serve --role api`, `hub worker --role pipeline|delivery`, `hub serve --workers N`."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from hub.store import db
from hub.store.tables import deliveries
from tests.conftest import JOBCENTER, PROVIDER, LiveHub, agency_sample, embedded_env, encode, hub_for, issue_tokens, post
from tests.integration.conftest import WorkerProcess, contracts_with
from tests.integration.test_amqp_transport import drain
from tests.test_end_to_end import assign_case


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_api_pipeline_and_delivery_roles_in_separate_processes(amqp_pg_env: dict[str, str], tmp_path: Path) -> None:
    """The API only accepts (its relay publishes), a pipeline worker routes, a delivery worker pushes."""
    env = {**amqp_pg_env, "HUB_CONTRACTS_DIR": str(contracts_with(tmp_path, **{PROVIDER: "amqp"}))}
    hub = hub_for(env)
    live = LiveHub(env, hub, issue_tokens(hub), args=["--role", "api"])
    workers = [WorkerProcess(env, role="pipeline"), WorkerProcess(env, role="delivery")]
    live.start()
    try:
        with live.client(JOBCENTER) as jc:
            r = post(jc, encode(hub, "agency-xml", agency_sample("zuweisung.anmeldung.1020")), "agency-xml")
            assert r.status_code == 202, r.text
        # nothing but the API runs: the message is accepted and waits in the broker
        assert jc_status(live, r.json()["id"]) == "received"
        workers[0].start()
        workers[1].start()
        ((props, body),) = drain(env["HUB_BROKER_URL"], f"hub.partner.{PROVIDER}", 1)
        assert props.headers["hub-message-id"] == r.json()["id"] and b"caseId" in body
        assert jc_status(live, r.json()["id"]) == "routed"
        with db.read(hub.engine) as conn:
            assert conn.execute(sa.select(deliveries.c.status).where(deliveries.c.id == props.message_id)).scalar_one() == "published"
    finally:
        for w in workers:
            w.stop()
        live.stop()
        hub.close()


def jc_status(live: LiveHub, message_id: str) -> str:
    with live.client(JOBCENTER) as jc:
        return jc.get(f"/v1/messages/{message_id}").json()["status"]


def test_serve_with_several_api_processes_on_the_embedded_default(tmp_path: Path) -> None:
    """`hub serve --workers 2` (uvicorn processes sharing the port), each with its pipeline, on SQLite."""
    env = embedded_env(tmp_path)
    hub = hub_for(env)
    live = LiveHub(env, hub, issue_tokens(hub), args=["--workers", "2"])
    live.start()
    try:
        assert assign_case(live), "the case was not assigned through a multi-process hub"
    finally:
        live.stop()
        hub.close()
