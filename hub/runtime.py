"""The running hub: settings, database, broker and the loaded contracts, built once per process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml
from sqlalchemy.engine import Engine

from hub.store import db
from hub.store import migrate
from hub.adapters import get_adapter
from hub.adapters.base import Adapter
from hub.config import Settings
from hub.store.group_commit import GroupCommit
from hub.chain.engine import Engine as ChainEngine
from hub.chain.steering import Steering
from hub.dedup.person_index import PersonIndex, person_index_for
from hub.partners import Partner, load_partners
from hub.routing.purposes import PurposeProfiles
from hub.routing.rules import RouteTable
from hub.schemas.registry import Registry, registry_for
from hub.transport import Transport, create_transport

T = TypeVar("T")


@dataclass
class Hub:
    settings: Settings
    _parts: dict[Callable[..., Any], Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @cached_property
    def contracts_dir(self) -> Path:
        return self.settings.contracts_dir.resolve()

    @cached_property
    def engine(self) -> Engine:
        return db.get_engine(self.settings.database_url)

    @cached_property
    def transport(self) -> Transport:
        return create_transport(self.settings, self.engine)

    @cached_property
    def registry(self) -> Registry:
        return registry_for(self.contracts_dir)

    @property
    def partners(self) -> dict[str, Partner]:
        return load_partners(self.contracts_dir)

    @cached_property
    def routes(self) -> RouteTable:
        return RouteTable.load(self.contracts_dir / "routes.yaml")

    @cached_property
    def purposes(self) -> PurposeProfiles:
        return PurposeProfiles.load(self.contracts_dir / "purposes.yaml")

    @cached_property
    def person_index(self) -> PersonIndex | None:
        """The master person index, or None where no model is configured (contracts/dedup/)."""
        return person_index_for(self.contracts_dir)

    @cached_property
    def dedup_policy(self) -> dict:
        path = self.contracts_dir / "dedup" / "policy.yaml"
        return yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}

    @cached_property
    def chain(self) -> ChainEngine:
        """The case chain: lifecycle, steering rules, service levels and measures (contracts/chain/),
        checked completely when they load (a `ContractError` names file and line)."""
        return ChainEngine(Steering.load(self.contracts_dir), self.partners)

    def part(self, build: Callable[[Hub], T]) -> T:
        """The component `build` makes for this hub, made once. Higher layers keep their per-hub
        state here (the pipeline's quittung templates), so this composition root never imports them."""
        try:
            return self._parts[build]
        except KeyError:
            return self._parts.setdefault(build, build(self))

    def adapter(self, fmt: str) -> Adapter:
        return get_adapter(self.contracts_dir, fmt)

    @cached_property
    def group_commit(self) -> GroupCommit:
        """Ingress writes of concurrent requests, committed together (hub.group_commit)."""
        return GroupCommit(self.engine)

    def migrate(self) -> None:
        migrate.upgrade(self.settings.database_url)

    def close(self) -> None:
        if "group_commit" in self.__dict__:
            self.group_commit.close()
        if "transport" in self.__dict__:
            self.transport.close()
