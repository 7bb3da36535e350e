"""The deployment files (Dockerfile, .dockerignore, compose.yaml, deploy/nginx.conf) agree with each other,
with the Procfile and with keybot; checked from the files, without Docker."""

from __future__ import annotations

import fnmatch
import http.server
import json
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from bot.secrets.redact import contains_secret

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
NGINX = ROOT / "deploy" / "nginx.conf"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
DEPLOYMENT_FILES = [
    DOCKERFILE,
    ROOT / ".dockerignore",
    COMPOSE,
    NGINX,
    ROOT / "deploy" / "env.example",
    ROOT / "deploy" / "keybot.env.example",
    DEPLOYMENT_DOC,
]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    )
    return [
        (parts[0].upper(), parts[1].strip() if len(parts) > 1 else "")
        for ln in joined.splitlines()
        if (parts := ln.strip().split(None, 1))
    ]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions(DOCKERFILE.read_text()):
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _final() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, args in _stages()[-1]:
        found.setdefault(name, []).append(args)
    return found


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _procfile() -> dict[str, list[str]]:
    return {
        name.strip(): shlex.split(command)
        for name, command in (ln.split(":", 1) for ln in (ROOT / "Procfile").read_text().splitlines() if ln)
    }


def _image_cmd() -> list[str]:
    cmd: list[str] = json.loads(_final()["CMD"][-1])
    return cmd


def _keybot_services() -> dict[str, dict[str, Any]]:
    """Services running the keybot image, whatever their command."""
    return {name: s for name, s in _services().items() if s.get("image", "").startswith("keybot")}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", _image_cmd())
    return shlex.split(command) if isinstance(command, str) else list(command)


def _by_command(*argv: str) -> list[str]:
    return [name for name, s in _keybot_services().items() if _command(s) == list(argv)]


# --- Dockerfile -------------------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_and_the_final_stage_copies_only_the_venv() -> None:
    stages = _stages()
    assert len(stages) >= 2
    assert stages[0][0][1].endswith("AS builder")
    final = _final()
    assert final["FROM"] == ["${PYTHON_IMAGE}"]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE.read_text()
    assert final["COPY"] == ["--from=builder /opt/keybot /opt/keybot"]
    assert "ADD" not in final
    assert any("pip wheel" in args for name, args in stages[0] if name == "RUN")


def test_dockerfile_final_stage_runs_as_a_non_root_user() -> None:
    users = _final()["USER"]
    uid = users[-1].split(":")[0]
    assert uid not in {"root", "0"} and int(uid) >= 1000
    names = [name for name, _ in _stages()[-1]]
    assert "RUN" not in names[names.index("USER") :]


def test_dockerfile_serves_by_default_as_the_procfile_says_and_exposes_its_port() -> None:
    assert _image_cmd() == _procfile()["web"] == ["keybot", "serve"]
    assert _final()["EXPOSE"] == ["3000"]
    env = " ".join(_final()["ENV"])
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "PORT=3000", "KEYBOT_STATE_DIR="):
        assert setting in env


def test_dockerfile_stops_with_sigint_and_needs_no_frontend_image() -> None:
    """keybot sets no SIGTERM handler and Python as PID 1 ignores SIGTERM, so `docker stop` would SIGKILL it
    after 10 s; SIGINT exits at once and the clock gives its leader lease back. A `# syntax=` line would make
    every build pull docker/dockerfile from Docker Hub."""
    assert _final()["STOPSIGNAL"] == ["SIGINT"]
    assert not re.match(r"#\s*syntax\s*=", DOCKERFILE.read_text(), re.IGNORECASE)


def test_dockerfile_declares_no_secret_at_build_time() -> None:
    names = " ".join(_final().get("ENV", []) + _final().get("ARG", []))
    for stage in _stages():
        names += " ".join(args for name, args in stage if name in {"ENV", "ARG"})
    assert not re.search(r"TOKEN|SECRET|PASSWORD|_KEY\b", names, re.IGNORECASE)


def _healthcheck_argv() -> list[str]:
    (check,) = _final()["HEALTHCHECK"]
    argv: list[str] = json.loads(check.split(" CMD ", 1)[1])
    return argv


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []  # noqa: RUF012 - shared by the handler instances of one test

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    _Health.paths = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_dockerfile_healthcheck_asks_healthz_and_fails_when_it_is_not_ok(
    health_server: http.server.HTTPServer, status: int, healthy: bool
) -> None:
    argv = _healthcheck_argv()
    assert argv[:2] == ["python", "-c"]
    _Health.status = status
    port = str(health_server.server_address[1])
    done = subprocess.run([sys.executable, *argv[1:]], env={"PORT": port}, capture_output=True, timeout=10)
    assert (done.returncode == 0) is healthy
    assert _Health.paths == ["/healthz"]


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories decides."""
    parents = [str(Path(*Path(path).parts[: i + 1])) for i in range(len(Path(path).parts))]
    ignored = False
    for raw in patterns:
        negate, pattern = raw.startswith("!"), raw.lstrip("!")
        variants = {pattern, pattern.removeprefix("**/")}
        if any(fnmatch.fnmatchcase(p, v) for p in parents for v in variants):
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".venv/bin/python",
        "tests/test_deployment.py",
        "tests/conftest.py",
        ".pytest_cache/v/cache",
        ".hypothesis/examples/x",
        ".mypy_cache/3.11/x.json",
        ".env",
        "keybot.env",
        "keybot.db",
        ".keybot/fingerprint.key",
        "bot/__pycache__/config.cpython-311.pyc",
        "bot/cli/__pycache__/main.cpython-311.pyc",
        "bench/__main__.py",
    ],
)
def test_dockerignore_keeps_repository_state_and_secrets_out_of_the_build(path: str) -> None:
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    assert _dockerignored(path, [p for p in patterns if p and not p.startswith("#")])


def test_dockerignore_keeps_what_the_build_needs() -> None:
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]
    for path in ("pyproject.toml", "README.md", "bot/cli/main.py", "runbooks/vault-policy.hcl"):
        assert not _dockerignored(path, patterns), path
    copied = [c for a in (args.split()[:-1] for name, args in _stages()[0] if name == "COPY") for c in a]
    assert copied and all(not _dockerignored(c, patterns) for c in copied)


# --- compose.yaml -----------------------------------------------------------------------------------------


def test_compose_runs_postgres_openbao_two_web_replicas_and_the_clocks() -> None:
    services = _services()
    assert services["postgres"]["image"].startswith("postgres:16")
    # Over TCP: the image's init-time temporary server answers on the Unix socket only.
    assert "pg_isready -h 127.0.0.1 " in " ".join(services["postgres"]["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    assert services["openbao"]["image"].startswith("openbao/openbao:")
    assert "-dev" in services["openbao"]["command"]
    assert sorted(_by_command(*_procfile()["web"])) == ["web1", "web2"]
    clocks = _by_command(*_procfile()["clock"])
    assert "clock" in clocks and 1 <= len(clocks) <= 2
    for name in ("web1", "web2"):
        assert "/healthz" in " ".join(services[name]["healthcheck"]["test"])


def test_every_keybot_service_is_a_procfile_process_or_the_migration() -> None:
    procfile = _procfile()
    commands = {name: _command(s) for name, s in _keybot_services().items()}
    assert commands.pop("migrate") == ["keybot", "db", "upgrade"]
    assert commands and all(c in procfile.values() for c in commands.values())


def test_web_and_clock_start_only_after_the_migration_succeeded() -> None:
    services = _services()
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in _by_command("keybot", "serve") + _by_command("keybot", "clock"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_keybot_services_can_write_their_read_only_containers_tmpfs() -> None:
    """Docker mounts a tmpfs as root with only the image directory's mode (0700): without uid/gid the
    image's user could not even read its working directory, and keybot failed at start."""
    uid, _, gid = _final()["USER"][-1].partition(":")
    workdir = _final()["WORKDIR"][-1]
    for name, service in _keybot_services().items():
        mounts = dict(entry.partition(":")[::2] for entry in service.get("tmpfs", []))
        assert workdir in mounts or not service.get("read_only"), name
        if workdir in mounts:
            options = dict(option.partition("=")[::2] for option in mounts[workdir].split(","))
            assert (options.get("uid"), options.get("gid")) == (uid, gid or uid), name


def test_every_keybot_service_uses_the_postgres_service() -> None:
    postgres = _services()["postgres"]["environment"]
    for name, service in _keybot_services().items():
        url = make_url(service["environment"]["DATABASE_URL"])
        assert (url.drivername, url.host, url.port) == ("postgresql+psycopg", "postgres", 5432), name
        assert (url.username, url.database) == (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"])
        assert url.password == postgres["POSTGRES_PASSWORD"]
        assert service["environment"]["VAULT_ADDR"] == "http://openbao:8200"


def test_keybot_never_holds_the_openbao_root_token() -> None:
    for name, service in _keybot_services().items():
        assert "VAULT_DEV_ROOT_TOKEN" not in json.dumps(service), name
        assert service["env_file"] != ".env"
    init = _services()["openbao-init"]
    assert "./runbooks/vault-policy.hcl:/policy/keybot.hcl:ro" in init["volumes"]
    script = init["command"][0]
    assert "bao policy write keybot /policy/keybot.hcl" in script
    assert "-policy=keybot -no-default-policy" in script


def test_compose_variables_are_documented_and_no_secret_literal_is_written() -> None:
    text = COMPOSE.read_text()
    variables = set(re.findall(r"\$\{([A-Z_]+)", text))
    assert {"POSTGRES_PASSWORD", "VAULT_TOKEN", "VAULT_DEV_ROOT_TOKEN"} <= variables
    example = (ROOT / "deploy" / "env.example").read_text()
    doc = DEPLOYMENT_DOC.read_text()
    for variable in variables:
        assert re.search(rf"^{variable}=", example, re.MULTILINE), variable
        assert f"`{variable}`" in doc, variable
    for path in DEPLOYMENT_FILES:
        assert not contains_secret(path.read_text()), path


def test_contains_secret_would_catch_a_real_looking_token_in_compose() -> None:
    planted = COMPOSE.read_text().replace(
        "${VAULT_TOKEN:?set VAULT_TOKEN in .env}", "xoxb-" + "1234567890-1234567890123-" + "a" * 24
    )
    assert planted != COMPOSE.read_text() and contains_secret(planted)


# --- the load balancer ------------------------------------------------------------------------------------


def test_nginx_round_robins_over_both_web_replicas() -> None:
    conf = NGINX.read_text()
    upstreams = dict(re.findall(r"upstream\s+(\w+)\s*\{([^}]*)\}", conf))
    assert list(upstreams) == ["keybot_web"]
    body = upstreams["keybot_web"]
    servers = re.findall(r"^\s*server\s+([\w.-]+:\d+)", body, re.MULTILINE)
    port = _final()["EXPOSE"][0]
    assert sorted(servers) == sorted(f"{name}:{port}" for name in _by_command("keybot", "serve"))
    assert not re.search(r"^\s*(ip_hash|hash|least_conn|random|sticky)\b", body, re.MULTILINE)
    assert "proxy_pass http://keybot_web;" in conf
    assert "non_idempotent" not in conf


def test_the_load_balancer_waits_for_healthy_replicas_and_publishes_its_port() -> None:
    lb = _services()["lb"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in lb["volumes"]
    assert {n: d["condition"] for n, d in lb["depends_on"].items()} == {
        "web1": "service_healthy",
        "web2": "service_healthy",
    }
    listen = re.search(r"listen\s+(\d+);", NGINX.read_text())
    assert listen and lb["ports"][0].endswith(f":{listen.group(1)}")
