"""Thin wrappers around reports.services: names, queues, retries, locks, time limits.

The verb of each name routes it (CELERY_TASK_ROUTES): the page fetches wait on the network
(io: threads, many at once), the build computes (cpu: prefork), the rest run on default (prefork).
"""

import logging
import tempfile
from datetime import date
from pathlib import Path

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_failure
from django.conf import settings

from {{ cookiecutter.project_slug }}.examples.reports import api_client, fan_in, services
from {{ cookiecutter.project_slug }}.examples.reports.api_client import RateLimitedError, TransientSalesAPIError
from {{ cookiecutter.project_slug }}.taskqueue.locks import task_lock

logger = logging.getLogger(__name__)

# Transient API failures retry with exponential backoff, capped and jittered so that a
# recovering API is not hit by every worker at the same instant; a bounded number of
# times, after which the task is recorded as failed for a person to replay.
API_RETRIES = {
    "autoretry_for": (TransientSalesAPIError,),
    "retry_backoff": True,
    "retry_backoff_max": settings.REPORTS_API_RETRY_BACKOFF_MAX,
    "retry_jitter": True,
    "max_retries": 5,
}


def _retry_when_told(task, exc: RateLimitedError):
    """Honour a 429's Retry-After (capped: a longer ETA would outlive the visibility timeout)."""
    if exc.retry_after is None:
        raise exc  # no hint: the autoretry backoff applies
    return task.retry(exc=exc, countdown=min(exc.retry_after, settings.TASK_MAX_COUNTDOWN))


@shared_task(name="reports.generate_report", bind=True, soft_time_limit=30, time_limit=60, **API_RETRIES)
def generate_report(self, day: str | None = None) -> None:
    """Start the report of ``day`` (ISO date; default yesterday): the nightly entry point (schedules.py)."""
    report_day = date.fromisoformat(day) if day else services.yesterday()
    # One run per day at a time: the loser logs and returns, it is not an error.
    with task_lock(self, f"reports:generate:{report_day.isoformat()}") as acquired:
        if not acquired:
            logger.info("Report for %s skipped: another run holds its lock", report_day)
            return
        try:
            services.start_report(day=report_day)
        except RateLimitedError as exc:
            raise _retry_when_told(self, exc) from exc


@shared_task(
    name="reports.fetch_page",
    bind=True,
    # No per-task time limits: io's threads pool cannot enforce any; the HTTP timeouts bound this task:
    # one request, connect + read (check celery.E001 counts this io_timeout instead of a time limit).
    io_timeout=sum(settings.REPORTS_API_TIMEOUT),
    # Per worker: keeps the io workers together under the API's published rate limit.
    rate_limit=settings.REPORTS_API_RATE_LIMIT,
    # The chord (fan_in.py) needs each page's rows as this task's result; nothing else keeps results.
    ignore_result=not fan_in.KEEPS_PAGE_RESULTS,
    **API_RETRIES,
)
def fetch_page(self, day: str, page: int) -> list[dict] | None:
    try:
        rows = api_client.fetch_page(date.fromisoformat(day), page)
    except RateLimitedError as exc:
        raise _retry_when_told(self, exc) from exc
    return fan_in.page_fetched(day, page, rows)


@shared_task(name="reports.build_report")
def build_report(pages: list, day: str) -> None:
    services.build_report(day=date.fromisoformat(day), pages=pages)


# Where each pipeline step carries the report's day: (position in args, name in kwargs).
PIPELINE_DAY_ARGUMENT = {"reports.fetch_page": (0, "day"), "reports.build_report": (1, "day")}


@task_failure.connect
def show_the_report_failed(sender=None, exception=None, args=(), kwargs=None, **_):
    """A page fetch or the build failed for good (retries exhausted, or a 4xx): the report says so at once.

    Without this it would read "running" for an hour (RUNNING_TTL), and a rerun would be skipped
    as already under way; the failed task itself is recorded for replay (taskqueue/dead_letters.py).
    """
    if sender is None or sender.name not in PIPELINE_DAY_ARGUMENT:
        return
    position, name = PIPELINE_DAY_ARGUMENT[sender.name]
    day = (kwargs or {}).get(name) or args[position]
    services.report_failed(day=date.fromisoformat(day), reason=f"{sender.name} failed: {exception}")


@shared_task(
    name="reports.archive_export",
    bind=True,
    # On the default queue on purpose: only prefork enforces time limits; io's threads pool cannot.
    soft_time_limit=15 * 60,
    time_limit=16 * 60,
    **API_RETRIES,
)
def archive_export(self, day: str) -> None:
    """Keep a copy of the day's raw export; the download can be long, so the soft limit cleans up after it."""
    # Named after the task id: two runs for the same day never write to the same partial file.
    partial = Path(tempfile.gettempdir()) / f"sales-export-{day}-{self.request.id}.partial"
    try:
        services.archive_export(day=date.fromisoformat(day), partial=partial)
    except SoftTimeLimitExceeded:
        # Out of time: leave no half-written file behind, then fail so the failure is recorded.
        partial.unlink(missing_ok=True)
        logger.warning("Archive of the %s export hit its soft time limit; partial download removed", day)
        raise
