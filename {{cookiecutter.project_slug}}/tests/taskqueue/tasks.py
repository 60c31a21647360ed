"""Tasks that exist only for the platform's tests: they record how they were delivered.

Named ``tests.<verb>_<noun>``, routed to each queue by their verbs, so the platform's tests need no example app.
"""

from celery import shared_task
from celery.exceptions import Reject
from django.conf import settings
from django.core.cache import cache

from {{ cookiecutter.project_slug }}.taskqueue.deliveries import queue_of


def _record(task, marker: str, **extra) -> None:
    cache.set(
        f"delivery:{marker}",
        {"queue": queue_of(task.request.delivery_info), **extra},
        timeout=60,
    )


@shared_task(name="tests.record_delivery", bind=True)
def record_delivery(self, marker: str, payload: dict) -> None:
    _record(self, marker, payload=payload)


@shared_task(name="tests.fetch_delivery", bind=True, io_timeout=5)
def fetch_delivery(self, marker: str) -> None:
    """Named like a task that waits on the network: the routes send it to the io queue."""
    _record(self, marker)


@shared_task(name="tests.build_delivery", bind=True)
def build_delivery(self, marker: str) -> None:
    """Named like a task that computes: the routes send it to the cpu queue."""
    _record(self, marker)


@shared_task(name="tests.add", ignore_result=False)
def add(left: int, right: int) -> int:
    return left + right


@shared_task(name="tests.typed", bind=True)
def typed(self, day: str, page: int, rows: list | None = None) -> None:
    """Arguments of each JSON kind, for the argument checks."""


@shared_task(name="tests.hard_limited", time_limit=60, soft_time_limit=50)
def hard_limited() -> None:
    """A task with its own hard time limit, for the lock tests."""


@shared_task(name="tests.retry_too_far_ahead", bind=True)
def retry_too_far_ahead(self, marker: str) -> None:
    """Asks for a retry past TASK_MAX_COUNTDOWN: the project's sender refuses that message every time."""
    raise self.retry(countdown=settings.TASK_MAX_COUNTDOWN + 60)


@shared_task(name="tests.reject_without_requeue", bind=True)
def reject_without_requeue(self, marker: str) -> None:
    """Rejects its message without requeue: Celery would ack and drop it."""
    raise Reject(f"{marker} cannot be processed", requeue=False)
