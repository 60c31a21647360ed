"""Django tasks (``@task`` of Django's tasks API) that exist only for the tests of taskqueue/task_backend.py."""

from django.core.cache import cache

from {{ cookiecutter.project_slug }}.taskqueue.django_tasks_api import TaskContext, task


@task(takes_context=True)
def add_and_record(context: TaskContext, marker: str, left: int, right: int) -> int:
    """Note which worker ran it (and how many times), and return the sum."""
    cache.set(
        f"django-task:{marker}",
        {"worker": context.task_result.worker_ids[-1], "attempt": context.attempt},
        timeout=60,
    )
    return left + right


@task()
def fail_on_purpose(marker: str) -> None:
    raise ValueError(f"broken on purpose: {marker}")
