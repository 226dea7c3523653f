"""`python -m hub.cli ...`, as the `hub` command."""

from hub.cli import main

main()
