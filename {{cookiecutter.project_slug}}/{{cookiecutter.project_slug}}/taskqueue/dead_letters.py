"""Dead letters: record tasks that failed for good, and send them again once the cause is fixed."""

import logging
from datetime import timedelta

from celery import Task
from django.utils import timezone

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue.deliveries import queue_of
from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask
from {{ cookiecutter.project_slug }}.taskqueue.sending import ensure_registered, send_task_by_name

logger = logging.getLogger(__name__)


def record_failure(*, task: Task, task_id: str, args, kwargs, exc: BaseException, traceback: str) -> FailedTask:
    """Store the failed task with what it takes to replay it; a second failure of the same id updates it."""
    failed, _ = FailedTask.objects.update_or_create(
        task_id=task_id,
        defaults={
            "task_name": task.name,
            "args": list(args or ()),
            "kwargs": dict(kwargs or {}),
            "queue": queue_of(task.request.delivery_info),
            "exception": type(exc).__name__,
            "message": str(exc)[:10_000],
            "traceback": traceback[:50_000],
            "retries": task.request.retries or 0,
        },
    )
    return failed


def replay(failed: FailedTask) -> str:
    """Send the failed task again, by name, with its original arguments; return the new task id.

    Tasks are idempotent, so a replay of a task that in fact half-succeeded is safe.
    """
    ensure_registered(failed.task_name)
    if getattr(celery_app.tasks[failed.task_name], "replay_to_recorded_queue", False) and failed.queue:
        # Its sender chose the queue (a Django task's queue_name), which no route can give it back.
        result = celery_app.send_task(failed.task_name, args=failed.args, kwargs=failed.kwargs, queue=failed.queue)
    else:
        result = send_task_by_name(failed.task_name, args=failed.args, kwargs=failed.kwargs)
    failed.replayed_at = timezone.now()
    failed.replayed_as = result.id
    failed.save(update_fields=["replayed_at", "replayed_as"])
    logger.info("Replayed %s[%s] as %s", failed.task_name, failed.task_id, result.id)
    return result.id


def purge(*, older_than: timedelta) -> int:
    """Delete dead letters older than ``older_than``; return how many."""
    deleted, _ = FailedTask.objects.filter(failed_at__lt=timezone.now() - older_than).delete()
    return deleted
