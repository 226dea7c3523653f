"""Adapter registry: a format's adapter class is named by its file `contracts/formats/<name>.yaml`
(`adapter: module:Class`), so a new format is one adapter module plus one YAML file."""

from __future__ import annotations

import importlib
from functools import lru_cache
from pathlib import Path

from hub.adapters.base import Adapter
from hub.schemas.formats import formats_in


@lru_cache(maxsize=None)
def get_adapter(contracts_dir: Path, fmt: str) -> Adapter:
    spec = formats_in(Path(contracts_dir).resolve()).get(fmt)
    if spec is None:
        raise LookupError(f"no adapter for format {fmt!r}")
    module, _, name = spec.adapter.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise LookupError(f"contracts/formats/{fmt}.yaml: adapter {spec.adapter!r} cannot be imported ({exc})") from None
    return cls(Path(contracts_dir), fmt)


def format_names(contracts_dir: Path) -> list[str]:
    """The formats a contracts directory defines, by name."""
    return list(formats_in(Path(contracts_dir).resolve()))
