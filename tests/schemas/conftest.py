"""Shared fixtures for the contract-registry tests.

Every test here runs with Python-level network access blocked, so a schema loader that tried
to fetch an import (xmlschema uses urllib) fails loudly instead of quietly going online.
libxml2's own C-level loader does not go through Python sockets; for lxml the guarantee is the
CatalogResolver, which the tests exercise directly.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

XWASSER_DIR = Path(__file__).resolve().parents[2] / "contracts" / "standards" / "xwasser-1.0.0"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"test tried to open a network connection: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="session")
def xwasser_dir() -> Path:
    assert (XWASSER_DIR / "xwasser.xsd").is_file(), f"XWasser 1.0.0 is shipped at {XWASSER_DIR}"
    return XWASSER_DIR.resolve()
