"""Dead letters for an operator: listed and counted by partner, type, reason and time; replayed one by
one or all matching a filter, in batches, never twice; a message processed meanwhile is refused and
left as it was. `hub messages dead` and `hub messages replay --all` are the same functions."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from hub.cli import app
from hub.findings import Refusal
from hub.runtime import Hub
from hub.store import db
from hub.store import dead_letters as dead
from hub.store.dead_letters import DeadLetterFilter
from hub.store.tables import dead_letters, messages, outbox
from tests.store_rows import UTC, dead_letter, message

NOW = dt.datetime.now(UTC)
S1, S2, JC = "traeger-eins", "traeger-zwei", "jobcenter-eins"
T1, T2 = "teilnahme.anwesenheit.2030", "teilnahme.austritt.2050"


def park(hub: Hub, sender: str, message_type: str, hours_ago: float, reason: str = "gave up after 5 attempts; last error: timeout",
         status: str = "dead", replayed: bool = False) -> str:
    """A message the pipeline gave up on: status dead, its dead letter (replayed before, if so)."""
    at = NOW - dt.timedelta(hours=hours_ago)
    with db.write(hub.engine) as conn:
        m = message(conn, sender, message_type, at, status, recipient=JC)
        dead_letter(conn, m.id, at, reason, replayed_at=at + dt.timedelta(minutes=1) if replayed else None)
    return m.id


def state(hub: Hub, message_id: str) -> tuple[str, bool, int]:
    """(status, its dead letters all replayed, pipeline items queued for it)."""
    with db.read(hub.engine) as conn:
        status = conn.execute(sa.select(messages.c.status).where(messages.c.id == message_id)).scalar_one()
        waiting = conn.execute(sa.select(sa.func.count()).select_from(dead_letters).where(
            dead_letters.c.message_id == message_id, dead_letters.c.replayed_at.is_(None))).scalar_one()
        queued = sum(1 for r in conn.execute(sa.select(outbox.c.payload)) if r.payload.get("message_id") == message_id)
    return status, waiting == 0, queued


@pytest.fixture
def parked(hub: Hub) -> dict[str, str]:
    return {
        "s1-t1-timeout": park(hub, S1, T1, 30),
        "s1-t2-refused": park(hub, S1, T2, 20, reason="returned unroutable"),
        "s1-t1-old": park(hub, S1, T1, 24 * 10),
        "s2-t1-timeout": park(hub, S2, T1, 10),
        "s1-t1-replayed": park(hub, S1, T1, 5, replayed=True),
    }


def listed(hub: Hub, **fields: Any) -> set[str]:
    with db.read(hub.engine) as conn:
        return {d.message_id for d in dead.page(conn, DeadLetterFilter.parse(**fields)).items}


def test_dead_letters_are_found_by_partner_type_reason_and_time_replayed_ones_only_when_asked(hub: Hub, parked: dict[str, str]) -> None:
    p = parked
    assert listed(hub, partner=S1) == {p["s1-t1-timeout"], p["s1-t2-refused"], p["s1-t1-old"]}, "the sender's, waiting ones only"
    assert listed(hub, partner=JC) == set(p.values()) - {p["s1-t1-replayed"]}, "the recipient of a delivery finds them too"
    assert listed(hub, message_type=T2) == {p["s1-t2-refused"]}
    assert listed(hub, reason="UNROUTABLE") == {p["s1-t2-refused"]}, "a part of the reason, in any case"
    assert listed(hub, reason="%") == set(), "a wildcard in the reason is a plain character"
    assert listed(hub, at_from=NOW - dt.timedelta(days=2)) == {p["s1-t1-timeout"], p["s1-t2-refused"], p["s2-t1-timeout"]}
    assert listed(hub, partner=S1, message_type=T1, include_replayed=True) == {p["s1-t1-timeout"], p["s1-t1-old"], p["s1-t1-replayed"]}
    with db.read(hub.engine) as conn:
        assert dead.count(conn, DeadLetterFilter(partner=S1)) == 3 and dead.count(conn, DeadLetterFilter(partner=S1), replayed=True) == 1
        first = dead.page(conn, DeadLetterFilter(limit=2))
        rest = dead.page(conn, DeadLetterFilter(limit=2, cursor=first.next_cursor))
    assert [d.at for d in first.items] == sorted((d.at for d in first.items), reverse=True) and first.next_cursor, "newest first, a cursor on"
    assert len(first.items + rest.items) == 4 and rest.next_cursor is None, "two pages hold the four waiting ones"
    with pytest.raises(Refusal, match="at_from must be before at_to"):
        DeadLetterFilter.parse(at_from="2026-12-04T10:00", at_to="2026-12-04T09:00")


def test_replaying_all_matching_sends_each_once_in_batches_and_a_second_run_sends_nothing(hub: Hub, parked: dict[str, str]) -> None:
    result = dead.replay_matching(hub.engine, DeadLetterFilter(partner=S1), "operator-1", hub.transport, batch=2)
    assert (result.replayed, result.skipped_replayed, result.skipped_processed) == (3, 1, 0), f"three sent again, the replayed one left out: {result}"
    for key in ("s1-t1-timeout", "s1-t2-refused", "s1-t1-old"):
        assert state(hub, parked[key]) == ("received", True, 1), f"{key}: back in the pipeline's queue once, its dead letter done with"
    assert state(hub, parked["s2-t1-timeout"]) == ("dead", False, 0), "another partner's dead letter is not touched"
    again = dead.replay_matching(hub.engine, DeadLetterFilter(partner=S1), "operator-1", hub.transport)
    assert (again.replayed, again.skipped_replayed) == (0, 4), f"a second run replays nothing: {again}"


def test_a_message_processed_meanwhile_is_refused_counted_and_left_as_it_was(hub: Hub) -> None:
    done = park(hub, S2, T1, 3, status="delivered")
    waiting = park(hub, S2, T2, 2)
    result = dead.replay_matching(hub.engine, DeadLetterFilter(partner=S2), "operator-1", hub.transport)
    assert (result.replayed, result.skipped_processed) == (1, 1), f"one replayed, the delivered one refused: {result}"
    assert "nothing to replay" in result.refusals[0], f"the refusal says why: {result.refusals}"
    assert state(hub, done) == ("delivered", False, 0), "the delivered message, its dead letter and the queue are unchanged"
    assert state(hub, waiting) == ("received", True, 1)


runner = CliRunner()


@pytest.fixture
def cli_env(hub: Hub, hub_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in hub_env.items():
        monkeypatch.setenv(key, value)


def test_the_commands_list_and_replay_through_the_same_filter(hub: Hub, parked: dict[str, str], cli_env: None) -> None:
    shown = runner.invoke(app, ["messages", "dead", "--partner", S1, "--type", T1, "--json"])
    assert shown.exit_code == 0, shown.output
    assert {d["message_id"] for d in json.loads(shown.output)} == {parked["s1-t1-timeout"], parked["s1-t1-old"]}
    replayed = runner.invoke(app, ["messages", "replay", "--all", "--partner", S1, "--since", (NOW - dt.timedelta(days=2)).isoformat(), "--json"])
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.output)["replayed"] == 2, replayed.output
    bad = runner.invoke(app, ["messages", "dead", "--since", "last tuesday"])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "--since" in bad.output, f"one line naming the field: {bad.output!r}"
    both = runner.invoke(app, ["messages", "replay", parked["s2-t1-timeout"], "--all"])
    assert both.exit_code == 2 and "one message id, or --all" in both.output, both.output
