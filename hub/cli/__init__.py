"""The `hub` command line (surface.md): one module per command group over `base`.

Exit codes: 0 success, 1 input refused, 2 usage error. Errors are one clear sentence on stderr;
`--debug` shows the traceback instead.
"""

from hub.cli import audit, chain, contracts, dedup, messages, partners, running, users  # noqa: F401 - each registers its commands
from hub.cli.base import app, main

__all__ = ["app", "main"]
