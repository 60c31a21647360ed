"""Tasks go through the real broker to a real worker: serialisation, routing, results (P33)."""

import time
import uuid

import pytest
from django.core.cache import cache
from kombu.exceptions import EncodeError

from {{ cookiecutter.project_slug }}.core.tests.tasks import add, fetch_test_page, record_delivery

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for_cache(key: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cache.get(key)
        if value is not None:
            return value
        time.sleep(0.05)
    raise AssertionError(f"no worker wrote {key!r} within {timeout} s")


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


{%- if cookiecutter.result_backend != "none" %}


def test_task_that_opts_in_returns_its_result(celery_worker):
    assert add.delay(2, 3).get(timeout=15) == 5
{%- else %}


def test_results_are_disabled_without_a_result_backend(celery_worker):
    from celery.backends.base import DisabledBackend

    assert isinstance(add.app.backend, DisabledBackend)
{%- endif %}
