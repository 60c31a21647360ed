"""The most database connections each process definition can hold open at once.

Django opens one connection per thread that touches the database and, with CONN_MAX_AGE, keeps it
between requests and tasks; so the worst case of a process is its number of threads and processes
that run project code: gunicorn's workers x threads, a worker's pool (prefork children or threads) plus
its main process (which records a child killed at its hard time limit), one for beat. Flower runs no
project code that queries the database. Multiplied by the most replicas a definition allows: one
in the Procfile and compose (unless ``deploy.replicas`` says more), a Deployment's ``replicas`` or its
KEDA ScaledObject's ``maxReplicaCount`` in Kubernetes. ``manage.py celery_doctor`` compares each
total with what the database server allows.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from {{ cookiecutter.project_slug }}.taskqueue import process_definitions

# ${NAME:-default} and ${NAME} in a command line, as the shell expands them.
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


@dataclass(frozen=True)
class Share:
    """One process definition's part of the budget."""

    name: str
    per_replica: int
    replicas: int
    how: str  # where per_replica comes from, e.g. "prefork -c 2 + main process"

    @property
    def connections(self) -> int:
        return self.per_replica * self.replicas


def expand(command: str, environ: dict[str, str]) -> str:
    """The command with ${NAME:-default} replaced as the shell would in this environment."""

    def value(match: re.Match) -> str:
        found = environ.get(match["name"])
        return found if found else (match["default"] or "")

    return VARIABLE.sub(value, command)


def per_replica(command: str, environ: dict[str, str]) -> tuple[int, str] | None:
    """Connections one replica of this command can hold, and how; None for a process that holds none."""
    _, argv = process_definitions.command_environment(expand(command, environ))
    program = Path(argv[0]).name if argv else ""
    if program == "gunicorn":
        workers = int(process_definitions.option_value(argv, "--workers", "-w") or environ.get("WEB_CONCURRENCY") or 1)
        threads = int(process_definitions.option_value(argv, "--threads") or 1)
        return workers * threads, f"gunicorn {workers} workers x {threads} threads"
    if "runserver" in argv:
        return 1, "runserver"
    if program != "celery":
        return None
    if "worker" in argv:
        concurrency = int(process_definitions.option_value(argv, "-c", "--concurrency") or os.cpu_count() or 1)
        pool = process_definitions.option_value(argv, "-P", "--pool") or "prefork"
        return concurrency + 1, f"-P {pool} -c {concurrency} + main process"
    if "beat" in argv:
        return 1, "beat"
    return None  # flower, and any other celery command


def compose_replicas(base_dir: Path, compose_file: str) -> dict[str, int]:
    services = (yaml.safe_load((base_dir / compose_file).read_text()) or {}).get("services") or {}
    return {name: int(((service.get("deploy") or {}).get("replicas")) or 1) for name, service in services.items()}


def _kubernetes_documents(base_dir: Path) -> list[dict]:
    documents = []
    for manifest in sorted((base_dir / process_definitions.KUBERNETES_DIR).rglob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(manifest.read_text()) if isinstance(doc, dict)]
    return documents


def kubernetes_replicas(base_dir: Path) -> dict[str, int]:
    """The most replicas of each Deployment: its own count or its ScaledObject's maximum, the larger."""
    replicas: dict[str, int] = {}
    for document in _kubernetes_documents(base_dir):
        name = str((document.get("metadata") or {}).get("name"))
        spec = document.get("spec") or {}
        target = str((spec.get("scaleTargetRef") or {}).get("name"))
        if document.get("kind") == "Deployment" and "replicas" in spec:
            replicas[name] = max(replicas.get(name, 1), int(spec["replicas"]))
        elif document.get("kind") == "ScaledObject":
            replicas[target] = max(replicas.get(target, 1), int(spec.get("maxReplicaCount", 100)))
        elif document.get("kind") == "HorizontalPodAutoscaler":
            replicas[target] = max(replicas.get(target, 1), int(spec.get("maxReplicas", 1)))
    return replicas


def kubernetes_environment(base_dir: Path) -> dict[str, str]:
    """The ConfigMaps' settings (an overlay's after the base's), as the Deployments read them."""
    environ: dict[str, str] = {}
    for document in _kubernetes_documents(base_dir):  # base/ sorts before overlays/
        if document.get("kind") == "ConfigMap":
            environ.update({key: str(value) for key, value in (document.get("data") or {}).items()})
    return environ


def budgets(base_dir: Path, environ: dict[str, str] | None = None) -> dict[str, list[Share]]:
    """Each process definition file, with the worst-case connections of each of its processes.

    ``environ`` (this process's environment by default) fills ${NAME:-default} in the commands; in
    Kubernetes the ConfigMaps' values come first, and the environment, the deployed one, overrides them.
    """
    environ = dict(os.environ if environ is None else environ)
    found = process_definitions.definitions(base_dir) | process_definitions.kubernetes_definitions(base_dir)
    result: dict[str, list[Share]] = {}
    for source, processes in found.items():
        if source == process_definitions.KUBERNETES_DIR:
            replicas = kubernetes_replicas(base_dir)
            source_environ = kubernetes_environment(base_dir) | environ
        elif source == process_definitions.PROCFILE:
            replicas, source_environ = {}, environ
        else:
            replicas, source_environ = compose_replicas(base_dir, source), environ
        shares = []
        for process in processes:
            held = per_replica(process.command, source_environ)
            if held is not None:
                shares.append(Share(process.name, held[0], replicas.get(process.name, 1), held[1]))
        result[source] = shares
    return result


def describe(shares: list[Share]) -> str:
    return ", ".join(
        f"{share.name} {share.connections}"
        + (f" ({share.replicas} x {share.per_replica})" if share.replicas > 1 else "")
        for share in shares
    )
