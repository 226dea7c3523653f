"""docker-compose.yml and the Dockerfile name only things that exist (docker itself does not run here)."""

from __future__ import annotations

import re
import shlex

import typer.main
import yaml

from hub.cli import app
from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"


def _hub_command_ok(argv: list[str]) -> None:
    """Resolve `hub <group> <command> --options` against the real CLI; unknown commands or options raise."""
    assert argv[0] == "hub", argv
    command = typer.main.get_command(app)
    args = argv[1:]
    while hasattr(command, "list_commands"):  # a group (typer may vendor its own click: duck-type)
        name, args = args[0], args[1:]
        sub = command.get_command(command.make_context("hub", [], resilient_parsing=True), name)
        assert sub is not None, f"`{' '.join(argv)}`: hub has no command {name!r}"
        command = sub
    command.make_context(argv[-1], list(args))  # parses and validates every option without running


def test_compose_file_parses_and_has_the_services_of_the_production_path() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"rabbitmq", "postgres", "api", "worker-1", "worker-2"} <= set(services)
    assert "management" in services["rabbitmq"]["image"], "RabbitMQ with the management plugin"
    for name, service in services.items():
        assert "healthcheck" in service or name == "migrate", f"{name} has no health check"
    assert {"rabbitmq-data", "postgres-data"} <= set(compose["volumes"]), "broker and database keep their data in volumes"
    for name in ("api", "worker-1", "worker-2"):
        env = services[name]["environment"]
        assert env["HUB_BROKER_URL"].startswith("amqp://") and env["HUB_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_every_command_and_file_named_by_compose_and_dockerfile_exists() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    for name, service in compose["services"].items():
        if "build" in service:
            context = ROOT / (service["build"] if isinstance(service["build"], str) else service["build"].get("context", "."))
            dockerfile = service["build"].get("dockerfile", "Dockerfile") if isinstance(service["build"], dict) else "Dockerfile"
            assert (context / dockerfile).is_file(), f"{name}: {context / dockerfile} is missing"
        command = service.get("command")
        if command:
            argv = command if isinstance(command, list) else shlex.split(command)
            if argv[0] == "hub":
                _hub_command_ok(argv)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for line in dockerfile.splitlines():
        if line.startswith("COPY"):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
        match = re.match(r'CMD \[(.*)\]', line)
        if match:
            _hub_command_ok([part.strip().strip('"') for part in match.group(1).split(",")])
