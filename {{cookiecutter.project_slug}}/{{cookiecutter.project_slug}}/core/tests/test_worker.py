"""Tasks go through the real broker to a real worker: serialisation and routing (P33).

Results: reports/tests/test_fan_in.py (with a result backend) or test_fan_in_without_results.py (without).
"""

import uuid

import pytest
from django.core.cache import cache
from kombu.exceptions import EncodeError

from {{ cookiecutter.project_slug }}.core.tests.tasks import fetch_test_page, record_delivery
from {{ cookiecutter.project_slug }}.testing.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for_cache(key: str):
    return wait_until(lambda: cache.get(key), timeout=15, what=f"a worker to write {key!r}")


def test_task_runs_on_a_real_worker_from_the_default_queue(celery_worker):
    marker = uuid.uuid4().hex
    record_delivery.delay(marker, {"user_id": 42, "tags": ["a", "b"]})
    delivered = wait_for_cache(f"delivery:{marker}")
    assert delivered["queue"] == "default"
    assert delivered["payload"] == {"user_id": 42, "tags": ["a", "b"]}


def test_io_task_travels_through_the_io_queue(celery_worker):
    marker = uuid.uuid4().hex
    fetch_test_page.delay(marker)
    assert wait_for_cache(f"delivery:{marker}")["queue"] == "io"


def test_arguments_that_are_not_json_are_refused_at_send_time():
    with pytest.raises(EncodeError):
        record_delivery.delay("marker", {"when": object()})
