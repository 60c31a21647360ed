"""A backend for Django's tasks framework (``django.tasks``; the django-tasks backport on Django 5.2) that runs them
on the project's Celery workers, with the guarantees of the project's own tasks (docs/django-tasks.md).

``TASKS["default"]["BACKEND"]`` names :class:`CeleryBackend`. ``.enqueue()`` checks the task and its arguments at
once, then sends one message, once the current transaction commits (at once outside one), as ``delay_on_commit()``
does: the Celery task ``taskqueue.run_django_task`` with the function's dotted path and its arguments, to the Celery
queue named by the task's ``queue_name``. That Celery task derives from the project's base task, so late acks,
argument checks, dead letters, metrics and time limits apply to it as to any other; every send goes through the
project's message limits (size, countdown) and refuses a queue CELERY_TASK_QUEUES does not declare.

Results are read from Celery's result backend. At enqueue the backend stores, under ``<id>.enqueued``, which
function and which arguments the id belongs to: Celery's own record of a run holds neither reliably (the database
backend stores only their repr), and ``get_result(id)`` must return the task.
"""

import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

from celery import Task as CeleryTask
from celery import states
from celery.backends.base import BaseBackend, DisabledBackend
from django.core import checks
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue.arguments import ArgumentSpec, UnresolvableAnnotationError
from {{ cookiecutter.project_slug }}.taskqueue.checks import unenforcing_queues
from {{ cookiecutter.project_slug }}.taskqueue.django_tasks_api import (
    BaseTaskBackend,
    InvalidTaskError,
    Task,
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
)
from {{ cookiecutter.project_slug }}.taskqueue.sending import ensure_registered

logger = logging.getLogger(__name__)

# The Celery task that runs every Django task (taskqueue/tasks.py).
RUNNER = "taskqueue.run_django_task"
ENVELOPE_SUFFIX = ".enqueued"

# A Celery state as Django's tasks name it. RETRY: the message is back on its queue, to run again.
STATUSES = {
    states.PENDING: TaskResultStatus.READY,
    states.RECEIVED: TaskResultStatus.READY,
    states.RETRY: TaskResultStatus.READY,
    states.STARTED: TaskResultStatus.RUNNING,
    states.SUCCESS: TaskResultStatus.SUCCESSFUL,
    states.FAILURE: TaskResultStatus.FAILED,
    states.REVOKED: TaskResultStatus.FAILED,
    states.REJECTED: TaskResultStatus.FAILED,
}


class TaskArgumentsError(TypeError):
    """Arguments a Django task cannot be sent with: not JSON values, or not what its function accepts."""


class TaskResultsDisabledError(NotImplementedError):
    """The project keeps no task results (CELERY_RESULT_BACKEND unset), so a Django task's result cannot be read."""


def declared_queues() -> set[str]:
    """The Celery queues a task may be sent to: CELERY_TASK_QUEUES."""
    return {queue.name for queue in celery_app.conf.task_queues or ()}


def results_enabled() -> bool:
    """Whether Celery keeps results (CELERY_RESULT_BACKEND set), read without connecting to the backend."""
    return str(celery_app.conf.result_backend or "disabled") != "disabled"


def result_store() -> BaseBackend | None:
    """Celery's result backend, or None when the project keeps no results."""
    if not results_enabled():
        return None
    backend = celery_app.backend
    return None if isinstance(backend, DisabledBackend) else backend


def envelope_id(result_id: str) -> str:
    return result_id + ENVELOPE_SUFFIX


def _as_sent(value: Any) -> Any:
    """``value`` as the JSON message carries it: a tuple arrives as a list."""
    if isinstance(value, list | tuple):
        return [_as_sent(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_sent(item) for key, item in value.items()}
    return value


def argument_spec(task: Task) -> ArgumentSpec:
    try:
        return ArgumentSpec.of(task.func)
    except UnresolvableAnnotationError:
        return ArgumentSpec.signature_only(task.func)


def check_arguments(task: Task, args: Iterable[Any], kwargs: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The arguments as the worker will receive them; raise TaskArgumentsError unless they arrive unchanged and fit.

    A value JSON cannot carry (a datetime, a model instance, NaN) is refused, and so is one it would change on the
    way (a dict with integer keys arrives with string keys). Then the function's signature and JSON annotations are
    checked, as the project's base task checks its own tasks' arguments (taskqueue/arguments.py).
    """
    sent = [list(args), dict(kwargs)]
    try:
        received = json.loads(json.dumps(sent, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TaskArgumentsError(
            f"{task.module_path}: the arguments must be JSON values (pass IDs and plain values): {exc}"
        ) from None
    if received != _as_sent(sent):
        raise TaskArgumentsError(
            f"{task.module_path}: the arguments would not arrive as they were given (JSON turns every dict key into "
            f"a string): {sent!r:.200}"
        )
    worker_args, worker_kwargs = received
    context = [None] if task.takes_context else []
    try:
        argument_spec(task).check(task.module_path, [*context, *worker_args], worker_kwargs)
    except TypeError as exc:
        raise TaskArgumentsError(str(exc)) from None
    return worker_args, worker_kwargs


def import_task(module_path: str) -> Task:
    """The Django task at ``module_path`` (the function's module and name, as ``Task.module_path`` gives it)."""
    found = import_string(module_path)
    if not isinstance(found, Task):
        raise TypeError(f"{module_path} is not a Django task (decorate the function with @task)")
    return found


def _moment(value: Any) -> datetime | None:
    """A date from a result record (a datetime, or an ISO string in Redis), aware."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


class CeleryBackend(BaseTaskBackend):
    """Runs Django tasks on the project's Celery workers (see the module docstring).

    A Django task's ``queue_name`` is the name of the Celery queue it runs on. Refused, whatever ``QUEUES`` lists
    (checks celery.E013, celery.E014): a queue CELERY_TASK_QUEUES does not declare, which no worker consumes; and a
    queue whose worker enforces no time limit (the io worker's threads), where a Django task, which has no
    ``io_timeout``, would have nothing to bound its run. ``QUEUES`` (optional) narrows the queues allowed further.
    """

    # run_after becomes the message's ETA, within TASK_MAX_COUNTDOWN (taskqueue/message_limits.py).
    supports_defer = True
    # One Redis list per queue (CELERY_BROKER_TRANSPORT_OPTIONS' priority_steps): no priorities.
    supports_priority = False
    supports_async_task = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        # Read from the process definitions once per process (checks.unenforcing_queues).
        self.unbounded_queues = set(unenforcing_queues())
        if "QUEUES" not in params:
            self.queues = declared_queues() - self.unbounded_queues

    @property
    def supports_get_result(self) -> bool:  # type: ignore[override]  # per call: settings decide, tests change them
        # False where the project was generated with result_backend=none.
        return results_enabled()

    def validate_task(self, task: Task) -> None:
        if task.queue_name not in declared_queues():
            raise InvalidTaskError(
                f"{task.module_path}: queue {task.queue_name!r} is not a Celery queue of this project "
                f"(CELERY_TASK_QUEUES declares {', '.join(sorted(declared_queues()))}): no worker would ever run it."
            )
        if task.queue_name in self.unbounded_queues:
            raise InvalidTaskError(
                f"{task.module_path}: queue {task.queue_name!r} is consumed by a worker that enforces no time limit, "
                "and a Django task has no io_timeout to bound its run. Wait on the network in a Celery task with an "
                'io_timeout (README "Celery task or Django task?"), or use a prefork queue.'
            )
        super().validate_task(task)

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        worker_args, worker_kwargs = check_arguments(task, args, kwargs)
        result: TaskResult[Any] = TaskResult(
            task=task,
            id=str(uuid.uuid4()),
            status=TaskResultStatus.READY,
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=worker_args,
            kwargs=worker_kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        if task.run_after is not None:
            # Refused now rather than when the transaction commits (the send checks it again).
            celery_app.amqp.check_delay(result.id, task.module_path, task.run_after.isoformat())
        # As delay_on_commit(): inside an atomic block, sent once it commits, never if it rolls back.
        transaction.on_commit(partial(self._send, result))
        return result

    def _send(self, result: TaskResult) -> None:
        task = result.task
        ensure_registered(RUNNER)
        store = result_store()
        enqueued_at = timezone.now()
        if store is not None:
            envelope = {
                "task": task.module_path,
                "args": result.args,
                "kwargs": result.kwargs,
                "enqueued_at": enqueued_at.isoformat(),
            }
            store.store_result(envelope_id(result.id), envelope, states.SUCCESS)
        try:
            celery_app.send_task(
                RUNNER,
                args=[task.module_path, result.args, result.kwargs],
                task_id=result.id,
                queue=task.queue_name,
                eta=task.run_after,
            )
        except Exception:
            if store is not None:
                store.forget(envelope_id(result.id))
            raise
        object.__setattr__(result, "enqueued_at", enqueued_at)
        task_enqueued.send(type(self), task_result=result)

    def get_result(self, result_id: str) -> TaskResult:
        store = result_store()
        if store is None:
            raise TaskResultsDisabledError(
                "Task results are off in this project (no CELERY_RESULT_BACKEND: it was generated with "
                "result_backend=none), so a Django task's result or status cannot be read. Record the outcome in "
                "a model of your own, or configure a result backend (docs/django-tasks.md)."
            )
        envelope = store.get_task_meta(envelope_id(result_id))
        if envelope.get("status") != states.SUCCESS:
            raise TaskResultDoesNotExist(result_id)
        sent = envelope["result"]
        meta = store.get_task_meta(result_id, cache=False)
        state = meta.get("status") or states.PENDING
        result: TaskResult[Any] = TaskResult(
            task=import_task(sent["task"]),
            id=result_id,
            status=STATUSES.get(state, TaskResultStatus.READY),
            enqueued_at=_moment(sent.get("enqueued_at")),
            started_at=_moment(meta.get("date_started")),
            finished_at=_moment(meta.get("date_done")) if state in states.READY_STATES else None,
            last_attempted_at=_moment(meta.get("date_started")),
            args=sent["args"],
            kwargs=sent["kwargs"],
            backend=self.alias,
            errors=[],
            worker_ids=[meta["worker"]] if meta.get("worker") else [],
        )
        if state == states.SUCCESS:
            object.__setattr__(result, "_return_value", meta.get("result"))
        elif state in states.EXCEPTION_STATES and isinstance(meta.get("result"), BaseException):
            exc = meta["result"]
            result.errors.append(
                TaskError(
                    exception_class_path=f"{type(exc).__module__}.{type(exc).__qualname__}",
                    traceback=meta.get("traceback") or "",
                )
            )
        return result

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        undeclared = sorted(self.queues - declared_queues())
        unbounded = sorted(self.queues & self.unbounded_queues)
        return [
            checks.Error(
                f"TASKS[{self.alias!r}] allows queue {queue!r}, which CELERY_TASK_QUEUES does not declare: every "
                "enqueue of a Django task on it is refused.",
                hint=f"Add Queue({queue!r}) to CELERY_TASK_QUEUES (and a worker for it), or remove it from QUEUES.",
                id="celery.E013",
            )
            for queue in undeclared
        ] + [
            checks.Error(
                f"TASKS[{self.alias!r}] allows queue {queue!r}, whose worker enforces no time limit: every enqueue of "
                "a Django task on it is refused, since nothing would bound its run.",
                hint=f"Remove {queue!r} from QUEUES; send network waits as Celery tasks with an io_timeout.",
                id="celery.E014",
            )
            for queue in unbounded
        ]


def run(runner: CeleryTask, module_path: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Run the Django task at ``module_path`` in a worker; return its value as JSON carries it."""
    task = import_task(module_path)
    # Checked again here: the message may come from an older release, or another producer.
    context_args: list[Any] = [None] if task.takes_context else []
    argument_spec(task).check(module_path, [*context_args, *args], kwargs)
    if task.takes_context:
        now = timezone.now()
        running: TaskResult[Any] = TaskResult(
            task=task,
            id=runner.request.id,
            status=TaskResultStatus.RUNNING,
            enqueued_at=None,
            started_at=now,
            finished_at=None,
            last_attempted_at=now,
            args=args,
            kwargs=kwargs,
            backend=task.backend,
            errors=[],
            worker_ids=[runner.request.hostname or ""],
        )
        value = task.call(TaskContext(task_result=running), *args, **kwargs)
    else:
        value = task.call(*args, **kwargs)
    return json.loads(json.dumps(value, allow_nan=False))
