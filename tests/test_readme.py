"""The README's quick tour works as written: after `hub demo`, against a running `hub serve`, the block
marked `quick-tour` runs unchanged in a shell (only the port differs) and ends with an acknowledged
delivery."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from hub.runtime import Hub
from tests.conftest import ROOT, LiveHub

README = ROOT / "README.md"


def quick_tour() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- quick-tour[^>]*-->\s*```sh\n(.*?)```", text, re.DOTALL)
    assert found, "the README has no block marked <!-- quick-tour -->"
    return found.group(1)


def test_the_readme_quick_tour_sends_follows_picks_up_and_acknowledges_a_report(hub_env: dict[str, str], hub: Hub, tokens: dict[str, str], tmp_path: Path) -> None:
    hub_env = {**hub_env, "HUB_DROP_DIR": str(tmp_path / "drop")}
    env = {**os.environ, **hub_env, "HUB_LOG_LEVEL": "warning"}
    # first the demo, then `hub serve` (as the README's first command does): a running hub's file
    # worker would take the demo's file deliveries
    demo = subprocess.run([sys.executable, "-m", "hub.cli", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    live_hub = LiveHub(hub_env, hub, tokens)
    live_hub.start()
    try:
        _run_tour(live_hub, env, tmp_path)
    finally:
        live_hub.stop()


def _run_tour(live_hub: LiveHub, env: dict[str, str], tmp_path: Path) -> None:
    workdir = tmp_path / "newcomer"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(Path(sys.prefix))  # the README speaks of .venv/bin/hub beside the checkout
    script = quick_tour().replace("127.0.0.1:8000", f"127.0.0.1:{live_hub.port}")
    tour = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    assert tour.returncode == 0, f"the quick tour failed:\n{tour.stdout}\n{tour.stderr}"
    out = tour.stdout
    assert '"duplicate":false' in out, out
    assert '"status": "routed"' in out and '"stage": "delivery"' in out, out
    assert out.rstrip().endswith("}") and '"status":"acknowledged"' in out.splitlines()[-1], out
