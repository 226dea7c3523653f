"""Keep the console's German catalogue in step with its strings.

    python tools/console_catalogue.py          # extract, merge into locale/de, list what lacks a translation

Extracts every `_()`/`N_()` string of hub/console (templates and code) with Babel, merges the
catalogue (existing translations are kept, new strings are added empty, vanished ones dropped) and
exits 1 naming the strings that still need German. tests/test_console_i18n.py checks the same.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
CONSOLE = ROOT / "hub" / "console"
CATALOGUE = CONSOLE / "locale" / "de" / "LC_MESSAGES" / "messages.po"


def extract() -> object:
    pot = ROOT / "var" / "console.pot"
    pot.parent.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", str(CONSOLE / "babel.cfg"), "-k", "_", "-k", "N_",
                    "--no-location", "--omit-header", "-o", str(pot), str(CONSOLE)], check=True, capture_output=True)
    with pot.open("rb") as f:
        return read_po(f)


def main() -> int:
    template = extract()
    with CATALOGUE.open("rb") as f:
        catalogue = read_po(f, locale="de")
    catalogue.update(template, no_fuzzy_matching=True)
    catalogue.obsolete.clear()
    with CATALOGUE.open("wb") as f:
        write_po(f, catalogue, no_location=True, width=120)
    missing = [m.id for m in catalogue if m.id and not m.string]
    for text in missing:
        print(f"needs German: {text!r}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
