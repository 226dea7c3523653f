"""`hub db upgrade`: Alembic migrations, configured in code so no alembic.ini has to be found."""

from __future__ import annotations

import threading

from alembic import command
from alembic.config import Config

_lock = threading.Lock()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "hub.store:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    with _lock:
        command.upgrade(alembic_config(url), revision)
