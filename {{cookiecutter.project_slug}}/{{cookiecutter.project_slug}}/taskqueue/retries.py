"""A retry is never dropped: one that cannot be published is kept, or becomes a dead letter with its reason.

Celery's ``Task.retry`` publishes the retry message and, if that publish raises, raises
``Reject(exc, requeue=False)`` (celery/app/task.py, celery 5.7): the worker acks the original message, and
the task is gone, with one log line. ``BaseTask.retry`` (base_task.py) hands that case to
:func:`unpublished_retry`, which decides by the cause:

- The broker did not answer (a stall, a restart, a failover: kombu's connection and channel errors, after
  the worker's own publish retries below): the original message goes back to the head of its queue
  (``Reject(requeue=True)``) and the task runs again, from the start, as any redelivery does. If Redis does
  not take even that, the message stays unacked and Redis redelivers it after the visibility timeout. Each
  return is a redelivery, so a broker that keeps refusing the retry makes it a dead letter after
  ``max_deliveries`` runs (deliveries.py).
- Anything else: the retry was refused (a countdown past TASK_MAX_COUNTDOWN, a message over
  TASK_MAX_MESSAGE_BYTES, arguments that do not serialise), which would happen every time, or the task's soft
  time limit ran out while it was publishing. The task becomes a dead letter now, with the reason and the
  arguments it ran with, and its message is acked.

Both are logged, counted as ``celery_task_retry_unpublished`` on ``/metrics``, and shown on the queues page.

Worker-side publishes (a retry, a task sent by a task) also get broker bounds of their own
(:func:`use_worker_publish_bounds`, at worker start): a web request's send gives up within 5 s, so
that a page answers; a worker has nobody waiting, and giving up costs a rerun of the task, so it keeps
trying for longer (WORKER_BROKER_CONNECTION_TIMEOUT, WORKER_PUBLISH_RETRY_POLICY in config/settings/base.py).
"""

import logging

from celery import Task
from celery.exceptions import Reject
from django.conf import settings
from kombu.exceptions import LimitExceeded, OperationalError

logger = logging.getLogger(__name__)

# Where a retry went that could not be published (the metric's and the log's words).
KEPT = "kept"  # its message went back to the queue
DEAD_LETTER = "dead_letter"  # recorded as a FailedTask and acked


class RetryNotPublishedError(Exception):
    """The dead letter's exception: the task's retry was never sent, and sending it again would not help."""


def broker_errors(task: Task) -> tuple[type[BaseException], ...]:
    """The errors that mean "the broker did not answer", as opposed to "this message is refused"."""
    # Not connected: only the transport class is loaded, for its error types.
    connection = task.app.connection_for_write()
    return (OperationalError, LimitExceeded, *connection.connection_errors, *connection.channel_errors)


def unpublished_retry(task: Task, cause: BaseException) -> Reject:
    """What BaseTask.retry raises instead of Celery's Reject(requeue=False): see the module docstring."""
    from {{ cookiecutter.project_slug }}.taskqueue import metrics
    from {{ cookiecutter.project_slug }}.taskqueue.dead_letters import record_failure

    request = task.request
    if isinstance(cause, broker_errors(task)):
        logger.warning(
            "The retry of %s[%s] could not be published (%s: %s): its message goes back to the queue and the task "
            "runs again",
            task.name,
            request.id,
            type(cause).__name__,
            cause,
        )
        metrics.recorder.count_unpublished_retry(task.name, KEPT)
        return Reject(cause, requeue=True)
    error = RetryNotPublishedError(f"its retry could not be published: {type(cause).__name__}: {cause}")
    logger.error(
        "The retry of %s[%s] could not be published (%s: %s), and publishing it again would not help: recorded as "
        "a dead letter, not run again",
        task.name,
        request.id,
        type(cause).__name__,
        cause,
    )
    try:
        record_failure(
            task=task, task_id=request.id, args=request.args, kwargs=request.kwargs, exc=error, traceback=""
        )
    except Exception:
        # Without its dead letter the task must not be acked: it goes back to the queue instead.
        logger.exception("Could not record the dead letter of %s[%s]; its message goes back", task.name, request.id)
        metrics.recorder.count_unpublished_retry(task.name, KEPT)
        return Reject(cause, requeue=True)
    metrics.recorder.count_unpublished_retry(task.name, DEAD_LETTER)
    return Reject(error, requeue=False)


def use_worker_publish_bounds(conf) -> None:
    """At worker start (celeryd_init, before any publish): the worker's bounds for every publish.

    Celery reads task_publish_retry_policy once, when its task sender is first built, and
    broker_connection_timeout when a connection is made (a prefork child makes its own): the worker's main
    process sets both here before either, and its prefork children inherit them.
    """
    conf.task_publish_retry_policy = dict(settings.WORKER_PUBLISH_RETRY_POLICY)
    conf.broker_connection_timeout = settings.WORKER_BROKER_CONNECTION_TIMEOUT
