"""The checks of a RabbitMQ broker: the delivery limit, the consumer timeout, the queues' declarations."""

from kombu import Exchange, Queue

from config import broker_rabbitmq
from {{ cookiecutter.project_slug }}.taskqueue import checks
from tests.taskqueue.tasks import add, fetch_delivery


def _ids(messages):
    return [message.id for message in messages]


def test_the_project_passes_the_rabbitmq_checks():
    assert checks.check_delivery_limit() == []
    assert checks.check_consumer_timeout() == []
    assert checks.check_quorum_queues() == []


def test_a_delivery_limit_at_or_below_a_tasks_max_deliveries_is_an_error(settings, monkeypatch):
    monkeypatch.setattr(add, "max_deliveries", 10)
    settings.TASK_DELIVERY_LIMIT = 10
    messages = checks.check_delivery_limit()
    assert _ids(messages) == ["celery.E020"]
    assert "task tests.add allows 10 deliveries" in messages[0].msg


def test_a_hard_limit_past_the_consumer_timeout_is_an_error(celery_conf, settings):
    settings.RABBITMQ_CONSUMER_TIMEOUT = 1800
    celery_conf(task_time_limit=1800)
    messages = checks.check_consumer_timeout()
    assert _ids(messages) == ["celery.E021"]
    assert "CELERY_TASK_TIME_LIMIT (1800 s) is not below RabbitMQ's consumer timeout" in messages[0].msg


def test_a_missing_hard_limit_is_an_error(celery_conf):
    celery_conf(task_time_limit=None)
    assert _ids(checks.check_consumer_timeout()) == ["celery.E021"]


def test_an_io_tasks_io_timeout_counts_against_the_consumer_timeout(settings, monkeypatch):
    # The io worker's threads obey no time limit: the task's io_timeout bounds its run.
    settings.RABBITMQ_CONSUMER_TIMEOUT = 1200
    monkeypatch.setattr(fetch_delivery, "io_timeout", 1500)
    messages = checks.check_consumer_timeout()
    assert _ids(messages) == ["celery.E021"]
    assert "task tests.fetch_delivery (io_timeout) (1500 s)" in messages[0].msg


def test_a_classic_queue_on_a_direct_exchange_is_an_error(settings):
    settings.CELERY_TASK_QUEUES = (
        broker_rabbitmq.task_queue("default", 10),
        Queue("io", Exchange("io", type="direct"), routing_key="io"),
    )
    messages = checks.check_quorum_queues()
    assert set(_ids(messages)) == {"celery.E022"}
    texts = " ".join(message.msg for message in messages)
    assert "queue 'io' is declared with x-queue-type=None" in texts
    assert "queue 'io' is declared with x-delivery-limit=None" in texts
    assert "queue 'io' is bound to a 'direct' exchange" in texts
    assert "'default'" not in texts


def test_at_most_once_dead_lettering_is_an_error(settings):
    arguments = {**broker_rabbitmq.queue_arguments(10), "x-dead-letter-strategy": "at-most-once"}
    settings.CELERY_TASK_QUEUES = (
        Queue("default", broker_rabbitmq.TASKS_EXCHANGE, routing_key="default", queue_arguments=arguments),
    )
    messages = checks.check_quorum_queues()
    assert _ids(messages) == ["celery.E022"]
    assert "x-dead-letter-strategy='at-most-once'" in messages[0].msg
