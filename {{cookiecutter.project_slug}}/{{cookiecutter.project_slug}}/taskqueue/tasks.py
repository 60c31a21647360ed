import logging
from datetime import timedelta

from celery import shared_task

from {{ cookiecutter.project_slug }}.taskqueue import dead_letters

logger = logging.getLogger(__name__)

# Dead letters older than this are deleted by the daily purge (schedules.py).
FAILED_TASK_RETENTION = timedelta(days=30)


@shared_task(name="taskqueue.purge_failed_tasks")
def purge_failed_tasks() -> None:
    deleted = dead_letters.purge(older_than=FAILED_TASK_RETENTION)
    logger.info("Purged %d failed tasks older than %s", deleted, FAILED_TASK_RETENTION)
