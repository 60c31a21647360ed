"""SIGTERM a real worker mid-task, started by the compose start script its container runs: no task is lost.

The prefork workers (default, cpu) shut down warm: the running task finishes, then the worker exits. The io
worker (threads, which no time limit can stop) runs a soft shutdown instead (REMAP_SIGTERM in
compose/start-worker-io): a task that ends within CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT finishes; one still
running then goes back to its queue and runs on the next worker, and a hung one does not hold the exit.
Each worker has a broker of its own (tests/support/own_broker.py), so the in-process test workers take none of its
messages; the tasks count their starts and ends in its Redis database (tests/taskqueue/shutdown_tasks.py).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.celery_app import app as celery_app
from tests.support.database import database_url
from tests.support.waiting import settles_at, wait_until
from tests.taskqueue.shutdown_tasks import fetch_counted, fetch_hanging_once, sleep_counted
from tools.procfile import StartScript

pytestmark = pytest.mark.django_db(transaction=True)

SOFT_SHUTDOWN_TIMEOUT = 2
# What a worker may take past the soft window to cancel, return messages and exit, on a loaded CI machine.
EXIT_MARGIN = 5
STARTUP_TIMEOUT = 90


@pytest.fixture
def broker(own_broker):
    return own_broker(4)


@pytest.fixture
def start_worker(broker):
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        **broker.env,
        "DATABASE_URL": database_url(),
        "CELERY_WORKER_INCLUDE": "tests.taskqueue.shutdown_tasks",
        "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT": str(SOFT_SHUTDOWN_TIMEOUT),
        "CELERY_DEFAULT_CONCURRENCY": "1",
        "CELERY_CPU_CONCURRENCY": "1",
        "CELERY_IO_CONCURRENCY": "2",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    started = []

    def start(script: str) -> StartScript:
        worker = StartScript(script, env).start()
        started.append(worker)
        worker.wait_for_output(" ready.", timeout=STARTUP_TIMEOUT)
        return worker

    yield start
    for worker in started:
        worker.kill_group()


def send(task, *args, broker_url: str, **options) -> None:
    with celery_app.connection_for_write(broker_url) as broker:
        task.apply_async(args, connection=broker, **options)


def count(client, marker: str, event: str) -> int:
    return int(client.get(f"shutdown:{marker}:{event}") or 0)


def terminate(worker: StartScript, timeout: float) -> float:
    """SIGTERM, as `docker stop` and Kubernetes send it; the seconds until the process exited."""
    sent = time.monotonic()
    worker.signal(signal.SIGTERM)
    try:
        worker.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        output = worker.output()[-4000:]
        raise AssertionError(f"{worker.name} still running {timeout} s after SIGTERM:\n{output}") from exc
    return time.monotonic() - sent


@pytest.mark.parametrize(
    ("script", "queue"), [("compose/start-worker", "default"), ("compose/start-worker-cpu", "cpu")]
)
def test_sigterm_lets_a_prefork_workers_running_task_finish(start_worker, broker, script, queue):
    url, client = broker.url, broker.client
    worker = start_worker(script)
    # Longer than the soft window: a warm shutdown waits for the task, it does not cut it off.
    send(sleep_counted, "prefork", SOFT_SHUTDOWN_TIMEOUT + 1, broker_url=url, queue=queue)
    wait_until(lambda: count(client, "prefork", "started"), timeout=30, what="the task to start")
    terminate(worker, timeout=60)
    assert count(client, "prefork", "finished") == 1
    assert count(client, "prefork", "started") == 1
    assert settles_at(broker.held, 0) == 0, "the finished task was left in the queue and would run again"


def test_sigterm_on_the_io_worker_finishes_a_short_task_and_requeues_a_hung_one_without_waiting_for_it(
    start_worker, broker
):
    url, client = broker.url, broker.client
    worker = start_worker("compose/start-worker-io")
    send(fetch_hanging_once, "hung", broker_url=url)
    send(fetch_counted, "short", 0.5, broker_url=url)
    wait_until(
        lambda: count(client, "hung", "started") and count(client, "short", "started"),
        timeout=30,
        what="both tasks to start",
    )
    # The hung thread sleeps 60 s: the worker exits after the soft window anyway.
    elapsed = terminate(worker, timeout=SOFT_SHUTDOWN_TIMEOUT + EXIT_MARGIN)
    assert elapsed >= SOFT_SHUTDOWN_TIMEOUT - 0.5, "the soft shutdown window was not waited for"
    assert "Initiating Soft Shutdown" in worker.output()
    # The short task finished within the window and was acked; the hung one's message is back in its queue.
    assert (count(client, "short", "started"), count(client, "short", "finished")) == (1, 1)
    assert count(client, "hung", "finished") == 0
    assert settles_at(lambda: broker.ready("io"), 1) == 1
    assert settles_at(broker.unacked, 0) == 0
    start_worker("compose/start-worker-io")
    wait_until(lambda: count(client, "hung", "finished"), timeout=30, what="the requeued task to run")
    assert count(client, "hung", "started") == 2
    assert count(client, "short", "started") == 1


{% if cookiecutter.broker == "rabbitmq" -%}
def test_a_countdown_waits_in_rabbitmq_not_in_the_idle_io_worker_which_exits_at_once(start_worker, broker):
    # Native delayed delivery: the message waits in RabbitMQ's delay queues until due; no worker holds it, so a
    # deploy during a countdown neither waits for it nor has anything to give back.
    url, client = broker.url, broker.client
    worker = start_worker("compose/start-worker-io")
    send(fetch_counted, "later", 0, broker_url=url, countdown=30)
    terminate(worker, timeout=SOFT_SHUTDOWN_TIMEOUT + EXIT_MARGIN)
    assert "Initiating Soft Shutdown" not in worker.output()
    assert "Task tests.fetch_counted" not in worker.output(), "the worker took the message before it was due"
    assert settles_at(broker.held, 1) == 1, f"the countdown's message is not in RabbitMQ: {broker.counts()}"
    assert broker.ready("io") == 0
    assert count(client, "later", "started") == 0
{%- else -%}
def test_an_idle_io_worker_exits_at_once_and_returns_the_countdown_message_it_holds(start_worker, broker):
    # CELERY_WORKER_ENABLE_SOFT_SHUTDOWN_ON_IDLE is off: no task runs, so there is no window to wait out.
    url, client = broker.url, broker.client
    worker = start_worker("compose/start-worker-io")
    send(fetch_counted, "later", 0, broker_url=url, countdown=30)
    worker.wait_for_output("Task tests.fetch_counted", timeout=30)
    terminate(worker, timeout=SOFT_SHUTDOWN_TIMEOUT + EXIT_MARGIN)
    assert "Initiating Soft Shutdown" not in worker.output()
    assert broker.ready("io") == 1, "the message held for its countdown was not returned to the queue"
    assert count(client, "later", "started") == 0
{%- endif %}
