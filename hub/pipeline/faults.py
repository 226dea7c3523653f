"""Fault injection for the crash and fault tests, kept out of the pipeline's hot path.

`HUB_FAULT_PIPELINE_DELAY` (seconds, default 0: off) installs a first stage that holds each
message's transaction open for that long, widening the window in which a test's kill -9 lands in
the middle of a batch. Nothing is installed unless it is configured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from hub.pipeline.context import Context, Stage
from hub.runtime import Hub


@dataclass(frozen=True)
class Delay:
    seconds: float

    def __call__(self, hub: Hub, conn: Connection, ctx: Context) -> None:
        time.sleep(self.seconds)


def install(stages: list[Stage], seconds: float) -> None:
    """Put the delay first in `stages` (once), where `seconds` asks for it."""
    if seconds > 0 and not any(isinstance(stage, Delay) for stage in stages):
        stages.insert(0, Delay(seconds))
