"""The console speaks German first: every string of its templates and code has a German
translation in the Babel catalogue, and dates and numbers are written the German way."""

from __future__ import annotations

import datetime as dt

from babel.messages.pofile import read_po

from hub.console import i18n
from tools.console_catalogue import CATALOGUE, extract


def test_every_string_of_the_console_has_a_german_translation() -> None:
    with CATALOGUE.open("rb") as f:
        german = {m.id: m.string for m in read_po(f, locale="de") if m.id}
    wanted = [m.id for m in extract() if m.id]
    missing = [text for text in wanted if not german.get(text)]
    assert not missing, f"strings without German (run `python tools/console_catalogue.py` and translate them): {missing}"


def test_dates_and_numbers_are_formatted_for_the_locale_in_german_time() -> None:
    german, english = i18n.filters("de"), i18n.filters("en")
    moment = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.timezone.utc)
    assert german["when"](moment) == "02.03.2026, 00:30:00", "UTC is shown as German local time, German style"
    assert german["number"](12345.5, 1) == "12.345,5" and english["number"](12345.5, 1) == "12,345.5"
    assert german["day"]("2026-12-24") == "24.12.2026"


def test_the_browser_language_or_an_explicit_choice_picks_the_locale() -> None:
    assert i18n.pick("en-GB,en;q=0.9") == "en" and i18n.pick("fr-FR") == "de" and i18n.pick(None) == "de"
    assert i18n.pick("en", "de") == "de", "an explicit choice wins"
    assert i18n.translations("de").gettext("Sign in") == "Anmelden" and i18n.translations("en").gettext("Sign in") == "Sign in"
