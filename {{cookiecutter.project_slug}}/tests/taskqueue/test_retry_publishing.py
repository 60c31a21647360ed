"""A retry that cannot be published, or a message rejected without requeue, is kept or becomes a dead letter.

Celery acks the original message when a retry's publish fails (taskqueue/retries.py). Here, on the session's
{% if cookiecutter.broker == "rabbitmq" -%}
real workers and RabbitMQ: a retry the project's sender refuses (a countdown past TASK_MAX_COUNTDOWN) becomes a dead
letter with the reason; and how each cause is told apart. A RabbitMQ that stalls during a retry, on real worker
processes, is the delivery contracts' rabbitmq-stall-retry fault (tests/contracts/).
{%- else -%}
real workers and Redis: a retry the project's sender refuses (a countdown past TASK_MAX_COUNTDOWN) becomes a dead
letter with the reason; and how each cause is told apart. A Redis that stalls during a retry, on real worker
processes, is in tests/reliability/test_redis_stall.py.
{%- endif %}
"""

import pytest
{%- if cookiecutter.broker == "redis" %}
import redis
{%- endif %}
from celery.exceptions import Reject

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue import metrics, retries
from {{ cookiecutter.project_slug }}.taskqueue.message_limits import CountdownTooLongError
from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask
from tests.support.waiting import settles_at, wait_until
from tests.taskqueue.tasks import record_delivery, reject_without_requeue, retry_too_far_ahead

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_retry_past_task_max_countdown_becomes_a_dead_letter_with_its_reason(
    celery_workers, session_broker, admin_client
):
    result = retry_too_far_ahead.delay("too-late")
    failed = wait_until(
        lambda: FailedTask.objects.filter(task_id=result.id).first(), timeout=30, what="the retry's dead letter"
    )
    assert failed.exception == "RetryNotPublishedError"
    assert "its retry could not be published: CountdownTooLongError" in failed.message
    assert "TASK_MAX_COUNTDOWN" in failed.message
    assert (failed.args, failed.queue) == (["too-late"], "default")
    # The original message was acked: nothing of it is left in the broker to be delivered again.
    assert settles_at(session_broker.unacked, 0) == 0
    assert session_broker.ready("default") == 0

    counted = wait_until(
        lambda: metrics.task_counts_and_runtimes()[0][metrics.RETRY_UNPUBLISHED],
        timeout=10,
        what="the unpublished retry counted",
    )
    assert counted == {f"{retry_too_far_ahead.name}|{retries.DEAD_LETTER}": 1}
    exposition = admin_client.get("/metrics").content.decode()
    labels = f'outcome="dead_letter",task="{retry_too_far_ahead.name}"'
    assert "celery_task_retry_unpublished_total" + "{" + labels + "} 1.0" in exposition
    page = admin_client.get("/admin/queues/").content.decode()
    assert 'data-dead-letter="1"' in page
    assert 'data-kept="0"' in page


@pytest.mark.parametrize(
    ("cause", "requeue"),
    [
{%- if cookiecutter.broker == "rabbitmq" %}
        (TimeoutError("timed out"), True),  # a stall
        (ConnectionRefusedError(111, "Connection refused"), True),  # a restart
{%- else %}
        (redis.exceptions.TimeoutError("Timeout reading from socket"), True),  # a stall
        (redis.exceptions.ConnectionError("Connection refused"), True),  # a restart
{%- endif %}
        (CountdownTooLongError("would wait 1860 s"), False),
        (TypeError("Object of type set is not JSON serializable"), False),
    ],
)
def test_a_broker_that_did_not_answer_keeps_the_message_and_a_refused_retry_is_a_dead_letter(cause, requeue):
    task = celery_app.tasks[record_delivery.name]
    task.push_request(id="retry-of-one", args=["marker", {}], kwargs={}, delivery_info={"routing_key": "default"})
    try:
        reject = retries.unpublished_retry(task, cause)
    finally:
        task.pop_request()
    assert isinstance(reject, Reject)
    assert reject.requeue is requeue
    dead_letter = FailedTask.objects.filter(task_id="retry-of-one").first()
    if requeue:
        assert dead_letter is None
    else:
        assert dead_letter is not None
        assert dead_letter.exception == "RetryNotPublishedError"
        assert dead_letter.args == ["marker", {}]


def test_a_message_rejected_without_requeue_becomes_a_dead_letter_with_its_queue(celery_workers, session_broker):
    result = reject_without_requeue.delay("order 7")
    failed = wait_until(
        lambda: FailedTask.objects.filter(task_id=result.id).first(),
        timeout=30,
        what="the rejected message's dead letter",
    )
    assert (failed.exception, failed.message) == (
        "MessageRejectedError",
        "rejected without requeue: order 7 cannot be processed",
    )
    assert (failed.args, failed.queue) == (["order 7"], "default")
    assert settles_at(session_broker.unacked, 0) == 0
