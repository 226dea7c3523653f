"""Normalisation of German person data for record linkage.

Why this module exists: the same person reaches the hub from a Jobcenter's XÖV message, a
municipal ISO-8859-15 batch file and a provider's web form. The three spell the same name
differently (``Müller``, ``Mueller``, ``MULLER``), write dates as ``1980-03-07`` or ``07.03.1980``,
and lose the leading zero of ``01067`` in a spreadsheet. Comparison must see through all of that
*before* any score is computed, otherwise the linkage model learns spelling conventions instead
of identity.

Two string forms are produced:

* :func:`search_form` follows the transliteration of DIN 91379 / ICAO 9303 (``ä``→``ae``,
  ``ß``→``ss``, other diacritics dropped, ligatures spelled out), lower-cased and NFC-clean. It is
  the form that should be shown and stored for searching.
* :func:`match_key` goes one step further and folds ``ae``/``oe``/``ue`` to ``a``/``o``/``u``, so
  that the passport spelling ``Mueller``, the umlaut ``Müller`` and the typed-without-umlaut
  ``Muller`` are *equal*. That fold also merges a few genuine names (``Michael``/``Michal``);
  the linkage model measures how often such keys agree by chance, so the merge is priced in.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

__all__ = [
    "NameParts",
    "PARTICLES",
    "nfc",
    "search_form",
    "match_key",
    "split_name",
    "parse_date",
    "date_key",
    "postcode_key",
    "street_key",
    "house_number_key",
    "split_street_house_number",
]

# Letters that NFD cannot decompose into base letter + combining mark, spelled the way
# ICAO 9303 (and DIN 91379's search form) spells them.
_SPECIAL = {
    "ß": "ss",
    "ẞ": "ss",
    "ä": "ae",
    "ö": "oe",
    "ü": "ue",
    "æ": "ae",
    "œ": "oe",
    "ø": "oe",
    "å": "aa",
    "ł": "l",
    "đ": "d",
    "ð": "d",
    "þ": "th",
    "ı": "i",
    "ŀ": "l",
    "ħ": "h",
    "ŧ": "t",
    "ĸ": "k",
    "ŋ": "n",
    "ſ": "s",
}
_SPECIAL_TABLE = str.maketrans(_SPECIAL)

# Particles of German, Dutch, French, Italian, Spanish and Portuguese family names, plus the
# former German nobility titles that are legally part of the name (Art. 109 WRV) but are dropped,
# abbreviated or moved around by typists. They carry almost no identifying information and
# their presence is the most common difference between two spellings of a noble name.
PARTICLES: frozenset[str] = frozenset(
    {
        "von", "vom", "zu", "zum", "zur", "v", "van", "vanden", "vander", "de", "der", "den",
        "del", "della", "dello", "degli", "di", "da", "das", "do", "dos", "du", "des", "la",
        "le", "les", "lo", "ten", "ter", "te", "op", "t", "af", "av", "y", "e", "und",
        "graf", "grafin", "graefin", "freiherr", "freifrau", "freiin", "baron", "baronin",
        "prinz", "prinzessin", "furst", "fuerst", "furstin", "fuerstin", "herzog", "herzogin",
        "edle", "edler", "ritter",
    }
)
# Academic degrees and honorifics that end up in name fields of legacy files; never part of
# the name (§ 1 PAuswG puts the doctor's degree in its own field).
_TITLES: frozenset[str] = frozenset({"dr", "prof", "dipl", "ing", "med", "phil", "rer", "nat", "herr", "frau", "hc"})

_NON_LETTER = re.compile(r"[^a-z]+")
_WORD_SPLIT = re.compile(r"[\s\-‐‑‒–—/,.;_]+")
_FOLD = re.compile(r"(?<=[a-z])(ae|oe|ue)")


def nfc(text: str) -> str:
    """Return ``text`` in Unicode NFC with surrounding whitespace stripped.

    DIN 91379 requires NFC: a decomposed ``u`` + combining diaeresis from a macOS form and the
    precomposed ``ü`` from a Windows file must be one and the same character before anything
    else looks at them.
    """
    return unicodedata.normalize("NFC", text).strip()


@lru_cache(maxsize=262_144)  # names and streets repeat: normalise each spelling once
def search_form(text: str | None) -> str:
    """Transliterate to the DIN 91379 / ICAO 9303 search form, lower case.

    ``ä ö ü ß`` become ``ae oe ue ss``; other Latin letters lose their diacritics (``é``→``e``,
    ``ş``→``s``); everything that is not a letter, a space or a hyphen is removed, runs of
    separators become one space or hyphen. ``None`` and blank give ``""``.
    """
    if not text:
        return ""
    s = nfc(text).lower().translate(_SPECIAL_TABLE)
    s = unicodedata.normalize("NFD", s)
    s = "".join(ch for ch in s if unicodedata.category(ch) != "Mn")
    s = s.translate(_SPECIAL_TABLE)  # letters that only appear after decomposition (rare)
    s = re.sub(r"[^a-z\s\-]+", "", s)
    s = re.sub(r"\s*-\s*", "-", s)
    s = re.sub(r"\s+", " ", s)
    return s.strip(" -")


def _fold_word(word: str) -> str:
    """Fold one search-form word to its comparison key (``mueller``→``muller``)."""
    return _FOLD.sub(lambda m: m.group(1)[0], word)


@lru_cache(maxsize=262_144)  # names and streets repeat: normalise each spelling once
def match_key(text: str | None) -> str:
    """Return the comparison key of a single word or phrase: search form, ``ae/oe/ue`` folded,
    only ``a-z`` and single spaces left.

    This is what makes ``Müller``, ``Mueller`` and ``Muller`` equal (``muller``). Only a vowel
    *after a letter* is folded so that a word-initial ``Ue`` (``Uebel``) keeps its shape.
    """
    s = search_form(text)
    if not s:
        return ""
    words = [_fold_word(w) for w in _WORD_SPLIT.split(s) if w]
    return " ".join(w for w in words if w)


@dataclass(frozen=True, slots=True)
class NameParts:
    """A name split into what identifies a person and what does not.

    ``tokens`` are the match keys of the name's words in their written order (a double name
    ``Müller-Lüdenscheidt`` gives ``("muller", "ludenscheidt")``), ``particles`` the separated
    particles and titles (``von``, ``zu``, ``van der``), ``key`` the tokens joined by one space:
    the exact-comparison value.
    """

    tokens: tuple[str, ...]
    particles: tuple[str, ...]

    @property
    def key(self) -> str:
        return " ".join(self.tokens)

    def __bool__(self) -> bool:
        return bool(self.tokens)


_EMPTY = NameParts((), ())


@lru_cache(maxsize=262_144)  # names and streets repeat: normalise each spelling once
def split_name(text: str | None) -> NameParts:
    """Split a given or family name into identifying tokens and particles.

    Particles and nobility titles are separated out (``Karl-Theodor zu Guttenberg`` has the
    family name tokens ``("guttenberg",)`` and the particle ``("zu",)``), academic titles are
    dropped. A name that consists *only* of particles (a person really called ``Le``) keeps them
    as its tokens, so nothing is ever normalised away to an empty name.
    """
    s = search_form(text)
    if not s:
        return _EMPTY
    words = [_fold_word(w) for w in _WORD_SPLIT.split(s) if w]
    words = [w for w in words if w and w not in _TITLES] or [w for w in words if w]
    tokens = tuple(w for w in words if w not in PARTICLES)
    particles = tuple(w for w in words if w in PARTICLES)
    if not tokens:
        return NameParts(tuple(words), ())
    return NameParts(tokens, particles)


# --------------------------------------------------------------------------- dates

_ISO = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ].*)?\s*$")
_GERMAN = re.compile(r"^\s*(\d{1,2})\.\s*(\d{1,2})\.\s*(\d{4})\s*$")
_COMPACT = re.compile(r"^\s*(\d{4})(\d{2})(\d{2})\s*$")
_SLASH = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*$")


def _date_parts(text: str | date | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    if isinstance(text, date):
        return text.year, text.month, text.day
    text = str(text)
    if m := _ISO.match(text):
        y, mo, d = m.groups()
    elif m := _GERMAN.match(text):
        d, mo, y = m.groups()
    elif m := _COMPACT.match(text):
        y, mo, d = m.groups()
    elif m := _SLASH.match(text):
        # dd/mm/yyyy: the European reading; American mm/dd files are a mapping concern.
        d, mo, y = m.groups()
    else:
        return None
    return int(y), int(mo), int(d)


def parse_date(text: str | date | None) -> date | None:
    """Parse a date written as ISO 8601 (``1980-03-07``), German (``07.03.1980``, ``7.3.1980``),
    compact (``19800307``) or ``07/03/1980``; ``None`` if it is not one of those or not a real
    calendar date.

    Two-digit years are refused on purpose: for a birth date ``07.03.12`` may be 1912 or 2012,
    and guessing would create false links.
    """
    parts = _date_parts(text)
    if parts is None:
        return None
    try:
        return date(*parts)
    except ValueError:
        return None


def date_key(text: str | date | None) -> str:
    """Return ``YYYYMMDD`` for comparison, or ``""``.

    More lenient than :func:`parse_date`: a legacy file may hold ``30.02.1980`` or a date whose
    day and month were swapped into ``1980-13-05``. Those are still evidence (one typo away from
    the truth), so any day and month in 1..31 with a four-digit year 1800..2199 is kept.
    """
    parts = _date_parts(text)
    if parts is None:
        return ""
    y, mo, d = parts
    if not (1800 <= y <= 2199 and 1 <= mo <= 31 and 1 <= d <= 31):
        return ""
    return f"{y:04d}{mo:02d}{d:02d}"


# --------------------------------------------------------------------------- addresses

_PLZ_PREFIX = re.compile(r"^\s*(?:D|DE)\s*[-‐]?\s*", re.IGNORECASE)


def postcode_key(text: str | int | None) -> str:
    """Return a German postcode as five digits, or ``""``.

    Spreadsheets turn ``01067`` (Dresden) into the number ``1067``; ``D-01067`` is an old postal
    notation. Both come back as ``01067``. Anything that is not 1..5 digits after stripping
    is not a postcode and gives ``""`` rather than a wrong one.
    """
    if text is None:
        return ""
    if isinstance(text, int):
        s = str(text)
    else:
        s = _PLZ_PREFIX.sub("", str(text).strip())
        if s.endswith(".0") and s[:-2].isdigit():  # the number 1067.0 from a float column
            s = s[:-2]
        s = s.replace(" ", "")
    if not s.isdigit() or not (1 <= len(s) <= 5):
        return ""
    return s.zfill(5)


_STREET_SUFFIX = re.compile(r"(?:strasse|strase|str)$")
_HOUSE_TAIL = re.compile(r"^(.*?[^\d\s])\s*(\d+\s*[a-zA-Z]?(?:\s*[-/]\s*\d+\s*[a-zA-Z]?)?)\s*$")


def split_street_house_number(text: str | None) -> tuple[str, str]:
    """Split ``"Hauptstr. 5a"`` into ``("Hauptstr.", "5a")``; legacy files often have one
    address line where the hub has two fields."""
    if not text:
        return "", ""
    s = nfc(text)
    if m := _HOUSE_TAIL.match(s):
        return m.group(1).strip(" ,"), m.group(2)
    return s, ""


@lru_cache(maxsize=262_144)  # names and streets repeat: normalise each spelling once
def street_key(text: str | None) -> str:
    """Comparison key of a street name.

    ``Hauptstraße``, ``Hauptstrasse``, ``Haupt-Str.`` and ``Hauptstr`` all become ``hauptstr``:
    the abbreviation of *Straße* is the single most frequent difference in German street names.
    Spaces and hyphens are removed because ``Karl-Marx-Str.`` and ``Karl Marx Str`` are the same.
    """
    s = search_form(text)
    if not s:
        return ""
    s = _NON_LETTER.sub("", " ".join(_fold_word(w) for w in _WORD_SPLIT.split(s) if w))
    return _STREET_SUFFIX.sub("str", s)


def house_number_key(text: str | int | None) -> str:
    """``"5 a"``, ``"5A"`` and ``"5a"`` are one house number; leading zeros and spaces go."""
    if text is None:
        return ""
    s = nfc(str(text)).lower()
    if s.endswith(".0") and s[:-2].isdigit():  # the number 5.0 from a float column
        s = s[:-2]
    s = re.sub(r"[\s.]+", "", s)
    s = s.lstrip("0") or ("0" if s else "")
    return s
