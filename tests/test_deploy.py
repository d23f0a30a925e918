"""docker-compose.yml and the Dockerfile name real entry points and real settings."""

from __future__ import annotations

import re
import shlex

import yaml
from typer.main import get_command

from newsflow.config import Settings
from producer.cli import app
from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
OUR_SERVICES = ("migrate", "worker", "flower", "api", "producer")


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


SECRET = re.compile(r"^\$\{(?P<name>[A-Z_]+):\?[^}]+\}$")


def _secret_name(value: str) -> str | None:
    match = SECRET.match(value)
    return match.group("name") if match else None


def test_secrets_come_from_an_uncommitted_env_file() -> None:
    services = COMPOSE["services"]
    assert _secret_name(services["postgres"]["environment"]["POSTGRES_PASSWORD"])
    for service in OUR_SERVICES:
        env = services[service]["environment"]
        broker, database = env["NEWSFLOW_BROKER_URL"], env["NEWSFLOW_DATABASE_URL"]
        assert re.search(r"redis://:\$\{REDIS_PASSWORD:\?", broker), broker
        assert re.search(r":\$\{POSTGRES_PASSWORD:\?[^}]+\}@", database), database
    redis = services["redis"]["command"]
    assert _secret_name(redis[redis.index("--requirepass") + 1]) == "REDIS_PASSWORD"
    used = set(re.findall(r"\$\{([A-Z_]+):\?", (ROOT / "docker-compose.yml").read_text()))
    example = (ROOT / ".env.example").read_text()
    assert used == {
        "REDIS_PASSWORD",
        "POSTGRES_PASSWORD",
        "FLOWER_BASIC_AUTH",
        "NEWSFLOW_API_TOKEN",
    }
    for name in used:
        assert re.search(rf"^{name}=$", example, re.M), f".env.example lacks {name}"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_flower_asks_for_a_password_and_listens_on_localhost_only() -> None:
    flower = COMPOSE["services"]["flower"]
    auth = [word for word in _command("flower") if word.startswith("--basic-auth=")]
    assert len(auth) == 1 and _secret_name(auth[0].removeprefix("--basic-auth=")) == (
        "FLOWER_BASIC_AUTH"
    )
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])


def test_the_api_listens_behind_its_token() -> None:
    api = COMPOSE["services"]["api"]
    assert _secret_name(api["environment"]["NEWSFLOW_API_TOKEN"]) == "NEWSFLOW_API_TOKEN"
    argv = _command("api")
    assert argv[:2] == ["newsflow", "serve"] and "/healthz" in str(api["healthcheck"]["test"])
    assert all(port.startswith("127.0.0.1:") for port in api["ports"])


def test_images_and_packages_are_pinned() -> None:
    for service in COMPOSE["services"].values():
        if "image" in service:
            tag = service["image"].partition(":")[2]
            assert re.fullmatch(r"\d+\.\d+(\.\d+)?(-\w+)?", tag), service["image"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", dockerfile, re.M)
    assert base and re.search(r":\d+\.\d+\.\d+", base.group(1)), "base image not pinned"
    assert "-c deploy/constraints.txt" in dockerfile
    pins = (ROOT / "deploy" / "constraints.txt").read_text()
    for package in ("celery", "kombu", "redis", "spacy", "trafilatura", "flower", "tornado",
                    "fastapi", "uvicorn", "sse-starlette", "jinja2"):  # fmt: skip
        assert re.search(rf"^{package}==\S+$", pins, re.M | re.I), f"{package} not pinned"
