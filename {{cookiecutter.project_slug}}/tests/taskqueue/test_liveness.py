"""Worker and beat liveness: the heartbeat files the health checks read, and the watchdog that ends a stuck loop.

{% if cookiecutter.broker == "rabbitmq" -%}
Real worker processes, started by the compose start script their container runs, each on a RabbitMQ virtual host (or
node) and a redis-server of its own; beat against the test database.
{%- else -%}
Real worker processes, started by the compose start script their container runs, each on a Redis
database (or a redis-server) of its own; beat against the test database.
{%- endif %} The watchdog's bound is cut to a
few seconds here (WORKER_STUCK_AFTER, BEAT_STUCK_AFTER); a loop is held by a broadcast command that
sleeps in it (tests/taskqueue/hang_control.py) or, for beat, by a lock on the database it reads every tick.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import redis
from django.db import connection

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue.liveness import HEARTBEAT_INTERVAL, STUCK_EXIT_CODE, worker_heartbeat_file
from tests.support.database import database_url
from tests.support.waiting import wait_until
from tests.taskqueue.shutdown_tasks import fetch_counted, sleep_counted
from tools.procfile import PROJECT_DIR, StartScript
{%- if cookiecutter.broker == "rabbitmq" %}
from tools.rabbitmq_server import RabbitMQServer
{%- endif %}
from tools.redis_server import RedisServer

pytestmark = pytest.mark.django_db(transaction=True)

STARTUP_TIMEOUT = 90
STUCK_AFTER = 4
# What an exit may take past the bound on a loaded CI machine: the watchdog looks every second.
EXIT_MARGIN = 15
NODES = {"compose/start-worker": "default", "compose/start-worker-io": "io", "compose/start-worker-cpu": "cpu"}


def wait_exit(worker, timeout: float) -> int:
    """The worker's exit code; past ``timeout``, a failure that shows what the worker wrote (it did not exit)."""
    try:
        return worker.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker was still running {timeout} s later; it wrote:\n{worker.output()[-3000:]}")


@pytest.fixture
def own_redis():
    server = RedisServer().start()
    yield server
    server.stop(remove_data=True)


{%- if cookiecutter.broker == "rabbitmq" %}


@pytest.fixture
def broker_url(own_broker):
    """The workers' broker: a virtual host of their own on the session's node (own_rabbitmq replaces it)."""
    return own_broker(6).url


@pytest.fixture
def own_rabbitmq():
    """A RabbitMQ node of the test's own, to stop and start: the workers' broker, instead of the virtual host."""
    node = RabbitMQServer().start()
    yield node
    node.stop(remove_data=True)
{%- endif %}


@pytest.fixture
def start(own_redis, tmp_path{% if cookiecutter.broker == "rabbitmq" %}, broker_url{% endif %}):
    started = []

    def _start(script: str, **env: str) -> StartScript:
        process = StartScript(
            script,
            {
                "DJANGO_SETTINGS_MODULE": "config.settings.test",
                "REDIS_URL": own_redis.url,
{%- if cookiecutter.broker == "rabbitmq" %}
                "CELERY_BROKER_URL": broker_url,
{%- endif %}
                "DATABASE_URL": database_url(),
                "WORKER_HEARTBEAT_DIR": str(tmp_path),
                "BEAT_HEARTBEAT_FILE": str(tmp_path / "celerybeat-heartbeat"),
                "CELERY_WORKER_INCLUDE": "tests.taskqueue.hang_control",
                "CELERY_DEFAULT_CONCURRENCY": "1",
                "CELERY_CPU_CONCURRENCY": "1",
                "CELERY_IO_CONCURRENCY": "2",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                **env,
            },
        ).start()
        started.append(process)
        return process

    yield _start
    for process in started:
        process.kill_group()


def probe(node: str, heartbeat_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKER_HEARTBEAT_DIR": str(heartbeat_dir)}
    return subprocess.run(
        [str(PROJECT_DIR / "compose/healthcheck-worker"), node], env=env, capture_output=True, text=True, timeout=30
    )


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


def hang(node: str) -> float:
    """Hold that worker's loop: the broadcast goes through the app's broker, so the worker must use it too.

    A worker logs "ready." before its loop's first tick sends the SUBSCRIBE of its broadcast queue (kombu's Redis
    transport subscribes on poll start), and Redis keeps no published message for a subscriber still to come: a
    broadcast sent at "ready." can be lost. A reply to a ping, sent the same way, shows the worker is listening.
    """
    destination = [f"{node}@{socket.gethostname()}"]
    wait_until(
        lambda: celery_app.control.ping(destination=destination, timeout=1.0),
        timeout=60,
        what=f"{destination[0]} answering a ping",
    )
    sent_at = time.monotonic()
    celery_app.control.broadcast("hang_event_loop", arguments={"seconds": 600}, destination=destination)
    return sent_at


@pytest.mark.parametrize("script", list(NODES))
def test_each_workers_loop_keeps_its_heartbeat_fresh_and_a_stopped_worker_fails_its_probe(start, tmp_path, script):
    node = NODES[script]
    worker = start(script)
    worker.wait_for_output(" ready.", timeout=STARTUP_TIMEOUT)
    heartbeat = tmp_path / worker_heartbeat_file(f"{node}@{socket.gethostname()}").name
    first = wait_until(lambda: mtime(heartbeat), timeout=30, what=f"the heartbeat file {heartbeat}")
    wait_until(lambda: mtime(heartbeat) > first, timeout=30, what="the heartbeat file touched again")
    result = probe(node, tmp_path)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("healthy")
    worker.stop(timeout=60)
    assert not heartbeat.exists(), "a stopped worker left its heartbeat behind"
    result = probe(node, tmp_path)
    assert result.returncode == 1
    assert "no heartbeat file" in result.stdout


def test_another_workers_heartbeat_does_not_make_this_one_healthy(tmp_path):
    (tmp_path / "celery-worker-io@tests.heartbeat").touch()
    result = probe("io", tmp_path)
    assert result.returncode == 1
    assert "no heartbeat file" in result.stdout


def test_a_stale_heartbeat_fails_the_probe(tmp_path):
    heartbeat = tmp_path / f"celery-worker-io@{socket.gethostname()}.heartbeat"
    heartbeat.touch()
    set_at = time.time()
    os.utime(heartbeat, (set_at - 120, set_at - 120))
    result = probe("io", tmp_path)
    took = time.time() - set_at
    assert result.returncode == 1
    # The probe counts whole seconds: a second boundary passed while it started adds one (seen on a loaded machine).
    reported = re.search(r"last advanced (\d+) s ago \(limit 60 s\)", result.stdout)
    assert reported, result.stdout
    assert 120 <= int(reported[1]) <= 121 + int(took), (result.stdout, took)


@pytest.mark.parametrize(
    ("command", "heartbeat"),
    [
        (["compose/healthcheck-worker", "io"], f"celery-worker-io@{socket.gethostname()}.heartbeat"),
        (["compose/healthcheck-beat"], "celerybeat-heartbeat"),
    ],
)
def test_each_probe_costs_a_few_milliseconds_of_cpu(tmp_path, command, heartbeat):
    (tmp_path / heartbeat).touch()
    env = {**os.environ, "WORKER_HEARTBEAT_DIR": str(tmp_path), "BEAT_HEARTBEAT_FILE": str(tmp_path / heartbeat)}
    before = os.times()
    for _ in range(10):
        result = subprocess.run([PROJECT_DIR / command[0], *command[1:]], env=env, capture_output=True, timeout=30)
        assert result.returncode == 0, result.stdout
    after = os.times()
    cpu = (after.children_user - before.children_user + after.children_system - before.children_system) / 10
    print(f"{command[0]}: {cpu * 1000:.1f} ms CPU per probe")
    assert cpu < 0.1


@pytest.mark.parametrize("script", ["compose/start-worker", "compose/start-worker-io"])
def test_a_worker_whose_loop_is_stuck_exits_for_its_restart_policy(start, redis_url, script):
    node = NODES[script]
    # On the session's broker: the broadcast that holds its loop is sent through the app's.
{%- if cookiecutter.broker == "rabbitmq" %}
    session_broker = {"REDIS_URL": redis_url, "CELERY_BROKER_URL": celery_app.conf.broker_url}
{%- else %}
    session_broker = {"REDIS_URL": redis_url}
{%- endif %}
    worker = start(script, WORKER_STUCK_AFTER=str(STUCK_AFTER), **session_broker)
    worker.wait_for_output(" ready.", timeout=STARTUP_TIMEOUT)
    children = [int(pid) for pid in subprocess.run(
        ["pgrep", "-P", str(worker.pid)], capture_output=True, text=True
    ).stdout.split()]  # fmt: skip
    hung_at = hang(node)
    code = wait_exit(worker, STUCK_AFTER + EXIT_MARGIN)
    took = time.monotonic() - hung_at
    print(f"{script}: exited {took:.1f} s after its loop stopped (WORKER_STUCK_AFTER={STUCK_AFTER})")
    assert code == STUCK_EXIT_CODE, worker.output()[-3000:]
    assert "Worker loop has not advanced for" in worker.output()
    # The watchdog counts from the last heartbeat, up to one interval before the loop stopped.
    assert took >= STUCK_AFTER - HEARTBEAT_INTERVAL
    for child in children:  # prefork children do not outlive it
        wait_until(partial(gone, child), timeout=10, what=f"child {child} gone")


{% if cookiecutter.broker == "rabbitmq" -%}
def test_a_broker_outage_longer_than_the_bound_does_not_end_the_worker(start, own_rabbitmq, tmp_path):
    worker = start("compose/start-worker-io", WORKER_STUCK_AFTER=str(STUCK_AFTER), CELERY_BROKER_URL=own_rabbitmq.url)
    worker.wait_for_output(" ready.", timeout=STARTUP_TIMEOUT)
    heartbeat = tmp_path / worker_heartbeat_file(f"io@{socket.gethostname()}").name
    own_rabbitmq.stop(keep=True)
    worker.wait_for_output("Cannot connect to amqp", timeout=60)
    wait_until(lambda: time.time() - mtime(heartbeat) > STUCK_AFTER + 3, timeout=60, what="an outage past the bound")
    assert worker.process.poll() is None, worker.output()[-3000:]
    own_rabbitmq.start()
{%- else -%}
def test_a_broker_outage_longer_than_the_bound_does_not_end_the_worker(start, own_redis, tmp_path):
    worker = start("compose/start-worker-io", WORKER_STUCK_AFTER=str(STUCK_AFTER))
    worker.wait_for_output(" ready.", timeout=STARTUP_TIMEOUT)
    heartbeat = tmp_path / worker_heartbeat_file(f"io@{socket.gethostname()}").name
    own_redis.stop()
    worker.wait_for_output("Cannot connect to redis", timeout=60)
    wait_until(lambda: time.time() - mtime(heartbeat) > STUCK_AFTER + 3, timeout=60, what="an outage past the bound")
    assert worker.process.poll() is None, worker.output()[-3000:]
    own_redis.start()
{%- endif %}
    restarted = time.time()
    wait_until(lambda: mtime(heartbeat) >= restarted, timeout=60, what="the heartbeat after the broker came back")
    assert worker.process.poll() is None
    assert "has not advanced" not in worker.output()


@pytest.mark.parametrize(
    ("script", "task"), [("compose/start-worker", sleep_counted), ("compose/start-worker-io", fetch_counted)]
)
{% if cookiecutter.broker == "rabbitmq" -%}
def test_a_shutdown_that_holds_the_loop_past_the_bound_does_not_end_the_worker(
    start, own_redis, script, task, broker_url
):
{%- else -%}
def test_a_shutdown_that_holds_the_loop_past_the_bound_does_not_end_the_worker(start, own_redis, script, task):
{%- endif %}
    # The default worker's warm shutdown waits for its running task; the io worker's SIGTERM is a soft shutdown,
    # which waits its window (CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT) inside Celery's signal handler, in the loop.
    worker = start(
        script,
        WORKER_STUCK_AFTER=str(STUCK_AFTER),
        CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT=str(STUCK_AFTER * 3),
        CELERY_WORKER_INCLUDE="tests.taskqueue.hang_control,tests.taskqueue.shutdown_tasks",
    )
    worker.wait_for_output(" ready.", timeout=STARTUP_TIMEOUT)
    with celery_app.connection_for_write({% if cookiecutter.broker == "rabbitmq" %}broker_url{% else %}own_redis.url{% endif %}) as broker:
        task.apply_async(("shutdown", STUCK_AFTER * 2), connection=broker)
    client = redis.Redis.from_url(own_redis.url)
    wait_until(lambda: client.get("shutdown:shutdown:started"), timeout=30, what="the task to start")
    worker.signal(signal.SIGTERM)
    code = wait_exit(worker, STUCK_AFTER * 3 + EXIT_MARGIN)
    assert "has not advanced" not in worker.output(), worker.output()[-3000:]
    assert code == 0, worker.output()[-3000:]
    assert client.get("shutdown:shutdown:finished") == b"1"


def test_a_{% if cookiecutter.broker == "rabbitmq" %}redis{% else %}broker{% endif %}_outage_longer_than_the_bound_does_not_end_beat(start, own_redis, tmp_path):
    beat = start("compose/start-beat", BEAT_STUCK_AFTER=str(STUCK_AFTER))
    heartbeat = tmp_path / "celerybeat-heartbeat"
    wait_until(lambda: mtime(heartbeat), timeout=STARTUP_TIMEOUT, what=f"beat's heartbeat {heartbeat}")
    own_redis.stop()
    # Beat retries every 5 s while Redis is down: three failed ticks outlast the bound.
    wait_until(
        lambda: beat.output().count("Beat cannot reach Redis") >= 3,
        timeout=60,
        what=lambda: f"three failed ticks; beat wrote: {beat.output()[-2000:]}",
    )
    assert beat.process.poll() is None, beat.output()[-3000:]
    own_redis.start()
    restarted = time.time()
    wait_until(lambda: mtime(heartbeat) >= restarted, timeout=60, what="beat's heartbeat after Redis came back")
    assert beat.process.poll() is None
    assert "has not advanced" not in beat.output()


@pytest.fixture
def database_locked():
    """Hold an exclusive lock on what beat reads at every tick, as a database that stops answering would."""
    locked = []

    def lock() -> None:
        cursor = connection.cursor()
        if connection.vendor == "sqlite":
            cursor.execute("BEGIN EXCLUSIVE")
        else:
            cursor.execute("BEGIN")
            cursor.execute("LOCK TABLE django_celery_beat_periodictasks IN ACCESS EXCLUSIVE MODE")
        locked.append(cursor)

    yield lock
    for cursor in locked:
        cursor.execute("ROLLBACK")


def test_a_beat_whose_ticks_stop_exits_for_its_restart_policy(start, tmp_path, database_locked):
    beat = start("compose/start-beat", BEAT_STUCK_AFTER=str(STUCK_AFTER))
    heartbeat = tmp_path / "celerybeat-heartbeat"
    wait_until(lambda: mtime(heartbeat), timeout=STARTUP_TIMEOUT, what=f"beat's heartbeat {heartbeat}")
    database_locked()
    locked_at = time.monotonic()
    code = beat.wait(timeout=STUCK_AFTER + 15 + EXIT_MARGIN)
    took = time.monotonic() - locked_at
    print(f"beat: exited {took:.1f} s after its database stopped answering (BEAT_STUCK_AFTER={STUCK_AFTER})")
    assert code == STUCK_EXIT_CODE, beat.output()[-3000:]
    assert "Beat loop has not advanced for" in beat.output()
