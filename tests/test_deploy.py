"""docker-compose.yml and the Dockerfile name real entry points and real settings."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml
from typer.main import get_command

from newsflow.config import Settings
from producer.cli import app
from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
OUR_SERVICES = ("migrate", "worker", "flower", "producer")


def _command(service: str) -> list[str]:
    command = COMPOSE["services"][service]["command"]
    return command if isinstance(command, list) else shlex.split(command)


def test_newsflow_commands_exist_with_their_options() -> None:
    cli = get_command(app)
    for service in OUR_SERVICES:
        argv = _command(service)
        if argv[0] != "newsflow":
            continue
        command = cli
        words = iter(argv[1:])
        for word in words:
            if word.startswith("-"):
                params = {o for p in command.params for o in getattr(p, "opts", [])}
                assert word.split("=")[0] in params, f"{service}: unknown option {word}"
            elif hasattr(command, "commands") and word in command.commands:
                command = command.commands[word]
            # otherwise a positional value or an option's value
        assert command is not cli, f"{service}: no subcommand in {argv}"


def test_celery_entry_point_is_the_worker_app() -> None:
    argv = _command("flower")
    assert argv[:3] == ["celery", "-A", "worker.app"]
    from worker.app import app as celery_app

    assert celery_app.conf.task_serializer == "json"


def test_environment_names_real_settings() -> None:
    fields = {f"NEWSFLOW_{name.upper()}" for name in Settings.model_fields}
    for service in OUR_SERVICES:
        env = COMPOSE["services"][service]["environment"]
        for key in env:
            assert key in fields, f"{service}: {key} is not a setting"
        assert "NEWSFLOW_BROKER_URL" in env and "NEWSFLOW_DATABASE_URL" in env


def test_services_and_durability() -> None:
    services = COMPOSE["services"]
    assert {"redis", "postgres", "worker", "flower", "producer"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]
    assert "healthcheck" in services["postgres"]
    assert services["worker"]["build"] == "."
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "'.[worker]'" in dockerfile
    for path in ("newsflow", "worker", "producer", "examples"):
        assert (ROOT / path).is_dir() and f"COPY {path}" in dockerfile
    assert Path(ROOT / "pyproject.toml").exists()
