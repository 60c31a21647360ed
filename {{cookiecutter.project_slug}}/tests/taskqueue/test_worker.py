"""Tasks go through the real broker to real workers, one per queue: serialisation, queues, the on-commit sends.

Results, where there is a result backend: its own tests, and the report example's fan-in.
"""

import uuid

import pytest
from django.core.cache import cache
from django.db import transaction
from kombu.exceptions import EncodeError

from tests.support.waiting import wait_until
from tests.taskqueue.tasks import build_delivery, fetch_delivery, record_delivery

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for_cache(key: str):
    return wait_until(lambda: cache.get(key), timeout=15, what=f"a worker to write {key!r}")


@pytest.mark.parametrize(
    ("send", "queue"),
    [
        (lambda marker: record_delivery.delay(marker, {"user_id": 42}), "default"),
        (lambda marker: fetch_delivery.delay(marker), "io"),
        (lambda marker: build_delivery.delay(marker), "cpu"),
    ],
    ids=["default", "io", "cpu"],
)
def test_each_task_runs_on_the_worker_of_the_queue_its_name_routes_it_to(celery_workers, send, queue):
    marker = uuid.uuid4().hex
    send(marker)
    # Each in-process worker consumes its queue only, so the queue it ran from is the one it was routed to.
    assert wait_for_cache(f"delivery:{marker}")["queue"] == queue


def test_arguments_travel_as_json(celery_workers):
    marker = uuid.uuid4().hex
    record_delivery.delay(marker, {"user_id": 42, "tags": ["a", "b"]})
    assert wait_for_cache(f"delivery:{marker}")["payload"] == {"user_id": 42, "tags": ["a", "b"]}


def test_arguments_that_are_not_json_are_refused_at_send_time():
    with pytest.raises(EncodeError):
        record_delivery.delay("marker", {"when": object()})


def test_delay_on_commit_sends_once_the_transaction_commits(celery_workers, task_events):
    marker = uuid.uuid4().hex
    with transaction.atomic():
        record_delivery.delay_on_commit(marker, {"committed": True})
        assert task_events.of("tests.record_delivery", "published") == [], "sent before the commit"
    assert wait_for_cache(f"delivery:{marker}")["payload"] == {"committed": True}


def test_apply_async_on_commit_sends_nothing_when_the_transaction_rolls_back(celery_workers, task_events):
    marker = uuid.uuid4().hex
    with transaction.atomic():
        record_delivery.apply_async_on_commit((marker, {}), countdown=0)
        transaction.set_rollback(True)  # the request failed
    with transaction.atomic():
        record_delivery.apply_async_on_commit((f"{marker}-after", {}))
    wait_for_cache(f"delivery:{marker}-after")
    assert cache.get(f"delivery:{marker}") is None
    assert len(task_events.of("tests.record_delivery", "published")) == 1
