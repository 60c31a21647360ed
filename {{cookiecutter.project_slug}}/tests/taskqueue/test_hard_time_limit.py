"""A task killed at its hard time limit on a real prefork worker becomes a dead letter that can be replayed.

The kill is handled in the worker's main process, not in the child that ran the task: the dead letter must
still carry the killed request's queue and retry count (patches/celery_worker.py TimeLimitRequest).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask
from tests.support.database import database_url
from tests.support.waiting import wait_until
from tests.taskqueue.shutdown_tasks import overrun_after_a_retry
from tools.procfile import PROJECT_DIR, ProcfileProcess

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = ("received", "succeeded", "retried", "failed")

# manage.py replay_failed_tasks, in a process whose broker is the worker's (the test tasks loaded first).
REPLAY = """
import sys

import django

django.setup()
import tests.taskqueue.shutdown_tasks  # noqa: F401
from django.core.management import call_command

call_command("replay_failed_tasks", sys.argv[1])
"""


@pytest.fixture
def worker_env(own_broker):
    broker = own_broker(5)
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        **broker.env,
        "DATABASE_URL": database_url(),
        "CELERY_WORKER_INCLUDE": "tests.taskqueue.shutdown_tasks",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return broker.url, broker.client, env


def test_a_hard_time_limit_kill_after_a_retry_is_a_dead_letter_with_the_real_request(worker_env):
    url, client, env = worker_env
    worker = ProcfileProcess("worker", env=env, extra_args="--concurrency 1 -n time-limit@%h --without-mingle").start()
    try:
        worker.wait_for_output(" ready.", timeout=90)
        with celery_app.connection_for_write(url) as broker:
            sent = overrun_after_a_retry.apply_async(["limit"], {"seconds": 30}, connection=broker)
        failed = wait_until(
            lambda: FailedTask.objects.filter(task_id=sent.id).first(), timeout=60, what="the dead letter"
        )
        # The worker logs the kill before it makes the dead letter, but its output reaches this process through a
        # pipe and a reader thread: wait for it rather than assume it has been read.
        worker.wait_for_output("Hard time limit (2s) exceeded", timeout=10)
        # The main process counts the failure once (task_failure, which celery 5.7 sends twice here), after the
        # dead letter; the first run's retry was counted with its run time when that run ended.
        metrics_seen = wait_until(
            lambda: (
                (seen := {event: client.hget(f"metrics:task:{event}", failed.task_name) for event in EVENTS})
                and seen["failed"]
                and seen
            ),
            timeout=10,
            what="the failure to be counted",
        )
        assert metrics_seen == {"received": b"2", "retried": b"1", "failed": b"1", "succeeded": None}
        # The retried run's time; and the killed run's own when its child ran task_postrun (with no outcome)
        # between billiard's SIGTERM and its SIGKILL 0.1 s later, which depends on the machine's load.
        assert client.hget("metrics:task:runtime", f"{failed.task_name}|count") in (b"1", b"2")
        assert failed.task_name == "tests.overrun_after_a_retry"
        assert failed.exception == "TimeLimitExceeded"
        assert (failed.args, failed.kwargs) == (["limit"], {"seconds": 30})
        assert failed.queue == "default"
        assert failed.retries == 1
        assert int(client.get("shutdown:limit:started")) == 2

        replay = subprocess.run(
            [sys.executable, "-c", REPLAY, str(failed.pk)],
            cwd=PROJECT_DIR,
            env={**os.environ, **env, "PYTHONPATH": str(PROJECT_DIR)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert replay.returncode == 0, replay.stderr[-3000:]
        assert f"replayed {failed.pk}: tests.overrun_after_a_retry[{sent.id}]" in replay.stdout
        # The replay (third run) finishes: same name, arguments and queue.
        wait_until(lambda: client.get("shutdown:limit:finished"), timeout=30, what="the replay to run")
        failed.refresh_from_db()
        assert failed.replayed_at is not None
        assert FailedTask.objects.count() == 1
    finally:
        worker.stop()
