"""Send a task by name, safely (P3).

Code that must not import a task module (models, services that tasks import, logging
handlers) sends by name. ``celery_app.send_task`` accepts any string and any queue, so
a typo becomes a message nobody ever consumes; this helper refuses it instead.
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


class WrongQueueError(TaskSendError):
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
    """The queue CELERY_TASK_ROUTES sends this task name to."""
    return celery_app.amqp.router.route({}, name)["queue"].name


def signature_by_name(name: str, *, args: tuple | list = (), kwargs: dict | None = None) -> Signature:
    """A signature (for chords and chains) of a task that must exist; routed by its name."""
    ensure_registered(name)
    return celery_app.signature(name, args=tuple(args), kwargs=kwargs or {})


def send_task_by_name(
    name: str,
    *,
    queue: str,
    args: tuple | list = (),
    kwargs: dict | None = None,
    **options,
) -> AsyncResult:
    """Send ``name`` to ``queue``: refuse unknown names and queues that contradict the routes.

    ``queue`` is required so a reader sees where the message goes; it must be the queue
    the routes give, so sending by name and calling ``.delay()`` never disagree. Like every
    send, it refuses a message over the size or countdown limits (core/message_limits.py).
    """
    ensure_registered(name)
    expected = routed_queue(name)
    if queue != expected:
        raise WrongQueueError(
            f"{name!r} is routed to the {expected!r} queue (CELERY_TASK_ROUTES), not {queue!r}: "
            f"pass queue={expected!r} or change the route."
        )
    return celery_app.send_task(name, args=args, kwargs=kwargs, queue=queue, **options)
