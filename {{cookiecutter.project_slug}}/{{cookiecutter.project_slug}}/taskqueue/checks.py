"""System checks that keep the Celery settings consistent.

Celery silently ignores a misspelt setting and happily combines settings that lose or
duplicate tasks; these checks turn such mistakes into ``manage.py check`` errors, which CI,
every deploy and every worker start run.
"""

import difflib
import shlex
from pathlib import Path

from celery.app.defaults import DEFAULTS as CELERY_SETTING_NAMES
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue import process_definitions
from {{ cookiecutter.project_slug }}.taskqueue.arguments import ArgumentSpec, UnresolvableAnnotationError
from {{ cookiecutter.project_slug }}.taskqueue.sending import registered_task_names

{% if cookiecutter.broker == "redis" -%}
# kombu's Redis transport uses this when broker_transport_options has no visibility_timeout.
KOMBU_DEFAULT_VISIBILITY_TIMEOUT = 3600
{% endif -%}
JSON = "json"
JSON_CONTENT_TYPES = {"json", "application/json"}
{%- if cookiecutter.broker == "redis" %}


def _visibility_timeout(options) -> int:
    return int((options or {}).get("visibility_timeout", KOMBU_DEFAULT_VISIBILITY_TIMEOUT))
{%- endif %}


def project_tasks() -> dict:
    """Every task the project's apps define (Celery's own excluded), imported as a worker imports them."""
    # Not via import_default_modules: the Django fixup runs these checks from inside it.
    registered_task_names()
    return {name: task for name, task in sorted(celery_app.tasks.items()) if not name.startswith("celery.")}


# Pools whose workers cannot stop a running task at its time limit: Celery's threads pool
# (celery/concurrency/thread.py) runs a task as a plain thread and sets no timer; solo runs it inline.
POOLS_WITHOUT_TIME_LIMITS = {"threads", "solo"}


def worker_pool(command: str) -> str:
    """The pool a ``celery worker`` command runs (-P/--pool), else CELERY_WORKER_POOL (prefork by default)."""
    pool = process_definitions.option_value(shlex.split(command), "-P", "--pool")
    return pool or str(celery_app.conf.worker_pool or "prefork")


def unenforcing_queues() -> dict[str, str]:
    """Each queue some worker consumes with a pool that cannot enforce time limits, with that worker."""
    base_dir = Path(settings.BASE_DIR)
    found = process_definitions.definitions(base_dir) | process_definitions.kubernetes_definitions(base_dir)
    declared = set(routed_queues())
    queues: dict[str, str] = {}
    for source, processes in found.items():
        by_name = {process.name: process for process in processes}
        for name, consumed in process_definitions.consumers(processes, declared).items():
            pool = worker_pool(by_name[name].command)
            if pool in POOLS_WITHOUT_TIME_LIMITS:
                for queue in consumed:
                    queues.setdefault(queue, f"{name!r} in {source} (-P {pool})")
    return queues


def task_queue(task) -> str:
    """The queue CELERY_TASK_ROUTES sends ``task`` to (the default queue when no route matches)."""
    return celery_app.amqp.router.route({}, task.name, task_type=task)["queue"].name


def run_bounds() -> dict[str, float | None]:
    """How long one run can last, for the global limit and each task, keyed by where the bound is set.

    On a prefork worker the hard time limit kills a run; on a queue whose pool enforces no limit
    (celery.E011), only the task's own ``io_timeout`` bounds it. None: nothing bounds it.
    """
    bounds: dict[str, float | None] = {"CELERY_TASK_TIME_LIMIT": celery_app.conf.task_time_limit}
    unenforced = unenforcing_queues()
    for name, task in project_tasks().items():
        if task_queue(task) in unenforced:
            io_timeout = getattr(task, "io_timeout", None)
            if io_timeout is not None:
                bounds[f"task {name} (io_timeout)"] = io_timeout
        elif task.time_limit is not None:
            bounds[f"task {name}"] = task.time_limit
    return bounds


{% if cookiecutter.broker == "rabbitmq" -%}
@register(Tags.compatibility)
def check_delivery_limit(app_configs=None, **kwargs):
    """RabbitMQ dead-letters a message past TASK_DELIVERY_LIMIT deliveries: it must let BaseTask see its own bound.

    A task's ``max_deliveries`` runs, then one more delivery that records it as a FailedTask (replayable, with its
    arguments); the broker's limit is the backstop for a message that kills its worker before anything is recorded.
    """
    limit = settings.TASK_DELIVERY_LIMIT
    return [
        Error(
            f"task {name} allows {task.max_deliveries} deliveries but the queues dead-letter a message after "
            f"TASK_DELIVERY_LIMIT ({limit}): RabbitMQ takes it away before the task can record it as failed.",
            hint="Raise TASK_DELIVERY_LIMIT above the largest max_deliveries, or lower the task's.",
            id="celery.E020",
        )
        for name, task in project_tasks().items()
        if getattr(task, "max_deliveries", 0) >= limit
    ]


@register(Tags.compatibility)
def check_consumer_timeout(app_configs=None, **kwargs):
    """RabbitMQ closes the channel of a consumer holding a message unacked past its consumer_timeout.

    With late acks a message stays unacked for its task's whole run: a run longer than the timeout loses its channel,
    the message goes back to the queue and runs again while the first run goes on. Countdowns wait in RabbitMQ's
    delay queues (native delayed delivery), not in a worker, so only the run counts.
    """
    timeout = settings.RABBITMQ_CONSUMER_TIMEOUT
    errors = []
    for origin, bound in run_bounds().items():
        if bound is None:
            errors.append(
                Error(
                    f"{origin} is not set, so a task may run longer than RabbitMQ's consumer timeout ({timeout} s), "
                    "lose its channel and be delivered to a second worker while it still runs.",
                    hint="Set CELERY_TASK_TIME_LIMIT (seconds) below RABBITMQ_CONSUMER_TIMEOUT.",
                    id="celery.E021",
                )
            )
        elif bound >= timeout:
            errors.append(
                Error(
                    f"{origin} ({bound:g} s) is not below RabbitMQ's consumer timeout (RABBITMQ_CONSUMER_TIMEOUT, "
                    f"{timeout} s): a run that long loses its channel, and its task runs a second time.",
                    hint="Raise consumer_timeout in the server's rabbitmq.conf (compose/rabbitmq.conf) and "
                    "RABBITMQ_CONSUMER_TIMEOUT with it, or lower the limit.",
                    id="celery.E021",
                )
            )
    return errors


# What every task queue is declared with (config/broker_rabbitmq.py), and why.
QUEUE_ARGUMENTS = {
    "x-queue-type": ("quorum", "a classic queue is not replicated, and native delayed delivery needs quorum"),
    "x-delivery-limit": (None, "without it a message that kills its worker is delivered for ever"),
    "x-dead-letter-exchange": (None, "without it a message past the delivery limit, or expired, is dropped"),
    "x-dead-letter-strategy": ("at-least-once", "at-most-once drops a dead letter RabbitMQ cannot route"),
}


@register(Tags.compatibility)
def check_quorum_queues(app_configs=None, **kwargs):
    """Each task queue is a quorum queue with a delivery limit and dead letters, on an exchange native delayed
    delivery can route (topic: Celery 5.5 cannot route a countdown's message through a direct exchange)."""
    errors = []
    for queue in settings.CELERY_TASK_QUEUES:
        arguments = getattr(queue, "queue_arguments", None) or {}
        for argument, (expected, reason) in QUEUE_ARGUMENTS.items():
            value = arguments.get(argument)
            if value is None or (expected is not None and value != expected):
                errors.append(
                    Error(
                        f"queue {queue.name!r} is declared with {argument}={value!r}: {reason}.",
                        hint="Declare it with config.broker_rabbitmq.task_queue(name, TASK_DELIVERY_LIMIT).",
                        id="celery.E022",
                    )
                )
        if queue.exchange is None or queue.exchange.type != "topic":
            errors.append(
                Error(
                    f"queue {queue.name!r} is bound to a {getattr(queue.exchange, 'type', None)!r} exchange: native "
                    "delayed delivery routes a countdown's message by topic and cannot deliver it there.",
                    hint="Bind it to config.broker_rabbitmq.TASKS_EXCHANGE (a topic exchange).",
                    id="celery.E022",
                )
            )
    return errors
{%- else -%}
@register(Tags.compatibility)
def check_visibility_timeout(app_configs=None, **kwargs):
    """Redis delivers again any message not acked within the visibility timeout, even one still running.

    A message is unacked from the moment a worker claims it: a task sent with a countdown is claimed
    at once and held until due, then runs; so countdown + run time, one sum, must stay below the
    timeout. kombu's restore sweep (QoS.restore_visible, every unacked_restore_interval x
    unacked_restore_throttle s: 10 x 10 by default) restores a message whose claim is older than the
    timeout at whatever moment it runs, so it can come right at the timeout, never before it: the
    sweep period gives no extra room here; it only delays the redelivery of a message whose worker died.
    """
    errors = []
    visibility = _visibility_timeout(celery_app.conf.broker_transport_options)
    max_countdown = getattr(settings, "TASK_MAX_COUNTDOWN", 0)
    for origin, limit in run_bounds().items():
        if limit is None:
            errors.append(
                Error(
                    f"{origin} is not set, so a task may run longer than the broker visibility timeout "
                    f"({visibility} s) and be delivered to a second worker while it still runs.",
                    hint="Set CELERY_TASK_TIME_LIMIT (seconds) below the visibility timeout.",
                    id="celery.E001",
                )
            )
        elif limit + max_countdown >= visibility:
            errors.append(
                Error(
                    f"{origin} ({limit:g} s) plus TASK_MAX_COUNTDOWN ({max_countdown} s) is "
                    f"{limit + max_countdown:g} s, not below the broker visibility timeout ({visibility} s): a task "
                    "sent with the longest countdown is still unacked when the timeout passes, is delivered again "
                    "and runs twice.",
                    hint="Raise CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'] above the run bound plus "
                    "TASK_MAX_COUNTDOWN, or lower one of them.",
                    id="celery.E001",
                )
            )
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
{%- endif %}


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


def routed_queues() -> dict[str, str]:
    """Every queue a task can be sent to, with where it comes from."""
    conf = celery_app.conf
    queues = {conf.task_default_queue: "CELERY_TASK_DEFAULT_QUEUE"}
    for queue in conf.task_queues or ():
        queues.setdefault(queue.name, "CELERY_TASK_QUEUES")
    queues.update(route_queues())
    return queues


def route_queues() -> dict[str, str]:
    """The queue of every route in CELERY_TASK_ROUTES, with the route it comes from."""
    queues: dict[str, str] = {}
    routes = celery_app.conf.task_routes or {}
    if isinstance(routes, dict):
        for pattern, route in routes.items():
            queue = route if isinstance(route, str) else route.get("queue")
            if queue:
                queues.setdefault(str(queue), f"CELERY_TASK_ROUTES[{pattern!r}]")
    return queues


@register(Tags.compatibility)
def check_every_queue_has_a_worker(app_configs=None, **kwargs):
    base_dir = Path(settings.BASE_DIR)
    found = process_definitions.definitions(base_dir)
    if process_definitions.PROCFILE not in found:
        return [
            Warning(
                f"{base_dir / process_definitions.PROCFILE} not found, so no check that every queue has a worker.",
                hint="Keep the Procfile next to manage.py: it is the list of processes to run.",
                id="celery.W001",
            )
        ]
    return _queues_without_a_worker(found)


@register(Tags.compatibility)
def check_every_queue_has_a_kubernetes_worker(app_configs=None, **kwargs):
    """celery.E006 for the Deployments under deploy/kubernetes/, when the project has them."""
    return _queues_without_a_worker(process_definitions.kubernetes_definitions(Path(settings.BASE_DIR)))


def _queues_without_a_worker(found: dict[str, list]) -> list[Error]:
    queues = routed_queues()
    errors: list[Error] = []
    for source, processes in found.items():
        consumed = set().union(*process_definitions.consumers(processes, set(queues)).values())
        errors.extend(
            Error(
                f"Queue {queue!r} (from {origin}) is not consumed by any worker in {source}: "
                "tasks sent there would wait forever.",
                hint=f"Add a worker for {queue!r} to {source} (-Q {queue}), or send the task to another queue.",
                id="celery.E006",
            )
            for queue, origin in sorted(queues.items())
            if queue not in consumed
        )
    return errors


# Seconds a stopping worker needs beyond its window: cancel, return its messages to Redis, close, exit.
SHUTDOWN_MARGIN = 10.0


def longest_run(queues: set[str], enforced: bool) -> tuple[float, str]:
    """The longest one run of a task on these queues can last, with where that bound is set.

    ``enforced``: the worker's pool kills a run at its hard time limit (prefork), so the longest limit of
    CELERY_TASK_TIME_LIMIT and the queues' tasks' own ``time_limit``; otherwise (threads) nothing kills a run
    and the queues' tasks' ``io_timeout`` bound it (celery.E011 requires one).
    """
    if enforced:
        longest, origin = float(celery_app.conf.task_time_limit or 0), "CELERY_TASK_TIME_LIMIT"
    else:
        longest, origin = 0.0, "no io_timeout"
    for name, task in project_tasks().items():
        if task_queue(task) not in queues:
            continue
        bound = task.time_limit if enforced else getattr(task, "io_timeout", None)
        if bound is not None and bound > longest:
            longest, origin = float(bound), f"task {name}'s {'time_limit' if enforced else 'io_timeout'}"
    return longest, origin


def shutdown_window(command: str, queues: set[str] | None = None) -> tuple[float, str]:
    """Seconds a worker may need between SIGTERM and its exit, with the settings it comes from.

    A prefork worker shuts down warm: its running tasks finish, each within its hard time limit, so the
    longest limit among the tasks of the queues it consumes. A threads worker, which no time limit can
    stop, gets SIGTERM remapped to the cold shutdown (compose/start-worker-io): the soft-shutdown window,
    then it exits (celery.E012 holds that window above the queue's longest io_timeout). Either way plus
    SHUTDOWN_MARGIN. Neither Docker nor Kubernetes sends the SIGQUIT that would turn a prefork worker's
    warm shutdown cold, so the soft window does not count there.
    """
    if queues is None:
        queues = process_definitions.worker_queues(command, set(routed_queues())) or set()
    margin = f" + {SHUTDOWN_MARGIN:g} s margin"
    if worker_pool(command) in POOLS_WITHOUT_TIME_LIMITS:
        soft = float(celery_app.conf.get("worker_soft_shutdown_timeout") or 0)
        return soft + SHUTDOWN_MARGIN, f"CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT {soft:g} s{margin}"
    longest, origin = longest_run(queues, enforced=True)
    return longest + SHUTDOWN_MARGIN, f"{origin} {longest:g} s{margin}"


@register(Tags.compatibility)
def check_worker_grace_period(app_configs=None, **kwargs):
    """A worker killed before its running tasks end loses their progress and runs them again."""
    base_dir = Path(settings.BASE_DIR)
    found = process_definitions.definitions(base_dir) | process_definitions.kubernetes_definitions(base_dir)
    queues = set(routed_queues())
    errors = []
    for source, processes in found.items():
        workers = process_definitions.consumers(processes, queues)
        for process in processes:
            if process.name not in workers or process.grace_seconds is None:
                continue
            needed, origin = shutdown_window(process.command, workers[process.name])
            if process.grace_seconds < needed:
                errors.append(
                    Error(
                        f"Worker {process.name!r} in {source} is killed {process.grace_seconds:g} s after SIGTERM, "
                        f"but its running tasks may need {needed:g} s ({origin}): they would be cut off and run "
                        "again.",
                        hint="Raise stop_grace_period (compose) or terminationGracePeriodSeconds (Kubernetes) "
                        f"to at least {needed:g} s.",
                        id="celery.E010",
                    )
                )
    return errors


@register(Tags.compatibility)
def check_soft_shutdown_covers_io_timeouts(app_configs=None, **kwargs):
    """A threads worker stops after the soft-shutdown window: a longer io task is cut off at every deploy."""
    soft = float(celery_app.conf.get("worker_soft_shutdown_timeout") or 0)
    errors = []
    for queue, worker in sorted(unenforcing_queues().items()):
        longest, origin = longest_run({queue}, enforced=False)
        if longest > soft:
            errors.append(
                Error(
                    f"A run of {origin} ({longest:g} s) on queue {queue!r} outlasts the soft-shutdown window "
                    f"(CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT {soft:g} s) of its worker {worker}: every deploy and "
                    "scale-down cuts such a run off, returns its message to the queue and runs it again.",
                    hint=f"Raise CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT to at least {longest:g} s (and the worker's "
                    "grace period with it, celery.E010), or lower the task's io_timeout.",
                    id="celery.E012",
                )
            )
    return errors


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


@register(Tags.compatibility)
def check_task_annotations_resolve(app_configs=None, **kwargs):
    """A task's argument check reads its annotations; one that names an unimportable type disables it."""
    errors = []
    for name, task in project_tasks().items():
        try:
            ArgumentSpec.of(task.run)
        except UnresolvableAnnotationError as exc:
            errors.append(
                Error(
                    f"Task {name}: its annotations cannot be resolved at run time ({exc}), so its arguments "
                    "are not type-checked.",
                    hint="Import the annotated types at module level (not under TYPE_CHECKING), or annotate "
                    "the arguments with the JSON types the message carries (int, str, list, dict...).",
                    id="celery.E008",
                )
            )
    return errors


@register(Tags.compatibility)
def check_routed_queues_are_declared(app_configs=None, **kwargs):
    """With task_create_missing_queues off, a task routed to an undeclared queue fails at every send."""
    known = {queue.name for queue in celery_app.conf.task_queues or ()}
    return [
        Error(
            f"{origin} sends tasks to queue {queue!r}, which CELERY_TASK_QUEUES does not declare: "
            "every send of those tasks fails (QueueNotFound).",
            hint=f"Add Queue({queue!r}) to CELERY_TASK_QUEUES (and a worker for it), or fix the route.",
            id="celery.E009",
        )
        for queue, origin in sorted(route_queues().items())
        if queue not in known
    ]


@register(Tags.compatibility)
def check_unenforced_time_limits(app_configs=None, **kwargs):
    """On a threads (or solo) worker no time limit stops a task: its own I/O timeouts must bound it."""
    unenforced = unenforcing_queues()
    errors = []
    for name, task in project_tasks().items():
        queue = task_queue(task)
        if queue in unenforced and getattr(task, "io_timeout", None) is None:
            errors.append(
                Error(
                    f"Task {name} runs on queue {queue!r}, whose worker {unenforced[queue]} enforces no time "
                    "limit, and it declares no io_timeout: nothing bounds a run, so a hung call holds a worker "
                    "slot and the message (redelivered after the visibility timeout) for ever.",
                    hint="Give every blocking call of the task a timeout and declare their sum as the task's "
                    "io_timeout (seconds, e.g. @shared_task(io_timeout=30)), or route it to a prefork queue.",
                    id="celery.E011",
                )
            )
    return errors
