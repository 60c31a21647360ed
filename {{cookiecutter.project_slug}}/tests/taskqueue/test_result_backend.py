"""The database result backend keeps a chord's callback when header tasks retry or run twice."""

import uuid
from functools import partial

import pytest
from celery import chord, shared_task, states
from celery.signals import before_task_publish
from django.core.cache import cache
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import ChordCounter, TaskResult

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue.patches.django_celery_beat import HeartbeatDatabaseScheduler
from {{ cookiecutter.project_slug }}.taskqueue.patches.django_celery_results import DatabaseBackend
from tests.support.waiting import wait_until
from tests.taskqueue.tasks import add

pytestmark = pytest.mark.django_db(transaction=True)


# Tasks only these tests use: here, since this module exists only with the django-db result backend.
@shared_task(name="tests.add_when_released", ignore_result=False)
def add_when_released(left: int, right: int, gate: str) -> int:
    """A task that keeps running until the test sets the cache key ``gate`` (30 s at most)."""
    wait_until(lambda: cache.get(gate), timeout=30, what=f"the test to set {gate}")
    return left + right


@shared_task(name="tests.collect")
def collect(results: list, marker: str) -> None:
    """A chord callback that records what it was given, then how many times it ran.

    In that order: a test that sees the count may read the results at once.
    """
    cache.set(f"collect:{marker}:results", results, timeout=60)
    cache.add(f"collect:{marker}:runs", 0, timeout=60)
    cache.incr(f"collect:{marker}:runs")


@shared_task(name="tests.retry_once", bind=True, ignore_result=False)
def retry_once(self, value: int) -> int:
    """Fails its first attempt and asks to be retried at once; returns ``value`` from the second."""
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    return value


def test_beat_schedules_the_daily_cleanup_of_expired_results(settings, tmp_path):
    """Result rows do not expire by themselves: beat must run celery.backend_cleanup."""
    settings.BEAT_HEARTBEAT_FILE = str(tmp_path / "celerybeat-heartbeat")
    scheduler = HeartbeatDatabaseScheduler(app=celery_app)
    try:
        cleanup = PeriodicTask.objects.get(task="celery.backend_cleanup")
    finally:
        scheduler.close()
    assert cleanup.enabled
    assert cleanup.crontab is not None


def stored_state(task_id: str) -> tuple[str, str]:
    row = TaskResult.objects.get(task_id=task_id)
    return row.status, row.result


def test_the_project_stores_results_with_it():
    assert isinstance(celery_app.backend, DatabaseBackend)


def test_a_late_retry_does_not_overwrite_the_result_of_the_attempt_it_sent():
    # Task.retry() sends the next attempt before it stores RETRY; the next attempt may finish first.
    task_id = str(uuid.uuid4())
    celery_app.backend.mark_as_done(task_id, 42)
    celery_app.backend.mark_as_retry(task_id, TimeoutError("the first attempt timed out"))
    assert stored_state(task_id) == (states.SUCCESS, "42")


def test_a_retry_is_stored_until_an_attempt_finishes():
    task_id = str(uuid.uuid4())
    celery_app.backend.mark_as_retry(task_id, TimeoutError("the first attempt timed out"))
    assert stored_state(task_id)[0] == states.RETRY
    celery_app.backend.mark_as_done(task_id, 42)
    assert stored_state(task_id) == (states.SUCCESS, "42")


@pytest.mark.usefixtures("celery_worker")
def test_chords_whose_header_tasks_retry_at_once_all_send_their_callback():
    # With the stock backend about 1 chord in 5 here never sent its callback: a late RETRY hid a SUCCESS.
    for number in range(1, 21):
        marker = uuid.uuid4().hex
        chord([retry_once.s(value) for value in range(4)])(collect.s(marker))
        runs = f"collect:{marker}:runs"
        wait_until(partial(cache.get, runs), timeout=10, what=f"chord {number} to send its callback")
        assert cache.get(f"collect:{marker}:results") == [0, 1, 2, 3]


class PublishedMessages:
    """Every task message this process publishes, kept so a test can deliver one again."""

    def __init__(self):
        self.messages = {}

    def __enter__(self):
        before_task_publish.connect(self._keep, weak=False)
        return self

    def __exit__(self, *exc_info):
        before_task_publish.disconnect(self._keep)

    def _keep(self, sender, body, exchange, routing_key, headers, properties, **kwargs):
        self.messages[headers["id"]] = (body, exchange, routing_key, dict(headers), dict(properties))

    def redeliver(self, task_id: str) -> None:
        """Publish the message again as it was: what Redis does when a worker dies before acking it."""
        body, exchange, routing_key, headers, properties = self.messages[task_id]
        with celery_app.producer_or_acquire() as producer:
            producer.publish(
                body, exchange=exchange, routing_key=routing_key, headers=headers, serializer="json", **properties
            )


@pytest.mark.usefixtures("celery_worker")
def test_a_header_task_that_runs_twice_does_not_lose_the_callback(task_events):
    marker = uuid.uuid4().hex
    gate = f"gate:{marker}"
    with PublishedMessages() as published:
        body = chord([add.s(1, 1), add_when_released.s(2, 2, gate)])(collect.s(marker))
    header = body.parent
    first = header.results[0].id

    task_events.wait_for("tests.add", "succeeded")
    published.redeliver(first)
    # Both runs of the first header task are counted, while the second header task still runs.
    wait_until(lambda: len([e for e in task_events.of("tests.add", "succeeded") if e.task_id == first]) == 2)
    assert not cache.get(f"collect:{marker}:runs"), "the callback ran before the header finished"

    cache.set(gate, True, timeout=60)
    wait_until(lambda: cache.get(f"collect:{marker}:runs"), what="the chord callback to run")
    assert cache.get(f"collect:{marker}:results") == [2, 4]
    assert not ChordCounter.objects.filter(group_id=header.id).exists()
    assert len(task_events.of("tests.collect", "published")) == 1
    assert cache.get(f"collect:{marker}:runs") == 1
