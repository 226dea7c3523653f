"""`hub demo` is the first thing a new user runs: it must play the whole chain on a fresh database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_demo_runs_the_chain_on_a_fresh_database(tmp_path: Path, hub_env: dict[str, str]) -> None:
    env = {**os.environ, **hub_env, "HUB_DROP_DIR": str(tmp_path / "drop"), "HUB_LOG_LEVEL": "warning"}
    r = subprocess.run([sys.executable, "-m", "hub.cli", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for expected in (
        "--(agency XML 2.1, restructured",
        "ISO-8859-15 CSV batch file",
        "with 2 records (CSV)--> hub --(2 x agency XML)--> jobcenter-musterstadt",
        "pseudonymous case id F-",
        "agency ids in its copy: none",
        "Kundennummer restored",
        "history of the last message (delivered)",
    ):
        assert expected in out, f"the demo did not show {expected!r}:\n{out}"
    assert list((tmp_path / "drop" / "sozialamt-altstadt" / "out").glob("person.stammdaten.0100_*.csv"))


def test_demo_runs_again_on_a_used_database_so_serve_still_starts_behind_it(tmp_path: Path, hub_env: dict[str, str]) -> None:
    """The README runs `hub demo && hub serve`: a second demo on the same database must succeed too
    (it once reused the first run's client and its reports were answered as duplicates)."""
    env = {**os.environ, **hub_env, "HUB_DROP_DIR": str(tmp_path / "drop"), "HUB_LOG_LEVEL": "warning"}
    for run in (1, 2):
        r = subprocess.run([sys.executable, "-m", "hub.cli", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, f"run {run} failed:\n{r.stdout}{r.stderr}"
        assert "Kundennummer restored" in r.stdout, f"run {run}:\n{r.stdout}"
