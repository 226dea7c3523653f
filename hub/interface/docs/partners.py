"""What a partner page needs to know about a partner: its contract versions and its format's field names.

Why a module of its own: a partner page shows the version the hub would really resolve for the
partner and the field names in the partner's own format (a name table in contracts/formats/*.yaml,
or the format's JSON pointers), so a purpose's allowed fields read as the partner will meet them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.partners import Partner
from hub.schemas.formats import formats_in
from hub.schemas.registry import Registry


def name_tables(contracts_dir: Path) -> dict[str, dict[str, str]]:
    """Format -> its table of canonical field name -> the format's name, for formats that have one."""
    return {
        name: {str(k): str(v) for k, v in fmt.spec["names"].items()}
        for name, fmt in formats_in(Path(contracts_dir).resolve()).items()
        if isinstance(fmt.spec.get("names"), dict)
    }


def field_in_format(fmt: str, path: str, names: dict[str, dict[str, str]], pointers: dict[str, Any] | None = None) -> str | None:
    """A canonical field path (participant.given_name) as the partner's format names it, if known."""
    if path == "*":
        return None
    parts = path.split(".")
    if fmt in names:
        table = names[fmt]
        return "/".join(table[p] for p in parts) if all(p in table for p in parts) else None
    pointer = (pointers or {}).get(fmt)  # a format without a name table names fields by JSON pointer
    return pointer(path) if pointer else None


def version_key(version: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in version.split("."))


def partner_version(partner: Partner, message_type: str, registry: Registry) -> str:
    """The contract version a partner exchanges `message_type` in, as the hub resolves it."""
    available = sorted((v for (t, v, f) in registry.contracts if t == message_type and f == partner.format), key=version_key)
    resolve = getattr(partner, "version_for", None)  # the hub's own rule, where the Partner has one
    if resolve is not None and available:
        return str(resolve(message_type, available))
    per_type = partner.profile.get("versions")
    if isinstance(per_type, dict) and message_type in per_type:
        return str(per_type[message_type])
    return partner.version
