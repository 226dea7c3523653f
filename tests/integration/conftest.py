"""Fixtures for tests against the real RabbitMQ and PostgreSQL (see services.py for isolation and skips)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.conftest import CONTRACTS, ROOT, ManagedProcess
from tests.integration.services import postgres_database, rabbitmq_vhost


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture
def amqp_url() -> Iterator[str]:
    with rabbitmq_vhost() as url:
        yield url


@pytest.fixture
def amqp_pg_env(tmp_path: Path, pg_url: str, amqp_url: str) -> dict[str, str]:
    """hub_env for the production path: own PostgreSQL database, own vhost."""
    return {
        "HUB_DATABASE_URL": pg_url,
        "HUB_BROKER_URL": amqp_url,
        "HUB_CONTRACTS_DIR": str(CONTRACTS),
        "HUB_VISIBILITY_TIMEOUT": "3",
        "HUB_LOG_FORMAT": "json",
        "HUB_LOG_LEVEL": "warning",
        "HUB_MAX_MESSAGE_BYTES": str(256 * 1024),
        "HUB_TEST_LOG": str(tmp_path / "hub.log"),
    }


def contracts_with(tmp_path: Path, **deliveries: str) -> Path:
    """A copy of the repo's contracts with some partners' `delivery` changed (e.g. to amqp)."""
    target = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, target)
    for partner_id, delivery in deliveries.items():
        path = target / "partners" / f"{partner_id}.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["delivery"] = delivery
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target


@dataclass
class WorkerProcess(ManagedProcess):
    """A `hub worker` subprocess, to be killed and restarted."""

    env: dict[str, str]
    role: str = "all"
    threads: int = 1
    proc: subprocess.Popen | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        log = open(self.env["HUB_TEST_LOG"], "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "worker", "--role", self.role, "--threads", str(self.threads)],
            env={**os.environ, **self.env, **self.extra_env}, cwd=ROOT, stdout=log, stderr=log,
        )
        time.sleep(0.2)
        if self.proc.poll() is not None:
            raise RuntimeError(f"hub worker exited with {self.proc.returncode}")



@pytest.fixture
def hub_env(amqp_pg_env: dict[str, str]) -> dict[str, str]:
    """In tests/integration, `hub`, `tokens` and `live_hub` run on RabbitMQ + PostgreSQL."""
    return amqp_pg_env


