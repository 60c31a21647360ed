"""The project's process definitions, read the way they run: which process runs which command.

The Procfile is the list of processes (``make dev`` runs it); each compose service runs a
``compose/start-*`` script that execs the same command, and so does each Kubernetes Deployment
under ``deploy/kubernetes/`` when the project has it. The system checks read them all to find
a queue that no worker consumes or a worker stopped before its tasks can finish, and the tests
read them to keep them identical.
"""

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

PROCFILE = "Procfile"
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.production.yml")
KUBERNETES_DIR = "deploy/kubernetes"
# Local compose runs the workers under this reloader (restart on code changes): the command is what follows it.
RELOADER = "compose/local/reload.py"
# What Docker and Kubernetes wait between SIGTERM and SIGKILL when the definition does not say.
COMPOSE_DEFAULT_GRACE = 10.0
KUBERNETES_DEFAULT_GRACE = 30.0
DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Process:
    source: str  # the file that defines it: Procfile, docker-compose.yml, ...
    name: str  # the Procfile process or compose service
    command: str  # the command line it runs, after following a start script to its exec line
    grace_seconds: float | None = None  # SIGTERM to SIGKILL when stopped; None where nothing enforces one


def procfile_commands(procfile: Path) -> dict[str, str]:
    """Process name -> command line, as written in the Procfile."""
    commands = {}
    for line in procfile.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and not line.lstrip().startswith("#"):
            commands[name.strip()] = command.strip()
    return commands


def script_command(script: Path) -> str:
    """The command a start script runs: its last line, ``exec <command>``."""
    lines = [line.strip() for line in script.read_text().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if not last.startswith("exec "):
        raise ValueError(f"{script} does not end by exec-ing its command")
    return last.removeprefix("exec ")


def followed_command(base_dir: Path, argv: list[str]) -> str:
    """The command line an argv runs: a lone start script followed to its exec line, through the reloader."""
    if argv[:1] == [RELOADER]:
        argv = argv[1:]
    script = base_dir / argv[0]
    if script.is_file() and len(argv) == 1:
        return script_command(script)
    return shlex.join(argv)


def compose_duration(value) -> float:
    """Seconds in a compose duration such as ``390s`` or ``1m30s`` (a bare number is seconds)."""
    if isinstance(value, int | float):
        return float(value)
    parts = DURATION.findall(str(value))
    if not parts or "".join(number + unit for number, unit in parts) != str(value).strip():
        raise ValueError(f"not a compose duration: {value!r}")
    return sum(float(number) * DURATION_UNITS[unit] for number, unit in parts)


def compose_processes(base_dir: Path, compose_file: str) -> list[Process]:
    """Every service of a compose file with the command it runs (a start script followed to its exec line)."""
    services = (yaml.safe_load((base_dir / compose_file).read_text()) or {}).get("services") or {}
    processes = []
    for name, service in services.items():
        command = service.get("command")
        if not command:
            continue
        argv = shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]
        grace = compose_duration(service.get("stop_grace_period", COMPOSE_DEFAULT_GRACE))
        processes.append(Process(compose_file, name, followed_command(base_dir, argv), grace))
    return processes


def kubernetes_processes(base_dir: Path) -> list[Process]:
    """Every container of every Deployment in the manifests under deploy/kubernetes/, with its command."""
    processes = []
    for manifest in sorted((base_dir / KUBERNETES_DIR).rglob("*.yaml")):
        for document in yaml.safe_load_all(manifest.read_text()):
            if not isinstance(document, dict) or document.get("kind") != "Deployment":
                continue
            pod = ((document.get("spec") or {}).get("template") or {}).get("spec") or {}
            grace = float(pod.get("terminationGracePeriodSeconds", KUBERNETES_DEFAULT_GRACE))
            for container in pod.get("containers") or ():
                argv = [str(arg) for arg in (container.get("command") or []) + (container.get("args") or [])]
                if argv:  # a patch without a command changes something else
                    name = document["metadata"]["name"]
                    processes.append(Process(KUBERNETES_DIR, name, followed_command(base_dir, argv), grace))
    return processes


def definitions(base_dir: Path) -> dict[str, list[Process]]:
    """Every process definition file the project has, with its processes."""
    found = {}
    procfile = base_dir / PROCFILE
    if procfile.is_file():
        found[PROCFILE] = [Process(PROCFILE, name, command) for name, command in procfile_commands(procfile).items()]
    for compose_file in COMPOSE_FILES:
        if (base_dir / compose_file).is_file():
            found[compose_file] = compose_processes(base_dir, compose_file)
    return found


def kubernetes_definitions(base_dir: Path) -> dict[str, list[Process]]:
    """The Kubernetes Deployments, when the project has deploy/kubernetes/ (use_kubernetes)."""
    if not (base_dir / KUBERNETES_DIR).is_dir():
        return {}
    return {KUBERNETES_DIR: kubernetes_processes(base_dir)}


def command_environment(command: str) -> tuple[dict[str, str], list[str]]:
    """The variables a command line sets with a leading ``env NAME=value ...``, and the program's argv after them."""
    argv = shlex.split(command)
    environment: dict[str, str] = {}
    if argv[:1] == ["env"]:
        argv = argv[1:]
        while argv and ENV_ASSIGNMENT.match(argv[0]):
            name, _, value = argv.pop(0).partition("=")
            environment[name] = value
    return environment, argv


def option_value(argv: list[str], *names: str) -> str | None:
    """An option's value in an argv: ``-Q io``, ``-Qio``, ``--queues io`` or ``--queues=io``; the last one given
    wins, as in Celery's own parser. One reader for every command the checks, the doctor and the budget read."""
    found = None
    for index, arg in enumerate(argv):
        for name in names:
            if arg == name and index + 1 < len(argv):
                found = argv[index + 1]
            elif name.startswith("--") and arg.startswith(f"{name}="):
                found = arg.split("=", 1)[1]
            elif not name.startswith("--") and arg.startswith(name) and len(arg) > len(name):
                found = arg[len(name) :]
    return found


def worker_queues(command: str, declared: set[str]) -> set[str] | None:
    """The queues a ``celery worker`` command consumes (every declared one without -Q); None if not a worker."""
    _, argv = command_environment(command)
    if not argv or "celery" not in Path(argv[0]).name or "worker" not in argv:
        return None
    queues = option_value(argv, "-Q", "--queues")
    return set(queues.split(",")) if queues else set(declared)


def consumers(processes: list[Process], declared: set[str]) -> dict[str, set[str]]:
    """Each process that runs a Celery worker, with the queues it consumes."""
    found = {}
    for process in processes:
        queues = worker_queues(process.command, declared)
        if queues is not None:
            found[process.name] = queues
    return found
