"""Send a task by name, safely.

Code that must not import a task module (models, services that tasks import, logging
handlers) sends by name. ``celery_app.send_task`` accepts any string, so a typo becomes a
message nobody ever consumes; these helpers refuse it instead. The queue is never given by
the caller: it is the one CELERY_TASK_ROUTES gives the task's name, exactly as for ``.delay()``,
so re-routing a task never breaks a caller.
"""

import difflib

from celery import Signature
from celery.result import AsyncResult
from django.apps import apps

from config.celery_app import app as celery_app


class TaskSendError(ValueError):
    """A task message the helper refuses to send; the message says why."""


class UnknownTaskError(TaskSendError):
    pass


def registered_task_names() -> set[str]:
    """Every task name the project defines, as a worker would see them."""
    # The web process imports tasks.py modules lazily: import them all, as a worker does at start.
    celery_app.loader.autodiscover_tasks([config.name for config in apps.get_app_configs()])
    return set(celery_app.tasks)


def ensure_registered(name: str) -> None:
    """Raise UnknownTaskError unless some installed app defines a task with this name."""
    if name in celery_app.tasks:
        return
    names = registered_task_names()
    if name not in names:
        close = difflib.get_close_matches(name, sorted(names), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownTaskError(f"No registered task is named {name!r}, so no worker would run it.{hint}")


def routed_queue(name: str) -> str:
    """The queue CELERY_TASK_ROUTES sends the task ``name`` to (the default queue if no route matches)."""
    ensure_registered(name)
    return celery_app.amqp.router.route({}, name, task_type=celery_app.tasks[name])["queue"].name


def signature_by_name(name: str, *, args: tuple | list = (), kwargs: dict | None = None) -> Signature:
    """A signature (for chords and chains) of a task that must exist; it goes where the routes send it."""
    return celery_app.signature(name, args=tuple(args), kwargs=kwargs or {}, queue=routed_queue(name))


def send_task_by_name(name: str, *, args: tuple | list = (), kwargs: dict | None = None, **options) -> AsyncResult:
    """Send ``name`` to the queue its route gives; refuse unknown names.

    Like every send, it refuses a message over the size or countdown limits (message_limits.py).
    """
    if "queue" in options:
        raise TaskSendError(
            f"send_task_by_name({name!r}) takes no queue: CELERY_TASK_ROUTES gives it ({routed_queue(name)!r}), "
            "so that re-routing a task needs no change in its callers."
        )
    return celery_app.send_task(name, args=args, kwargs=kwargs, queue=routed_queue(name), **options)
