"""Static checks of the process definitions: compose files as docker-compose resolves them, start scripts, Dockerfile.

That the Procfile, the compose files and the start scripts agree is the generated suite's own test
(tests/test_process_definitions.py, run by test_generated_project.py); the end-to-end behaviour of
the same scripts is in test_processes_e2e.py.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from bakery import PROJECT_PYTHON, TEMPLATE_DIR, read_env_file, run_in
from docker.utils.build import exclude_paths
from test_generated_project import COMBINATIONS, NO_FLOWER

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.production.yml")
# Everything the compose files run from the image is under /app, the Dockerfile's WORKDIR.
IMAGE_WORKDIR = "/app"
ONE_SHOT_SERVICES = {"migrate"}


@pytest.fixture(params=list(COMBINATIONS), ids=list(COMBINATIONS))
def project(request, bake_once) -> Path:
    return bake_once(request.param, **COMBINATIONS[request.param])


@pytest.fixture(scope="session")
def default_project(bake_once) -> Path:
    return bake_once("defaults")


@functools.cache
def compose_config(project: Path, compose_file: str) -> dict:
    """The file as docker-compose resolves it: anchors merged, env files read, `$$` kept."""
    return yaml.safe_load(run_in(project, "docker-compose", "-f", compose_file, "config").stdout)


def procfile(project: Path) -> dict[str, str]:
    commands = {}
    for line in (project / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and not line.lstrip().startswith("#"):
            commands[name.strip()] = command.strip()
    return commands


def exec_line(script: Path) -> str:
    lines = [line.strip() for line in script.read_text().splitlines() if line.strip()]
    return lines[-1]


def image_paths(service: dict) -> list[str]:
    """The programs a service built from our image runs: its command and its health check."""
    command = service["command"]
    paths = [shlex.split(command)[0] if isinstance(command, str) else command[0]]
    test = service.get("healthcheck", {}).get("test", [])
    if test and test[0] == "CMD":
        paths.append(test[1])
    return paths


def seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(value) * units[unit] for value, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration))


def django_setting(project: Path, venv: Path, name: str) -> str:
    code = f"from django.conf import settings; print(settings.{name})"
    # The last line: Django's shell may first report the objects it imported.
    return run_in(project, "python", "manage.py", "shell", "-c", code, venv=venv).stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_compose_file_is_valid(project, compose_file):
    run_in(project, "docker-compose", "-f", compose_file, "config", "-q")


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_every_program_a_service_runs_is_an_executable_in_the_image(project, compose_file):
    context = build_context(project)
    for name, service in compose_config(project, compose_file)["services"].items():
        if "build" not in service:
            continue
        for program in image_paths(service):
            relative = program.removeprefix(f"{IMAGE_WORKDIR}/")
            path = project / relative
            assert path.is_file(), f"{compose_file}: {name} runs {program}, which the project does not have"
            assert os.access(path, os.X_OK), f"{compose_file}: {name} runs {program}, which is not executable"
            assert relative in context, f"{program} is left out of the image by .dockerignore"


def test_every_script_is_strict_bash_that_ends_in_exec(project):
    scripts = [
        path
        for path in (project / "compose").rglob("*")
        # Not the Python ones (below) nor a server's configuration (RabbitMQ's rabbitmq.conf).
        if path.is_file() and path.suffix not in {".py", ".conf"} and "__pycache__" not in path.parts
    ]
    assert scripts
    # The Python ones (the local reloader) are linted by ruff with the rest of the code.
    for script in (project / "compose").rglob("*.py"):
        assert script.read_text().startswith("#!/usr/bin/env python\n"), script.name
        assert os.access(script, os.X_OK), script.name
    for script in scripts:
        lines = script.read_text().splitlines()
        assert lines[:2] == ["#!/usr/bin/env bash", "set -o errexit -o nounset -o pipefail"], script.name
        if script.name.startswith("healthcheck-") and not re.search(r"^exec ", script.read_text(), re.M):
            # A probe in plain bash starts no process: it answers with its exit status.
            assert re.search(r"^\s*exit 1$", script.read_text(), re.M), script.name
            continue
        # Either the last line execs, or a heredoc fed to an exec'd interpreter closes the script.
        assert "exec " in exec_line(script) or re.search(r"^exec .*<<'(\w+)'$", script.read_text(), re.M), script.name


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_every_long_running_service_has_a_health_check(project, compose_file):
    services = compose_config(project, compose_file)["services"]
    unchecked = [name for name, service in services.items() if "healthcheck" not in service]
    assert unchecked == sorted(ONE_SHOT_SERVICES)


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_services_wait_for_healthy_dependencies_and_for_migrations(project, compose_file):
    services = compose_config(project, compose_file)["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT_SERVICES else "service_healthy"
            assert condition == {"condition": expected}, f"{name} -> {dependency}"
        if "build" in service and name not in ONE_SHOT_SERVICES and name != "flower":
            assert "migrate" in service["depends_on"], f"{name} may start before migrations ran"
    if "flower" in services:
        assert {"worker", "worker-io", "worker-cpu"} <= set(services["flower"]["depends_on"])


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_worker_stop_grace_period_outlasts_the_hard_time_limit(default_project, template_venv, compose_file):
    hard_limit = float(django_setting(default_project, template_venv, "CELERY_TASK_TIME_LIMIT"))
    services = compose_config(default_project, compose_file)["services"]
    for name in ("worker", "worker-io", "worker-cpu"):
        assert seconds(services[name]["stop_grace_period"]) > hard_limit, name


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_redis_persists_and_never_evicts(default_project, compose_file):
    command = compose_config(default_project, compose_file)["services"]["redis"]["command"]
    command = " ".join(command) if isinstance(command, list) else command
    assert "--appendonly yes" in command
    # A limit, so a full Redis refuses writes loudly instead of being killed by the kernel.
    assert "--maxmemory " in command
    assert "--maxmemory-policy noeviction" in command


def test_local_email_goes_to_mailpit_so_nothing_reaches_real_inboxes(default_project):
    services = compose_config(default_project, "docker-compose.yml")["services"]
    assert "healthcheck" in services["mailpit"]
    env = read_env_file(default_project / ".envs/.local/.django")
    assert (env["EMAIL_HOST"], env["EMAIL_PORT"]) == ("mailpit", "1025")


def test_production_redis_requires_the_password_that_redis_url_carries(default_project):
    services = compose_config(default_project, "docker-compose.production.yml")["services"]
    assert '--requirepass "$$REDIS_PASSWORD"' in " ".join(services["redis"]["command"])
    assert "REDISCLI_AUTH" in services["redis"]["healthcheck"]["test"][1]
    password = services["redis"]["environment"]["REDIS_PASSWORD"]
    assert f":{password}@redis:" in services["web"]["environment"]["REDIS_URL"]


def test_production_publishes_no_database_or_broker_port_and_the_rest_on_loopback_only(project):
    services = compose_config(project, "docker-compose.production.yml")["services"]
    for name in ("redis", "postgres"):
        assert "ports" not in services[name], f"production publishes {name}"
    for name, service in services.items():
        for port in service.get("ports", []):
            published = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port['published']}"
            assert published.startswith("127.0.0.1:"), f"production publishes {name} on {published}"


# Host ports the README names, each with the variable that moves it.
PUBLISHED_PORTS = {"web": ("WEB_HOST_PORT", 8000), "flower": ("FLOWER_HOST_PORT", 5555),
                   "mailpit": ("MAILPIT_HOST_PORT", 8025)}  # fmt: skip


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_published_ports_are_the_readme_ones_and_each_moves_with_its_variable(default_project, compose_file):
    def published(env: dict[str, str] | None = None) -> dict[str, list[str]]:
        resolved = run_in(default_project, "docker-compose", "-f", compose_file, "config", env=env).stdout
        config = yaml.safe_load(resolved)
        return {name: service["ports"] for name, service in config["services"].items() if service.get("ports")}

    default = published()
    assert "web" in default
    assert set(default) <= set(PUBLISHED_PORTS)
    assert default == {name: [f"127.0.0.1:{port}:{port}/tcp"] for name, (_, port) in PUBLISHED_PORTS.items()
                       if name in default}  # fmt: skip
    moved = published({variable: str(20000 + port) for variable, port in PUBLISHED_PORTS.values()})
    assert moved == {name: [f"127.0.0.1:{20000 + port}:{port}/tcp"] for name, (_, port) in PUBLISHED_PORTS.items()
                     if name in default}  # fmt: skip


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_production_and_local_services_use_their_own_generated_env_files(project, compose_file):
    kind = "production" if "production" in compose_file else "local"
    services = compose_config(project, compose_file)["services"]
    assert services["web"]["environment"]["DJANGO_SETTINGS_MODULE"] == f"config.settings.{kind}"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] in services["web"]["environment"]["DATABASE_URL"]


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_exactly_one_beat_and_no_worker_runs_beat_inside_it(default_project, compose_file):
    services = compose_config(default_project, compose_file)["services"]
    # A fixed container name makes `--scale beat=2` fail.
    assert services["beat"].get("container_name")
    for command in procfile(default_project).values():
        argv = shlex.split(command)
        assert "-B" not in argv
        assert "--beat" not in argv


def test_without_flower_no_flower_service_script_or_health_check_is_generated(bake_once):
    project = bake_once(NO_FLOWER, **COMBINATIONS[NO_FLOWER])
    for compose_file in COMPOSE_FILES:
        assert "flower" not in compose_config(project, compose_file)["services"]
        assert "flower" not in (project / compose_file).read_text().lower()
    assert not list((project / "compose").glob("*flower*"))


def test_flower_requires_basic_auth_with_the_generated_credentials(default_project):
    # Read by config/flower.py: never on a command line, which every user of the host can read.
    command = procfile(default_project)["flower"]
    assert command.endswith(" --conf=config/flower.py")
    assert "--basic-auth" not in command
    for compose_file in COMPOSE_FILES:
        environment = compose_config(default_project, compose_file)["services"]["flower"]["environment"]
        assert len(environment["FLOWER_PASSWORD"]) >= 32


def dockerfile_stages(project: Path) -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined), in order."""
    text = re.sub(r"\\\n\s*", " ", (project / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            current = stages.setdefault(line.split()[-1], [])
        current.append(line)
    return stages


def test_dockerfile_builds_with_uv_from_pyproject_and_the_lock_file_when_present(default_project):
    builder = " ".join(dockerfile_stages(default_project)["builder"])
    assert "COPY pyproject.toml uv.lock* ./" in builder
    assert "if [ -f uv.lock ]; then uv sync --locked" in builder


def test_final_image_runs_as_an_unprivileged_user_without_build_tools(project):
    stages = dockerfile_stages(project)
    final_name, final = list(stages.items())[-1]
    assert final_name == "runtime"
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users, "the final stage never drops root"
    assert users[-1] not in ("root", "0")
    installs = [line for line in final if re.search(r"\b(uv|pip install|apt-get install|gcc|build-essential)\b", line)]
    assert installs == []
    assert any(line.startswith("COPY --from=builder /opt/venv") for line in final)


def test_image_python_is_the_python_the_tests_run_on(default_project, template_venv):
    """The Dockerfile, .python-version, GitLab's image and the generated suites' interpreter: one Python."""
    versions = re.findall(r"^FROM python:(\d+\.\d+)-slim AS \w+$", (default_project / "Dockerfile").read_text(), re.M)
    assert versions == [PROJECT_PYTHON] * 2
    assert (default_project / ".python-version").read_text().strip() == PROJECT_PYTHON
    gitlab_ci = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / ".gitlab-ci.yml"
    assert f"image: python:{PROJECT_PYTHON}-slim" in gitlab_ci.read_text()
    tested_on = run_in(
        default_project, "python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])", venv=template_venv
    )
    assert tested_on.stdout.strip() == PROJECT_PYTHON


def test_dockerfile_collectstatic_step_works_with_its_build_time_placeholders(project, template_venv, tmp_path):
    """The RUN that collects static files, run as the build runs it: production settings, placeholder env."""
    # A copy, so the shared bake gets no staticfiles/.
    project = Path(shutil.copytree(project, tmp_path / project.name))
    runtime = dockerfile_stages(project)["runtime"]
    (run,) = [line for line in runtime if "collectstatic" in line]
    (settings_module,) = re.findall(r"DJANGO_SETTINGS_MODULE=(\S+)", " ".join(runtime))
    run_in(
        project, "bash", "-c", run.removeprefix("RUN "),
        venv=template_venv, env={"DJANGO_SETTINGS_MODULE": settings_module},
    )  # fmt: skip
    assert (project / "staticfiles" / "staticfiles.json").exists()


def build_context(project: Path) -> set[str]:
    """The files `docker build` sends from the project: .dockerignore applied by the Docker SDK's own rules."""
    patterns = [line.strip() for line in (project / ".dockerignore").read_text().splitlines()]
    patterns = [pattern for pattern in patterns if pattern and not pattern.startswith("#")]
    return {path for path in exclude_paths(str(project), patterns) if (project / path).is_file()}


def test_the_build_context_has_the_application_and_no_secrets_tests_tools_or_docs(project, tmp_path):
    # A copy, with the local state a developer's checkout has.
    project = Path(shutil.copytree(project, tmp_path / project.name))
    for relative in (
        ".venv/bin/python",
        "db.sqlite3",
        "config/__pycache__/a.pyc",
        ".redis/appendonly.aof",
        ".rabbitmq/mnesia/rabbit@localhost/quorum/data",  # `make rabbitmq`'s node
        ".upstream-check/output/kombu-unit-0.txt",  # `make upstream-check`'s virtualenv, sdists and output
    ):
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).touch()
    context = build_context(project)
    left_out = (
        ".env",
        ".envs",
        ".venv",
        "db.sqlite3",
        ".redis",
        ".rabbitmq",
        ".upstream-check",
        "tests",
        "tools",
        "docs",
        "__pycache__",
    )
    assert sorted(path for path in context if set(Path(path).parts) & set(left_out)) == []
    for relative in (
        "manage.py",
        "Procfile",
        "compose/start-web",
        "config/settings/production.py",
        "pyproject.toml",
        "my_project/taskqueue/patches/celery_worker.py",
    ):
        assert relative in context, relative
