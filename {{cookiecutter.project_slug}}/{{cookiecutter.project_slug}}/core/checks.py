"""System checks that keep the Celery settings consistent (P30).

Celery silently ignores a misspelt setting and happily combines settings that
lose or duplicate tasks; these checks turn such mistakes into `manage.py check`
errors, which CI and every deploy run.
"""

import difflib
import shlex
from pathlib import Path

from celery.app.defaults import DEFAULTS as CELERY_SETTING_NAMES
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.core.sending import registered_task_names

# kombu's Redis transport uses this when broker_transport_options has no visibility_timeout.
KOMBU_DEFAULT_VISIBILITY_TIMEOUT = 3600
JSON = "json"
JSON_CONTENT_TYPES = {"json", "application/json"}


def _visibility_timeout(options) -> int:
    return int((options or {}).get("visibility_timeout", KOMBU_DEFAULT_VISIBILITY_TIMEOUT))


def _hard_time_limits() -> dict[str, float | None]:
    """The global hard time limit and every registered task's own, keyed by where each is set."""
    # Every app's tasks.py imported, as a worker does (not via import_default_modules: the
    # Django fixup runs these checks from inside it).
    registered_task_names()
    limits: dict[str, float | None] = {"CELERY_TASK_TIME_LIMIT": celery_app.conf.task_time_limit}
    for name, task in sorted(celery_app.tasks.items()):
        if not name.startswith("celery.") and task.time_limit is not None:
            limits[f"task {name}"] = task.time_limit
    return limits


@register(Tags.compatibility)
def check_visibility_timeout(app_configs=None, **kwargs):
    """Redis redelivers any message not acked within the visibility timeout, even one still running."""
    errors = []
    visibility = _visibility_timeout(celery_app.conf.broker_transport_options)
    for origin, limit in _hard_time_limits().items():
        if limit is None:
            errors.append(
                Error(
                    f"{origin} is not set, so a task may run longer than the broker visibility timeout "
                    f"({visibility} s) and be delivered to a second worker while it still runs.",
                    hint="Set CELERY_TASK_TIME_LIMIT (seconds) below the visibility timeout.",
                    id="celery.E001",
                )
            )
        elif limit >= visibility:
            errors.append(
                Error(
                    f"{origin} is {limit} s but the broker visibility timeout is {visibility} s: "
                    "a task still running after the timeout is delivered again and runs twice.",
                    hint="Raise CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'] above every hard time limit.",
                    id="celery.E001",
                )
            )
    max_countdown = getattr(settings, "TASK_MAX_COUNTDOWN", 0)
    if max_countdown >= visibility:
        errors.append(
            Error(
                f"TASK_MAX_COUNTDOWN is {max_countdown} s but the broker visibility timeout is {visibility} s: "
                "Redis would deliver a task with a longer countdown or ETA again and again before it is due.",
                hint="Lower TASK_MAX_COUNTDOWN or raise the visibility timeout above it.",
                id="celery.E002",
            )
        )
    backend = str(celery_app.conf.result_backend or "")
    if backend.startswith(("redis://", "rediss://")):
        result_visibility = _visibility_timeout(celery_app.conf.result_backend_transport_options)
        if result_visibility != visibility:
            errors.append(
                Error(
                    f"The result backend visibility timeout ({result_visibility} s) differs from the broker's "
                    f"({visibility} s).",
                    hint="Set CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS to CELERY_BROKER_TRANSPORT_OPTIONS.",
                    id="celery.E003",
                )
            )
    return errors


@register(Tags.compatibility)
def check_late_ack_needs_reject_on_worker_lost(app_configs=None, **kwargs):
    conf = celery_app.conf
    if conf.task_acks_late and not conf.task_reject_on_worker_lost:
        return [
            Error(
                "CELERY_TASK_ACKS_LATE is on but CELERY_TASK_REJECT_ON_WORKER_LOST is off: a task whose pool "
                "process is killed (OOM, segfault) is acked and lost instead of delivered again.",
                hint="Set CELERY_TASK_REJECT_ON_WORKER_LOST = True (tasks must be idempotent).",
                id="celery.E004",
            )
        ]
    return []


@register(Tags.security)
def check_json_only(app_configs=None, **kwargs):
    conf = celery_app.conf
    errors = []
    for name in ("accept_content", "result_accept_content"):
        unsafe = sorted(set(conf[name] or []) - JSON_CONTENT_TYPES)
        if unsafe:
            errors.append(
                Error(
                    f"CELERY_{name.upper()} accepts {', '.join(unsafe)}: only JSON is allowed, because pickle "
                    "and friends let whoever can write to the broker run code in the worker.",
                    hint=f'Set CELERY_{name.upper()} = ["json"].',
                    id="celery.E005",
                )
            )
    for name in ("task_serializer", "result_serializer"):
        if conf[name] != JSON:
            errors.append(
                Error(
                    f"CELERY_{name.upper()} is {conf[name]!r}; only 'json' is accepted by the workers.",
                    hint=f'Set CELERY_{name.upper()} = "json" and pass IDs and plain values to tasks.',
                    id="celery.E005",
                )
            )
    return errors


def procfile_commands(procfile: Path) -> dict[str, str]:
    """Process name -> command line, as written in the Procfile."""
    commands = {}
    for line in procfile.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and not line.lstrip().startswith("#"):
            commands[name.strip()] = command.strip()
    return commands


def procfile_worker_queues(procfile: Path, declared: set[str]) -> dict[str, set[str]]:
    """Map each Procfile process that runs a Celery worker to the queues it consumes."""
    consumers = {}
    for name, command in procfile_commands(procfile).items():
        argv = shlex.split(command)
        if "celery" not in argv[0] or "worker" not in argv:
            continue
        queues = None
        for index, arg in enumerate(argv):
            if arg in ("-Q", "--queues") and index + 1 < len(argv):
                queues = argv[index + 1]
            elif arg.startswith("--queues="):
                queues = arg.removeprefix("--queues=")
            elif arg.startswith("-Q") and len(arg) > 2:
                queues = arg[2:]
        # A worker started without -Q consumes every declared queue.
        consumers[name] = set(queues.split(",")) if queues else set(declared)
    return consumers


def _routed_queues() -> dict[str, str]:
    """Every queue a task can be sent to, with where it comes from."""
    conf = celery_app.conf
    queues = {conf.task_default_queue: "CELERY_TASK_DEFAULT_QUEUE"}
    for queue in conf.task_queues or ():
        queues.setdefault(queue.name, "CELERY_TASK_QUEUES")
    routes = conf.task_routes or {}
    if isinstance(routes, dict):
        for pattern, route in routes.items():
            queue = route if isinstance(route, str) else route.get("queue")
            if queue:
                queues.setdefault(str(queue), f"CELERY_TASK_ROUTES[{pattern!r}]")
    return queues


@register(Tags.compatibility)
def check_every_queue_has_a_worker(app_configs=None, **kwargs):
    procfile = Path(settings.BASE_DIR) / "Procfile"
    if not procfile.exists():
        return [
            Warning(
                f"{procfile} not found, so no check that every queue has a worker.",
                hint="Keep the Procfile next to manage.py: it is the list of processes to run.",
                id="celery.W001",
            )
        ]
    queues = _routed_queues()
    consumed = set().union(*procfile_worker_queues(procfile, set(queues)).values())
    return [
        Error(
            f"Queue {queue!r} (from {origin}) is not consumed by any worker in the Procfile: "
            "tasks sent there would wait forever.",
            hint=f"Add {queue} to a worker's -Q list in the Procfile, or route the task elsewhere.",
            id="celery.E006",
        )
        for queue, origin in sorted(queues.items())
        if queue not in consumed
    ]


@register(Tags.compatibility)
def check_celery_setting_names(app_configs=None, **kwargs):
    """Celery ignores unknown settings; a typo such as CELERY_TASK_ACK_LATE would silently do nothing."""
    errors = []
    for name in dir(settings):
        if not name.startswith("CELERY_"):
            continue
        key = name.removeprefix("CELERY_").lower()
        if key in CELERY_SETTING_NAMES:
            continue
        close = difflib.get_close_matches(key, CELERY_SETTING_NAMES, n=1)
        errors.append(
            Error(
                f"{name} is not a Celery setting, so Celery ignores it.",
                hint=f"Did you mean CELERY_{close[0].upper()}?" if close else "See the Celery configuration docs.",
                id="celery.E007",
            )
        )
    return errors
