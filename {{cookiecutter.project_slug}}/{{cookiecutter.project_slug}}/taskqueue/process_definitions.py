"""The project's process definitions, read the way they run: which process runs which command.

The Procfile is the list of processes (``make dev`` runs it); each compose service runs a
``compose/start-*`` script that execs the same command. The system checks read both to find
a queue that no worker consumes, and the tests read them to keep them identical.
"""

import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

PROCFILE = "Procfile"
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.production.yml")


@dataclass(frozen=True)
class Process:
    source: str  # the file that defines it: Procfile, docker-compose.yml, ...
    name: str  # the Procfile process or compose service
    command: str  # the command line it runs, after following a start script to its exec line


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


def compose_processes(base_dir: Path, compose_file: str) -> list[Process]:
    """Every service of a compose file with the command it runs (a start script followed to its exec line)."""
    services = (yaml.safe_load((base_dir / compose_file).read_text()) or {}).get("services") or {}
    processes = []
    for name, service in services.items():
        command = service.get("command")
        if not command:
            continue
        argv = shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]
        script = base_dir / argv[0]
        if script.is_file() and len(argv) == 1:
            processes.append(Process(compose_file, name, script_command(script)))
        else:
            processes.append(Process(compose_file, name, shlex.join(argv)))
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


def worker_queues(command: str, declared: set[str]) -> set[str] | None:
    """The queues a ``celery worker`` command consumes (every declared one without -Q); None if not a worker."""
    argv = shlex.split(command)
    if not argv or "celery" not in Path(argv[0]).name or "worker" not in argv:
        return None
    queues = None
    for index, arg in enumerate(argv):
        if arg in ("-Q", "--queues") and index + 1 < len(argv):
            queues = argv[index + 1]
        elif arg.startswith("--queues="):
            queues = arg.removeprefix("--queues=")
        elif arg.startswith("-Q") and len(arg) > 2:
            queues = arg[2:]
    return set(queues.split(",")) if queues else set(declared)


def consumers(processes: list[Process], declared: set[str]) -> dict[str, set[str]]:
    """Each process that runs a Celery worker, with the queues it consumes."""
    found = {}
    for process in processes:
        queues = worker_queues(process.command, declared)
        if queues is not None:
            found[process.name] = queues
    return found
