{% if cookiecutter.broker == "rabbitmq" -%}
"""Every way of sending a task refuses a message over the project's limits before it reaches RabbitMQ.

Size: TASK_MAX_MESSAGE_BYTES. Delay: TASK_MAX_COUNTDOWN (a longer wait is a periodic task's job).
"""
{%- else -%}
"""Every way of sending a task refuses a message over the project's limits before it reaches Redis.

Size: TASK_MAX_MESSAGE_BYTES. Delay: TASK_MAX_COUNTDOWN, below the visibility timeout;
tests/reliability/test_eta_trap.py shows a longer one running twice.
"""
{%- endif %}

import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from {{ cookiecutter.project_slug }}.taskqueue.message_limits import CountdownTooLongError, MessageTooLargeError
from {{ cookiecutter.project_slug }}.taskqueue.sending import send_task_by_name
from tests.support.waiting import wait_until
from tests.taskqueue.tasks import record_delivery

LIMIT = 2000

SENDS = [
    pytest.param(lambda *args, **options: record_delivery.apply_async(args, **options), id="apply_async"),
    pytest.param(lambda *args, **options: record_delivery.s(*args).apply_async(**options), id="signature"),
    pytest.param(
        lambda *args, **options: send_task_by_name(record_delivery.name, args=args, **options),
        id="send_task_by_name",
    ),
]


@pytest.fixture
def small_limit(settings):
    settings.TASK_MAX_MESSAGE_BYTES = LIMIT


@pytest.mark.parametrize("send", SENDS)
def test_a_message_over_the_size_limit_is_refused_with_its_size(small_limit, send):
    with pytest.raises(MessageTooLargeError, match=r"tests.record_delivery\[.+\]: the message would be 2,"):
        send("big", {"blob": "x" * LIMIT})


def test_delay_is_checked_too(small_limit):
    with pytest.raises(MessageTooLargeError):
        record_delivery.delay("big", {"blob": "x" * LIMIT})


@pytest.mark.django_db(transaction=True)
def test_a_message_under_the_size_limit_is_delivered(small_limit, celery_worker):
    marker = uuid.uuid4().hex
    record_delivery.delay(marker, {"blob": "x" * (LIMIT // 2)})
    delivered = wait_until(lambda: cache.get(f"delivery:{marker}"), timeout=30, what="the delivery")
    assert delivered["payload"] == {"blob": "x" * (LIMIT // 2)}


@pytest.mark.parametrize("send", SENDS)
def test_a_countdown_longer_than_the_maximum_is_refused(settings, send):
    with pytest.raises(CountdownTooLongError, match=r"tests.record_delivery\[.+\] would wait 1801 s"):
        send("late", {}, countdown=settings.TASK_MAX_COUNTDOWN + 1)


@pytest.mark.parametrize("send", SENDS)
def test_an_eta_further_than_the_maximum_is_refused(settings, send):
    with pytest.raises(CountdownTooLongError, match="longer than TASK_MAX_COUNTDOWN"):
        send("late", {}, eta=timezone.now() + timedelta(seconds=settings.TASK_MAX_COUNTDOWN + 60))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_a_countdown_within_the_maximum_is_delivered_when_due():
    marker = uuid.uuid4().hex
    sent = timezone.now()
    record_delivery.apply_async((marker, {}), countdown=1)
    wait_until(lambda: cache.get(f"delivery:{marker}"), timeout=30, what="the delivery")
    assert timezone.now() - sent >= timedelta(seconds=1)
