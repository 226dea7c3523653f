"""Code lists as data (genericode-style: listURI + listVersionID + codes), loaded from contracts/codelists."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml


@dataclass(frozen=True)
class CodeList:
    key: str
    list_uri: str
    list_version: str
    name: str
    codes: dict[str, str]


@lru_cache(maxsize=None)
def load_codelists(contracts_dir: Path) -> dict[str, CodeList]:
    lists = {}
    for path in sorted((contracts_dir / "codelists").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        lists[path.stem] = CodeList(
            key=path.stem,
            list_uri=data["listURI"],
            list_version=str(data["listVersionID"]),
            name=data.get("name", path.stem),
            codes={str(k): str(v) for k, v in data["codes"].items()},
        )
    return lists
