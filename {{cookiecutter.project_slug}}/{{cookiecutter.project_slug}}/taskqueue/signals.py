"""Log every task failure, retry and expiry with the task's name and id .

Connected in TaskQueueConfig.ready(). Celery's own log lines are terse and easy to miss;
these say which task, which message, with what arguments and whether it will retry.
"""

import logging
import reprlib

from celery.exceptions import Reject
from celery.signals import task_failure, task_retry, task_revoked

logger = logging.getLogger(__name__)

# Arguments are IDs and small values; still, never let one fill the log.
_arguments = reprlib.Repr()
_arguments.maxstring = 80
_arguments.maxother = 80
_arguments.maxlist = 10
_arguments.maxdict = 10


def summarise(args, kwargs) -> str:
    return f"args={_arguments.repr(list(args or ()))} kwargs={_arguments.repr(dict(kwargs or {}))}"


@task_failure.connect
def log_task_failure(sender=None, task_id=None, exception=None, args=None, kwargs=None, **extra):
    retryable = tuple(getattr(sender, "autoretry_for", ()))
    retries = sender.request.retries if sender is not None else 0
    if retryable and isinstance(exception, retryable):
        outcome = f"gave up after {retries} retries"
    else:
        outcome = "not retried: a permanent error"
    logger.error(
        "Task %s[%s] failed, %s: %s: %s; %s",
        getattr(sender, "name", "?"),
        task_id,
        outcome,
        type(exception).__name__,
        exception,
        summarise(args, kwargs),
    )


@task_retry.connect
def log_task_retry(sender=None, request=None, reason=None, **extra):
    logger.warning(
        "Task %s[%s] will retry (retry %s of %s, %s): %s; %s",
        getattr(sender, "name", "?"),
        getattr(request, "id", "?"),
        getattr(request, "retries", 0) + 1,
        getattr(sender, "max_retries", "?"),
        reason.humanize() if hasattr(reason, "humanize") else "soon",
        getattr(reason, "exc", reason),
        summarise(getattr(request, "args", ()), getattr(request, "kwargs", {})),
    )


@task_revoked.connect
def log_task_revoked(sender=None, request=None, terminated=False, expired=False, **extra):
    name = getattr(sender, "name", None) or getattr(request, "task", "?")
    task_id = getattr(request, "id", "?")
    if expired:
        # Sent with `expires`: past that moment the work is useless, so the worker drops it.
        logger.warning("Task %s[%s] expired before a worker ran it; discarded", name, task_id)
    else:
        logger.warning("Task %s[%s] revoked (terminated=%s); not run", name, task_id, terminated)


class MessageRejectedError(Exception):
    """The dead letter's exception for a message its task rejected without requeue."""


@task_failure.connect
def record_rejected_message(sender=None, task_id=None, exception=None, args=None, kwargs=None, einfo=None, **extra):
    """A task that rejects its message without requeue (``raise Reject(reason, requeue=False)``) would drop it: Celery
    acks it. It becomes a dead letter with the reason instead, unless one was recorded already (retries.py)."""
    if not isinstance(exception, Reject) or exception.requeue or sender is None:
        return
    from {{ cookiecutter.project_slug }}.taskqueue.dead_letters import record_failure
    from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask

    if FailedTask.objects.filter(task_id=task_id).exists():
        return
    reason = exception.reason
    error = (
        reason if isinstance(reason, BaseException) else MessageRejectedError(f"rejected without requeue: {reason}")
    )
    try:
        record_failure(task=sender, task_id=task_id, args=args, kwargs=kwargs, exc=error, traceback=str(einfo or ""))
    except Exception:
        logger.exception("Could not record the rejected message of %s[%s] as a dead letter", sender.name, task_id)
