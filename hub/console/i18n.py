"""The console's languages: German first (the interface language of the agencies), English second.

Strings are written in English in the templates and the code (`_("…")`) and translated by Babel
catalogues under `locale/<lang>/LC_MESSAGES/messages.po`, read at start (no compiled .mo files to
keep in step); the English catalogue only words the data's codes (roles, statuses, kinds). Dates, times and numbers are formatted by Babel for the locale, in German local time.
`tests/test_console_i18n.py` checks that every string has a German translation.
"""

from __future__ import annotations

import datetime as dt
import io
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import Translations

LOCALES = ("de", "en")
DEFAULT = "de"
CATALOGUES = Path(__file__).parent / "locale"
#: the hub runs in UTC; people read German local time
ZONE = ZoneInfo("Europe/Berlin")


@lru_cache(maxsize=None)
def translations(locale: str) -> Translations:
    path = CATALOGUES / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as f:
        catalog = read_po(f, locale=locale)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def pick(accept_language: str | None, wanted: str | None = None) -> str:
    """The locale of a request: an explicit choice, else the browser's first known language, else German."""
    if wanted in LOCALES:
        return wanted  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LOCALES:
            return tag
    return DEFAULT


def _moment(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


def filters(locale: str) -> dict[str, Any]:
    """Jinja filters that format for `locale`."""
    babel_locale = Locale.parse("de_DE" if locale == "de" else "en_GB")

    def when(value: Any) -> str:
        moment = _moment(value)
        return format_datetime(moment, "medium", tzinfo=ZONE, locale=babel_locale) if moment else "–"

    def day(value: Any) -> str:
        if value in (None, ""):
            return "–"
        if isinstance(value, str):
            value = dt.date.fromisoformat(value[:10])
        return format_date(value, "medium", locale=babel_locale)

    def number(value: Any, digits: int = 0) -> str:
        if value is None:
            return "–"
        return format_decimal(value, format="#,##0" + ("." + "0" * digits if digits else ""), locale=babel_locale)

    def percent(value: Any) -> str:
        return "–" if value is None else format_percent(value, format="#,##0.0 %", locale=babel_locale)

    return {"when": when, "day": day, "number": number, "percent": percent}
