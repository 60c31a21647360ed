"""The overlap lock outlives the task's hard time limit: a run that was killed cannot leave a lock
that never expires, and a run still going cannot lose its lock to a second run."""

from django.core.cache import cache
from django_redis import get_redis_connection

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue.locks import task_lock


def test_the_lock_expires_after_the_tasks_hard_time_limit_and_not_before():
    task = celery_app.tasks["tests.hard_limited"]
    with task_lock(task, "test-lock") as acquired:
        assert acquired
        expires_in = get_redis_connection("default").ttl(cache.make_key("lock:test-lock"))
    assert task.time_limit < expires_in <= task.time_limit + 60


def test_a_second_run_does_not_get_the_lock_while_the_first_holds_it():
    task = celery_app.tasks["tests.hard_limited"]
    with task_lock(task, "test-lock") as first, task_lock(task, "test-lock", blocking_timeout=0.1) as second:
        assert (first, second) == (True, False)
