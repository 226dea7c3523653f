"""`hub serve` as an operator runs it: a taken port is one sentence and exit 1 before anything starts;
SIGTERM ends the process within HUB_SHUTDOWN_TIMEOUT, even while a long validation is in flight, and
leaves every message in the database whole or not at all."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import sqlalchemy as sa

from hub.store import db
from hub.store.tables import message_events, messages
from tests.conftest import JOBCENTER, ROOT, LiveHub, agency_sample, embedded_env, encode, hub_for, issue_tokens, post


def test_serve_on_a_taken_port_says_so_in_one_line_and_exits_1_before_starting_anything(tmp_path: Path) -> None:
    env = embedded_env(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "hub.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env={**os.environ, **env, "HUB_LOG_LEVEL": "info"}, capture_output=True, text=True, timeout=60,
        )
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1, f"exit {r.returncode} (expected 1, input refused):\n{r.stderr}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{r.stderr}"
    assert f"port {port} on 127.0.0.1 is already in use" in lines[0], lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not (tmp_path / "hub.db").exists(), "the database was set up although the hub could not listen"


def big_invalid_report(hub, size: int) -> bytes:  # type: ignore[no-untyped-def]
    """A Jobcenter message padded to `size` bytes with elements its contract does not allow: its full
    findings report takes seconds to build."""
    agency = encode(hub, "agency-xml", agency_sample("zuweisung.kontakt.1010"))
    junk = b'<fk:x a="1"/>\n'
    room = size - len(agency) - 100
    return agency.replace(b"<fk:antwortBis>", junk * (room // len(junk)) + b"<fk:antwortBis>", 1)


def uploaded(data: bytes, done: threading.Event) -> Iterator[bytes]:
    """The body in chunks; `done` is set once the last one is handed to the connection."""
    step = 256 * 1024
    for start in range(0, len(data), step):
        yield data[start : start + step]
    done.set()


def test_sigterm_during_a_long_validation_ends_serve_within_the_shutdown_timeout_and_keeps_messages_whole(tmp_path: Path) -> None:
    bound = 3.0
    env = {
        **embedded_env(tmp_path),
        "HUB_MAX_MESSAGE_BYTES": str(5 * 1024 * 1024),
        "HUB_VALIDATION_SECONDS": "600",  # the report of the big body runs as long as it takes
        "HUB_SHUTDOWN_TIMEOUT": str(bound),
    }
    hub = hub_for(env)
    live = LiveHub(env, hub, issue_tokens(hub))
    live.start()
    accepted: list[str] = []
    answers: list[int] = []
    stop_sending = threading.Event()

    def keep_sending() -> None:
        """Valid messages, one after the other, until the hub no longer answers."""
        with live.client(JOBCENTER) as jc:
            while not stop_sending.is_set():
                try:
                    r = post(jc, encode(hub, "agency-xml", agency_sample("zuweisung.anmeldung.1020")), "agency-xml")
                except httpx.HTTPError:
                    return
                answers.append(r.status_code)
                if r.status_code == 202:
                    accepted.append(r.json()["id"])

    long_answer: dict[str, object] = {}
    upload_done = threading.Event()
    data = big_invalid_report(hub, 5 * 1024 * 1024 - 1024)

    def long_request() -> None:
        try:
            with live.client(JOBCENTER) as jc:
                r = jc.post("/v1/messages", content=uploaded(data, upload_done), headers={"Content-Type": "application/xml"}, timeout=120)
                long_answer["status"] = r.status_code
                long_answer["retry_after"] = r.headers.get("retry-after")
                long_answer["body"] = r.text[:300]
        except httpx.HTTPError as exc:
            long_answer["status"] = type(exc).__name__
        long_answer["at"] = time.monotonic()

    sender, slow = threading.Thread(target=keep_sending), threading.Thread(target=long_request)
    try:
        sender.start()
        deadline = time.monotonic() + 30
        while not accepted and time.monotonic() < deadline and sender.is_alive():
            time.sleep(0.05)
        assert accepted, f"no message was accepted within 30 s of starting (answers: {answers})"
        slow.start()
        assert upload_done.wait(60), "the big body was not uploaded within 60 s"
        assert "status" not in long_answer, "the long validation ended before SIGTERM: the test proves nothing"
        assert live.proc is not None
        signalled = time.monotonic()
        live.proc.terminate()
        try:
            code = live.proc.wait(bound + 10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"hub serve still ran {bound + 10:g} s after SIGTERM (HUB_SHUTDOWN_TIMEOUT={bound:g})") from None
        took = time.monotonic() - signalled
    finally:
        stop_sending.set()
        sender.join(30)
        slow.join(30)
        live.stop()
    log = Path(env["HUB_TEST_LOG"]).read_text(encoding="utf-8", errors="replace")
    assert took < bound + 2, f"hub serve took {took:.1f} s to stop after SIGTERM (HUB_SHUTDOWN_TIMEOUT={bound:g})\n{log[-2000:]}"
    assert code == 0, f"exit {code} after a graceful SIGTERM (expected 0)\n{log[-2000:]}"
    assert "Traceback" not in log, log[-3000:]
    assert long_answer.get("status") == 503, f"the request cut off at the shutdown was not answered 503 (send again): {long_answer}"
    with db.read(hub.engine) as conn:
        stored = set(conn.execute(sa.select(messages.c.id)).scalars())
        events = {
            (m, e) for m, e in conn.execute(sa.select(message_events.c.message_id, message_events.c.event).where(message_events.c.stage == "ingress"))
        }
    assert set(accepted) <= stored, f"accepted (202) but not stored: {sorted(set(accepted) - stored)}"
    half = [m for m in stored if not {(m, "received"), (m, "validated")} <= events]
    assert not half, f"messages stored without their ingress history (half-written): {half}"
    hub.close()
    db.dispose_all()


def test_the_shutdown_watchdog_ends_a_process_that_overruns_its_bound_with_a_logged_error() -> None:
    """The last resort: whatever hangs (here: the main thread, and a thread Python would wait for),
    the process ends with exit 1 when the bound is up, and says why."""
    script = (
        "import threading, time\n"
        "from hub import logs\n"
        "from hub.shutdown import WATCHDOG\n"
        "logs.configure('json', 'info')\n"
        "threading.Thread(target=time.sleep, args=(60,)).start()\n"
        "WATCHDOG.arm(0.5)\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30)
    took = time.monotonic() - started
    assert r.returncode == 1, f"exit {r.returncode}: {r.stderr}"
    assert took < 10, f"the watchdog took {took:.1f} s for a bound of 0.5 s"
    assert "did not stop within HUB_SHUTDOWN_TIMEOUT" in r.stderr, r.stderr
