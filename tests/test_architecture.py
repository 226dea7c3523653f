"""The architecture as written down is the architecture of the code.

docs/architecture.md names every package and top-level module of `hub/` and says what must never
import what; import-linter holds the code to those contracts (pyproject.toml `[tool.importlinter]`).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HUB = ROOT / "hub"
DOC = ROOT / "docs" / "architecture.md"
NAME = re.compile(r"^[a-z_]+(\.py|/)$")


def _tree() -> dict[str, set[str]]:
    """Top-level entries of the documented tree -> the entries listed under them."""
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- module-tree", 1)[1].split("```", 2)[1]
    tree: dict[str, set[str]] = {}
    parent = None
    for line in block.splitlines()[1:]:
        indent = len(line) - len(line.lstrip(" "))
        names = []
        for word in line.split():
            if not NAME.match(word):
                break
            names.append(word)
        if indent == 2 and names:
            for name in names:
                tree[name] = set()
            parent = names[-1]
        elif indent == 4 and names and parent is not None:
            tree[parent].update(names)
    return tree


def test_the_documented_module_tree_is_the_code() -> None:
    tree = _tree()
    actual = {p.name for p in HUB.glob("*.py") if p.name != "__init__.py"}
    actual |= {f"{p.name}/" for p in HUB.iterdir() if (p / "__init__.py").is_file()}
    assert set(tree) - actual == set(), f"docs/architecture.md names modules that do not exist: {sorted(set(tree) - actual)}"
    assert actual - set(tree) == set(), f"docs/architecture.md does not name these parts of hub/: {sorted(actual - set(tree))}"
    for package, modules in tree.items():
        missing = sorted(m for m in modules if not (HUB / package / m).exists())
        assert not missing, f"docs/architecture.md lists {missing} under {package}, which has no such module"


def test_no_module_imports_what_the_architecture_forbids() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    broken = "\n".join(line for line in result.stdout.splitlines() if "BROKEN" in line or "->" in line or "not allowed" in line)
    assert result.returncode == 0, f"import-linter contracts broken (pyproject.toml [tool.importlinter]):\n{broken or result.stdout + result.stderr}"
