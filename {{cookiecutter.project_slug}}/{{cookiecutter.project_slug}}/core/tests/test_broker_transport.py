"""The project's broker transport (core/broker_transport.py).

A worker takes a message and records it as unacked in one step, so a SIGKILL cannot lose it
(kombu's own transport loses it between the two: reliability/test_streams.py's chaos scenario
caught that). A malformed message is logged and dropped; the worker keeps running tasks (with
kombu's own transport it stops: "Unrecoverable error"). A real prefork worker fed every kind of
bad message: reliability/test_bad_messages.py.
"""

import json
import logging
import uuid

import pytest
from django.core.cache import cache
from django_redis import get_redis_connection
from kombu import Consumer, Queue

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


def test_a_worker_consuming_one_queue_takes_its_messages_atomically():
    with celery_app.connection_for_read() as connection:
        channel = connection.channel()
        consumer = Consumer(channel, queues=[celery_app.amqp.queues["default"]], no_ack=False)
        consumer.consume()
        assert channel.claims_atomically()
        # A consumer that does not ack (a `celery inspect` reply queue) has no unacked record to write.
        replies = Consumer(channel, queues=[celery_app.amqp.queues["io"]], no_ack=True)
        replies.consume()
        assert not channel.claims_atomically()
        channel.close()


def test_taking_a_message_records_it_as_unacked_in_the_same_step():
    # A queue of its own: the session's in-process worker consumes the project's queues.
    queue = Queue("claim-test", routing_key="claim-test")
    with celery_app.connection_for_write() as connection:
        connection.Producer().publish({"claimed": True}, routing_key=queue.routing_key, declare=[queue])
        raw, tag = connection.default_channel.claim(queue.name)
    # A worker SIGKILLed right here loses nothing: the message is where Redis redelivers it from.
    assert tag == json.loads(raw)["properties"]["delivery_tag"]
    redis = get_redis_connection("default")
    assert redis.llen(queue.name) == 0
    assert redis.hexists("unacked", tag)
    assert redis.zscore("unacked_index", tag) is not None


def test_an_ack_through_a_closed_connection_fails_as_a_lost_connection_and_keeps_the_message(caplog):
    queue = Queue("closed-ack-test", routing_key="closed-ack-test")
    with celery_app.connection_for_write() as connection:
        connection.Producer().publish({"acked": False}, routing_key=queue.routing_key, declare=[queue])
        channel = connection.channel()
        message = queue(channel).get(no_ack=False)
        # The state a worker's channel was in when Redis restarted (from a CI traceback): its pool
        # closed, and its connection closed by the reconnect (kombu's Connection.collect()).
        kombu_connection, channel.connection.client = channel.connection.client, None
        channel._disconnect_pools()
        try:
            message.ack_log_error(logging.getLogger(__name__), connection.connection_errors)  # what Celery does
        finally:
            channel.connection.client = kombu_connection
        assert "Couldn't ack" in caplog.text
        # Still recorded as delivered and not acked: Redis delivers it again.
        assert get_redis_connection("default").hexists("unacked", message.delivery_tag)
        channel.close()
