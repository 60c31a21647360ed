"""/metrics with real workers and {% if cookiecutter.broker == "rabbitmq" %}RabbitMQ{% else %}Redis{% endif %}: the numbers move as tasks are queued, run, fail and retry."""

import threading
import time

import pytest
import redis
from celery import shared_task
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.project_slug }}.taskqueue import metrics
from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask
from tests.support.consumers import paused
from tests.support.waiting import wait_until
from tests.taskqueue.tasks import build_delivery, record_delivery

pytestmark = pytest.mark.django_db(transaction=True)


retry_ran = threading.Event()


@shared_task(name="tests.metrics_retry_once", bind=True, max_retries=1)
def retry_once(self) -> None:
    if self.request.retries == 0:
        retry = self.retry(countdown=0, throw=False)  # sent now, raised below
        # The run that sent the retry ends after the retry's run has: on a thread pool (the io worker's) two runs
        # of one task id overlap, and each must be counted with its own outcome and runtime.
        retry_ran.wait(timeout=10)
        raise retry
    retry_ran.set()


@shared_task(name="tests.metrics_always_fail")
def always_fail() -> None:
    raise ValueError("broken on purpose")


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def succeeded(samples: dict, task: str, count: int) -> dict | None:
    return samples if value(samples, "celery_task_succeeded_total", task=task) == count else None


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0)


{% if cookiecutter.broker == "rabbitmq" -%}
def test_queue_length_follows_the_queue(client, celery_workers):
    with paused(celery_workers["cpu"], "cpu"):  # nothing consumes the cpu queue for a while
        for marker in ("one", "two", "three"):
            build_delivery.delay(marker)
        queued = wait_until(
            lambda: (s := scrape(client)) and value(s, "celery_queue_length", queue="cpu") == 3 and s,
            timeout=10,
            what="RabbitMQ to count the three messages",
        )
        # RabbitMQ keeps no publish time a reader can see: the age is not reported, rather than reported wrong.
        assert ("celery_queue_oldest_message_age_seconds", (("queue", "cpu"),)) not in queued
{%- else -%}
def test_queue_length_and_oldest_age_follow_the_queue(client, celery_workers):
    with paused(celery_workers["cpu"], "cpu"):  # nothing consumes the cpu queue for a while
        for marker in ("one", "two", "three"):
            build_delivery.delay(marker)
        queued = scrape(client)
        assert value(queued, "celery_queue_length", queue="cpu") == 3
        first_age = value(queued, "celery_queue_oldest_message_age_seconds", queue="cpu")
        assert 0 <= first_age < 5
        time.sleep(1.1)
        assert value(scrape(client), "celery_queue_oldest_message_age_seconds", queue="cpu") >= first_age + 1
{%- endif %}
    # One scrape reads the queues before the counters: the third task can be taken and counted in between, so
    # the empty queue is waited for too.
    ran = wait_until(
        lambda: (
            (s := succeeded(scrape(client), "tests.build_delivery", 3))
            and value(s, "celery_queue_length", queue="cpu") == 0
            and s
        ),
        what="the three tasks to run",
    )
    assert ("celery_queue_oldest_message_age_seconds", (("queue", "cpu"),)) not in ran  # empty: no age
    assert value(ran, "celery_task_received_total", task="tests.build_delivery") == 3
    assert value(ran, "celery_task_runtime_seconds_count", task="tests.build_delivery") == 3
    assert value(ran, "celery_task_runtime_seconds_bucket", task="tests.build_delivery", le="+Inf") == 3


def test_outcomes_retries_and_dead_letters_are_counted(client, celery_workers):
    retry_ran.clear()
    record_delivery.delay("ok", {})
    retry_once.delay()
    always_fail.delay()
    expected = {
        ("celery_task_succeeded_total", "tests.metrics_retry_once"): 1,
        # Counted when the first run ends, after the retry's run has succeeded (see retry_once).
        ("celery_task_retried_total", "tests.metrics_retry_once"): 1,
        ("celery_task_runtime_seconds_count", "tests.metrics_retry_once"): 2,
        ("celery_task_dead_lettered_total", "tests.metrics_always_fail"): 1,
        # Celery runs on_failure (the dead letter) before the run ends and counts as failed.
        ("celery_task_failed_total", "tests.metrics_always_fail"): 1,
        ("celery_task_succeeded_total", "tests.record_delivery"): 1,
    }
    seen: dict = {}

    def counted():
        samples = scrape(client)
        seen.update({key: value(samples, key[0], task=key[1]) for key in expected})
        return seen == expected and samples

    samples = wait_until(counted, what=lambda: f"the tasks to succeed, retry and fail: {expected}; saw {seen}")
    # Each run's outcome comes with its runtime: two runs of the retried task, one of each other.
    assert value(samples, "celery_task_runtime_seconds_count", task="tests.metrics_always_fail") == 1
    # The retry is a new message.
    assert value(samples, "celery_task_received_total", task="tests.metrics_retry_once") == 2
    assert value(samples, "celery_task_failed_total", task="tests.record_delivery") == 0
    assert value(samples, "celery_dead_letters_waiting") == 1
    FailedTask.objects.update(replayed_at="2026-01-01T00:00Z")
    assert value(scrape(client), "celery_dead_letters_waiting") == 0


END_MARKER = "tests:metrics:end-of-commands"


def transactions(commands: list[tuple[str, list[str]]]) -> list[list[list[str]]]:
    """The MULTI ... EXEC blocks in one client's commands, each as its commands' words."""
    blocks: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for command, words in commands:
        if command == "MULTI":
            current = []
        elif command == "EXEC" and current is not None:
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(words)
    return blocks


def test_a_runs_outcome_and_runtime_are_written_and_read_in_one_transaction(client, celery_workers, redis_url):
    """A scrape sees a run's outcome and its runtime together or not at all (see taskqueue/metrics.py).

    Redis's MONITOR shows every command each client sends, MULTI and EXEC included.
    """
    watcher = redis.Redis.from_url(redis_url, socket_timeout=5)
    per_client: dict[str, list[tuple[str, list[str]]]] = {}
    with watcher.monitor() as monitor:
        # MONITOR answers OK before it streams: commands sent from here on are seen.
        record_delivery.delay("one-transaction", {})
        wait_until(lambda: succeeded(scrape(client), "tests.record_delivery", 1), what="the run to be counted")
        scrape(client)  # a read after the write
        watcher.get(END_MARKER)  # the last command of interest
        deadline = time.monotonic() + 10
        seen: list[str] = []
        while not seen or seen[-1] != f"GET {END_MARKER}":
            assert time.monotonic() < deadline, f"MONITOR did not show the end marker in 10 s; saw {seen[-40:]}"
            try:
                entry = monitor.next_command()
            except redis.TimeoutError:
                raise AssertionError(f"MONITOR showed no command for 5 s; saw {seen[-40:]}") from None
            words = entry["command"].split(" ")
            words[0] = words[0].upper()
            seen.append(" ".join(words))
            per_client.setdefault(f"{entry['client_address']}:{entry['client_port']}", []).append((words[0], words))
    blocks = [block for commands in per_client.values() for block in transactions(commands)]
    writes = [
        block for block in blocks if ["HINCRBY", "metrics:task:succeeded", "tests.record_delivery", "1"] in block
    ]
    assert writes, f"no transaction wrote the success; saw {seen[-40:]}"
    (write,) = writes
    assert ["HINCRBY", "metrics:task:runtime", "tests.record_delivery|count", "1"] in write, write
    reads = [block for block in blocks if ["HGETALL", "metrics:task:runtime"] in block]
    assert reads, f"no transaction read the runtimes; saw {seen[-40:]}"
    for read in reads:
        assert ["HGETALL", "metrics:task:succeeded"] in read, read


def test_workers_online_per_queue(client, celery_workers):
    # Each worker refreshes its key every WORKER_PRESENCE_INTERVAL s (this test's Redis was just emptied).
    samples = wait_until(
        lambda: (s := scrape(client)) and all(value(s, "celery_queue_workers", queue=q) for q in celery_workers) and s,
        timeout=15,
        interval=0.5,
        what="each queue's worker to report",
    )
    assert set(celery_workers) == {"default", "io", "cpu"}
    assert value(samples, "celery_queue_workers", queue="default") == 1


def test_the_token_guards_the_endpoint(client, settings):
    settings.METRICS_TOKEN = "s3cret"  # noqa: S105  # pragma: allowlist secret
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert "celery_queue_length" in client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").content.decode()


def test_seconds_since_beats_tick(client, settings, tmp_path):
    from config.celery_app import app as celery_app
    from {{ cookiecutter.project_slug }}.taskqueue.patches.django_celery_beat import HeartbeatDatabaseScheduler

    settings.BEAT_HEARTBEAT_FILE = str(tmp_path / "celerybeat-heartbeat")
    assert ("celery_beat_seconds_since_tick", ()) not in scrape(client)  # no beat ever ticked on this Redis
    scheduler = HeartbeatDatabaseScheduler(app=celery_app)
    try:
        scheduler.tick()
        first = value(scrape(client), "celery_beat_seconds_since_tick")
        assert 0 <= first < 5
        time.sleep(1.1)
        assert value(scrape(client), "celery_beat_seconds_since_tick") >= first + 1  # stale without a tick
    finally:
        scheduler.close()


def test_a_presence_refresh_under_way_when_the_worker_stops_does_not_bring_its_key_back(redis_url, monkeypatch):
    client = redis.Redis.from_url(redis_url)
    in_refresh, finish_refresh = threading.Event(), threading.Event()

    class HeldPipeline:
        """The refresh's pipeline, held inside execute() until the test lets it go."""

        def __init__(self, pipe):
            self.pipe = pipe

        def set(self, *args, **kwargs):
            return self.pipe.set(*args, **kwargs)

        def execute(self):
            in_refresh.set()
            assert finish_refresh.wait(10), "the test never let the refresh finish"
            return self.pipe.execute()

    class Client:
        def pipeline(self, **kwargs):
            return HeldPipeline(client.pipeline(**kwargs))

        def delete(self, *keys):
            return client.delete(*keys)

    monkeypatch.setattr(metrics, "redis", Client)
    presence = metrics.WorkerPresence(parent=None)
    presence.keys = [metrics.WORKER_KEY.format(queue="default", hostname="stopping@tests")]
    refresh = threading.Thread(target=presence.refresh)
    refresh.start()
    assert in_refresh.wait(10), "the refresh never reached Redis"
    stop = threading.Thread(target=presence.stop, args=(None,))
    stop.start()
    stop.join(1.0)  # unprotected, stop would have deleted the key by now, before the refresh writes it again
    assert stop.is_alive(), "stop did not wait for the refresh under way"
    finish_refresh.set()
    refresh.join(10)
    stop.join(10)
    assert not stop.is_alive()
    assert client.exists(*presence.keys) == 0
