"""Adapter registry: format name -> adapter class. Add a format by adding a module and a line here."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from hub.adapters.agency_xml import AgencyXmlAdapter
from hub.adapters.base import Adapter
from hub.adapters.municipal_csv import MunicipalCsvAdapter
from hub.adapters.provider_json import ProviderJsonAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    AgencyXmlAdapter.format: AgencyXmlAdapter,
    ProviderJsonAdapter.format: ProviderJsonAdapter,
    MunicipalCsvAdapter.format: MunicipalCsvAdapter,
}


@lru_cache(maxsize=None)
def get_adapter(contracts_dir: Path, fmt: str) -> Adapter:
    try:
        return ADAPTERS[fmt](contracts_dir)
    except KeyError:
        raise LookupError(f"no adapter for format {fmt!r}") from None
