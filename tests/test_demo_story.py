"""`hub demo` tells its story for a person: numbered steps of what flowed where, in a pipe as on a terminal.

The hub's structured log lines do not appear between the story's lines: they go to the demo's log file
(named at the end of the story), or to stderr with `--verbose`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, embedded_env

STEP = re.compile(r"^(\d+)\. \S")
DETAIL = re.compile(r"^   +\S")  # a step's details are indented under it
SUMMARY_LINE = re.compile(r"^  \S")


def run_demo(tmp_path: Path, hub_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`hub demo` with stdout and stderr as pipes, logging at info in JSON (plenty of log lines to misplace)."""
    env = {**os.environ, **hub_env, "HUB_DROP_DIR": str(tmp_path / "drop"), "HUB_LOG_LEVEL": "info", "HUB_LOG_FORMAT": "json"}
    r = subprocess.run([sys.executable, "-m", "hub.cli", "demo", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, f"the demo failed:\n{r.stdout}{r.stderr}"
    return r


@pytest.fixture(scope="module")
def quiet_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One demo run without --verbose, shared by the tests that read its story and its log file."""
    tmp_path = tmp_path_factory.mktemp("demo")
    return tmp_path, run_demo(tmp_path, embedded_env(tmp_path))


def json_lines(text: str) -> list[str]:
    """The lines of `text` that are structured log records (a JSON object with an event)."""
    found = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "event" in record:
            found.append(line)
    return found


def story_shape(stdout: str) -> list[int]:
    """Check every stdout line is header, numbered step (with indented details) or summary; return the step numbers."""
    lines = stdout.splitlines()
    assert lines and lines[0].startswith("CaseChain Hub demo: "), f"the story does not open with its header:\n{stdout}"
    steps: list[int] = []
    section = "header"
    for number, line in enumerate(lines[1:], start=2):
        if line == "":
            continue
        if line == "Summary:":
            assert section == "steps", f"line {number}: the summary comes after the steps:\n{stdout}"
            section = "summary"
        elif match := STEP.match(line):
            assert section in ("header", "steps"), f"line {number} is a step after the summary: {line!r}"
            section = "steps"
            steps.append(int(match.group(1)))
        elif section == "header":
            assert line.startswith("  partner "), f"line {number} is not part of the header: {line!r}"
        elif section == "steps":
            assert DETAIL.match(line), f"line {number} is neither a numbered step nor a step's indented detail: {line!r}"
        else:
            assert SUMMARY_LINE.match(line), f"line {number} is not a summary line: {line!r}"
    assert section == "summary", f"the story has no closing summary:\n{stdout}"
    return steps


def test_the_demo_story_in_a_pipe_is_numbered_steps_between_a_header_and_a_summary(quiet_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, r = quiet_run
    assert "\x1b[" not in r.stdout + r.stderr, "colour codes in output that is not a terminal"
    steps = story_shape(r.stdout)
    assert steps == list(range(1, len(steps) + 1)), f"the steps are not numbered 1, 2, 3, ...: {steps}"
    assert len(steps) >= 6, f"the chain has at least six steps to tell, the story told {len(steps)}:\n{r.stdout}"
    for expected in (
        "1. The Jobcenter jobcenter-musterstadt sends the master data of client",
        "assigns client",
        "(zuweisung.anmeldung.1020, agency XML)",
        "The hub routed it to traeger-bildungswerk as provider JSON under the pseudonym F-",
        "status read back from the hub: delivered",
    ):
        assert expected in r.stdout, f"the story does not tell {expected!r}:\n{r.stdout}"


def test_the_demo_writes_its_log_lines_to_the_log_file_it_names_not_between_the_story(quiet_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    tmp_path, r = quiet_run
    assert not json_lines(r.stdout), f"log lines in the story on stdout:\n{json_lines(r.stdout)[:3]}"
    assert not json_lines(r.stderr), f"log lines on stderr without --verbose:\n{json_lines(r.stderr)[:3]}"
    log = tmp_path / "demo.log"
    assert f"The hub's log lines of this run: {log}" in r.stdout, f"the story does not name its log file {log}:\n{r.stdout}"
    assert log.exists(), f"no log file {log}"
    events = [json.loads(line)["event"] for line in json_lines(log.read_text(encoding="utf-8"))]
    assert "ingress.received" in events and "workers.started" in events, f"the log file lacks the hub's log lines: {events[:10]}"


def test_the_demo_with_verbose_shows_the_log_lines_on_stderr(tmp_path: Path, hub_env: dict[str, str]) -> None:
    r = run_demo(tmp_path, hub_env, "--verbose")
    events = [json.loads(line)["event"] for line in json_lines(r.stderr)]
    assert "ingress.received" in events, f"--verbose did not show the hub's log lines on stderr:\n{r.stderr[:2000]}"
    assert not json_lines(r.stdout), "--verbose puts log lines on stderr, not into the story on stdout"
    story_shape(r.stdout)
    assert not (tmp_path / "demo.log").exists(), "with --verbose the log lines are shown, not written to the log file"


def test_the_demo_prints_console_accounts_that_sign_in(quiet_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    """The newcomer who ran the demo can open the console with what it printed."""
    from fastapi.testclient import TestClient

    from hub.api.app import create_app
    from tests.conftest import hub_for

    tmp_path, r = quiet_run
    found = re.search(r"The console at /ops \(after `hub serve`\): demo-betrieb / (\S+) \(operator\); demo-fallmanagement / (\S+) \(case_manager\)", r.stdout)
    assert found, f"the summary names no console accounts:\n{r.stdout[-800:]}"
    hub = hub_for(embedded_env(tmp_path))
    client = TestClient(create_app(hub, role="none"), follow_redirects=False)
    page = client.get("/ops/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    answer = client.post("/ops/login", data={"csrf_token": token, "login": "demo-fallmanagement", "password": found.group(2)})
    hub.close()
    assert answer.status_code == 303 and answer.headers["location"] == "/ops/cases", "the printed password signs the case manager in"
