"""The Procfile, the compose files and the compose/start-* scripts describe the same processes.

The Procfile is what `make dev` runs; each compose service runs the start script of the same
name, which execs the Procfile's command. A change to one that is not made to the others fails here.
"""

import re
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.project_slug }}.taskqueue.process_definitions import (
    COMPOSE_FILES,
    RELOADER,
    command_environment,
    compose_processes,
    option_value,
    procfile_commands,
    script_command,
    worker_queues,
)
from tools.procfile import PROCFILE, PROJECT_DIR

# Local development serves web with runserver, and runs the workers under the reloader: both restart on code changes.
LOCAL_ONLY_SCRIPTS = {("docker-compose.yml", "web"): "compose/local/start-web"} | {
    ("docker-compose.yml", name): [RELOADER, f"compose/start-{name}"] for name in ("worker", "worker-io", "worker-cpu")
}
WORKER_NODE = re.compile(r"(?:^|\s)-n\s+(\S+)@%h(?:\s|$)")


def start_scripts() -> dict[str, Path]:
    return {path.name.removeprefix("start-"): path for path in sorted((PROJECT_DIR / "compose").glob("start-*"))}


def compose_services(compose_file: str) -> dict:
    return yaml.safe_load((PROJECT_DIR / compose_file).read_text())["services"]


def test_every_procfile_process_has_a_start_script_and_every_start_script_a_process():
    assert sorted(start_scripts()) == sorted(procfile_commands(PROCFILE))


def test_each_start_script_execs_exactly_its_procfile_command():
    commands = procfile_commands(PROCFILE)
    for name, script in start_scripts().items():
        assert script_command(script) == commands[name], f"{script.name} drifted from the Procfile's {name}"


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_each_compose_service_runs_the_start_script_of_its_procfile_process(compose_file):
    services = compose_services(compose_file)
    for name in procfile_commands(PROCFILE):
        expected = LOCAL_ONLY_SCRIPTS.get((compose_file, name), f"compose/start-{name}")
        assert services[name]["command"] == expected, f"{compose_file}: {name}"


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_each_compose_file_runs_every_worker_command_of_the_procfile(compose_file):
    commands = procfile_commands(PROCFILE)
    workers = {name: command for name, command in commands.items() if " worker " in f" {command} "}
    run = {process.name: process.command for process in compose_processes(PROJECT_DIR, compose_file)}
    assert {name: run.get(name) for name in workers} == workers


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_worker_health_checks_ping_the_node_their_command_names(compose_file):
    services = compose_services(compose_file)
    for name, command in procfile_commands(PROCFILE).items():
        if " worker " not in f" {command} ":
            continue
        (node,) = WORKER_NODE.findall(command)
        assert services[name]["healthcheck"]["test"] == ["CMD", "compose/healthcheck-worker", node], name


def test_no_process_runs_beat_inside_a_worker():
    for command in procfile_commands(PROCFILE).values():
        assert not re.search(r"\s(-B|--beat)(\s|$)", f" {command} "), command


def test_a_leading_env_sets_variables_and_names_the_program():
    environment, argv = command_environment("env REMAP_SIGTERM=SIGQUIT A_B=1 celery -A config.celery_app worker -Q io")
    assert environment == {"REMAP_SIGTERM": "SIGQUIT", "A_B": "1"}
    assert argv[:2] == ["celery", "-A"]
    assert worker_queues("env REMAP_SIGTERM=SIGQUIT celery -A config.celery_app worker -Q io", {"default"}) == {"io"}


@pytest.mark.parametrize(
    "argv",
    [
        ["celery", "worker", "-Q", "io"],
        ["celery", "worker", "-Qio"],
        ["celery", "worker", "--queues", "io"],
        ["celery", "worker", "--queues=io"],
        # Repeated, the last one wins: what Celery's parser does, so a check reads what the worker will consume.
        ["celery", "worker", "-Q", "default", "--queues=io"],
    ],
)
def test_an_option_is_read_in_every_spelling_celery_accepts(argv):
    assert option_value(argv, "-Q", "--queues") == "io"
    assert option_value(argv, "-P", "--pool") is None


def test_every_threads_worker_turns_sigterm_into_the_soft_shutdown():
    # No time limit stops a thread: without the remap a hung call would hold the warm shutdown until SIGKILL.
    threads = [command for command in procfile_commands(PROCFILE).values() if " -P threads " in f" {command} "]
    assert threads
    for command in threads:
        assert command_environment(command)[0].get("REMAP_SIGTERM") == "SIGQUIT", command
