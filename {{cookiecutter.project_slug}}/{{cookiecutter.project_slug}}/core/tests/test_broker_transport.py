"""A malformed message on a queue is logged and dropped; the worker keeps running tasks (core/broker_transport.py).

With kombu's own Redis transport the worker stops ("Unrecoverable error") on such a message.
A real prefork worker fed every kind of bad message: reliability/test_bad_messages.py.
"""

import logging
import uuid

import pytest
from django.core.cache import cache
from django_redis import get_redis_connection

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.core.broker_transport import Transport
from {{ cookiecutter.project_slug }}.core.tests.tasks import record_delivery
from {{ cookiecutter.project_slug }}.testing.waiting import wait_until


def test_the_broker_url_keeps_its_redis_scheme_and_uses_the_project_transport():
    with celery_app.connection_for_read() as connection:
        assert isinstance(connection.transport, Transport)
        assert connection.as_uri().startswith("redis://")


@pytest.mark.django_db(transaction=True)
def test_a_message_that_is_not_json_is_logged_and_dropped_and_the_next_task_runs(celery_worker, caplog):
    caplog.set_level(logging.ERROR, logger="{{ cookiecutter.project_slug }}.core.broker_transport")
    get_redis_connection("default").lpush("default", b"{this is not a message")
    marker = uuid.uuid4().hex
    record_delivery.delay(marker, {})
    assert wait_until(lambda: cache.get(f"delivery:{marker}"), timeout=30, what="the task after the bad message")
    assert "Dropped a malformed message from the broker" in caplog.text
    assert "{this is not a message" in caplog.text
