import logging
from datetime import timedelta
from typing import Any

from celery import Task, shared_task

from {{ cookiecutter.project_slug }}.taskqueue import dead_letters, task_backend

logger = logging.getLogger(__name__)

# Dead letters older than this are deleted by the daily purge (schedules.py).
FAILED_TASK_RETENTION = timedelta(days=30)


@shared_task(name="taskqueue.purge_failed_tasks")
def purge_failed_tasks() -> None:
    deleted = dead_letters.purge(older_than=FAILED_TASK_RETENTION)
    logger.info("Purged %d failed tasks older than %s", deleted, FAILED_TASK_RETENTION)


# ignore_result=False: with a result backend, get_result() reads the run's outcome; track_started: and RUNNING.
@shared_task(
    name=task_backend.RUNNER, bind=True, ignore_result=False, track_started=True, replay_to_recorded_queue=True
)
def run_django_task(self: Task, module_path: str, args: list, kwargs: dict) -> Any:
    """Run a Django task (``.enqueue()`` of a function decorated with Django's ``@task``) on this worker.

    Sent by taskqueue/task_backend.py to the queue the Django task names; a dead letter of it is replayed there.
    """
    return task_backend.run(self, module_path, args, kwargs)
