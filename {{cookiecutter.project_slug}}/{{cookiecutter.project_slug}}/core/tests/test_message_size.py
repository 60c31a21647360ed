"""Every way of sending a task refuses a message over TASK_MAX_MESSAGE_BYTES before it reaches Redis (P4, P12)."""

import uuid

import pytest
from django.core.cache import cache

from {{ cookiecutter.project_slug }}.core.message_size import MessageTooLargeError
from {{ cookiecutter.project_slug }}.core.sending import send_task_by_name
from {{ cookiecutter.project_slug }}.core.tests.tasks import record_delivery
from {{ cookiecutter.project_slug }}.testing.waiting import wait_until

LIMIT = 2000


@pytest.fixture
def small_limit(settings):
    settings.TASK_MAX_MESSAGE_BYTES = LIMIT


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(lambda payload: record_delivery.delay("big", payload), id="delay"),
        pytest.param(lambda payload: record_delivery.s("big", payload).apply_async(), id="signature"),
        pytest.param(
            lambda payload: send_task_by_name(record_delivery.name, queue="default", args=["big", payload]),
            id="send_task_by_name",
        ),
    ],
)
def test_a_message_over_the_limit_is_refused_with_its_size(small_limit, send):
    with pytest.raises(MessageTooLargeError, match=r"core_tests.record_delivery\[.+\]: the message would be 2,"):
        send({"blob": "x" * LIMIT})


@pytest.mark.django_db(transaction=True)
def test_a_message_under_the_limit_is_delivered(small_limit, celery_worker):
    marker = uuid.uuid4().hex
    record_delivery.delay(marker, {"blob": "x" * (LIMIT // 2)})
    delivered = wait_until(lambda: cache.get(f"delivery:{marker}"), timeout=30, what="the delivery")
    assert delivered["payload"] == {"blob": "x" * (LIMIT // 2)}
