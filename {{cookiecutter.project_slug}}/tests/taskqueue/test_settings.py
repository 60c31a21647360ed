"""Pin the Celery settings that the delivery guarantees rest on (docs/practices.md gives each one's reason)."""

import logging
from pathlib import Path

import pytest
from celery.exceptions import QueueNotFound
from django.conf import settings

from config.celery_app import app as celery_app
from tests.taskqueue.tasks import add


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("task_acks_late", True),
        ("task_reject_on_worker_lost", True),
        ("worker_prefetch_multiplier", 1),
        ("accept_content", ["json"]),
        ("result_accept_content", ["json"]),
        ("task_serializer", "json"),
        ("result_serializer", "json"),
        ("task_ignore_result", True),
        ("task_default_queue", "default"),
        ("task_create_missing_queues", False),
        ("broker_connection_retry_on_startup", True),
        ("worker_cancel_long_running_tasks_on_connection_loss", True),
        ("task_always_eager", False),
    ],
)
def test_celery_setting_is_pinned(name, expected):
    assert celery_app.conf[name] == expected


def test_queues_are_default_io_and_cpu():
    assert [queue.name for queue in celery_app.conf.task_queues] == ["default", "io", "cpu"]


def test_a_task_sent_to_a_queue_no_worker_knows_is_refused():
    # With missing queues created on demand, a typo in a queue name is a message nobody consumes.
    with pytest.raises(QueueNotFound):
        celery_app.amqp.router.route({"queue": "defualt"}, "tests.add")


def test_time_limits_are_set_and_soft_comes_first():
    soft, hard = celery_app.conf.task_soft_time_limit, celery_app.conf.task_time_limit
    assert soft is not None
    assert hard is not None
    assert soft < hard


{% if cookiecutter.broker == "rabbitmq" -%}
def test_the_consumer_timeout_exceeds_the_hard_limit():
    assert celery_app.conf.task_time_limit < settings.RABBITMQ_CONSUMER_TIMEOUT


def test_publishes_are_confirmed_and_task_queues_are_quorum_queues_with_a_delivery_limit():
    assert celery_app.conf.broker_transport_options == {"confirm_publish": True}
    for queue in celery_app.conf.task_queues:
        assert queue.queue_arguments["x-queue-type"] == "quorum", queue
        assert queue.queue_arguments["x-delivery-limit"] == settings.TASK_DELIVERY_LIMIT, queue


def test_a_workers_broker_connection_agrees_a_30_second_heartbeat_with_rabbitmq(celery_workers):
    # Celery heartbeats on a worker's connection (a sender's is short-lived). RabbitMQ offers 60 s and the lower offer
    # wins: a broker gone silent (a crashed VM, a dropped route) is noticed within two missed beats of 30 s.
    connection = celery_workers["default"].consumer.connection.connection
    assert connection.heartbeat == settings.CELERY_BROKER_HEARTBEAT == 30
{%- else -%}
def test_visibility_timeout_exceeds_hard_limit_plus_max_countdown():
    visibility = celery_app.conf.broker_transport_options["visibility_timeout"]
    assert visibility > celery_app.conf.task_time_limit + settings.TASK_MAX_COUNTDOWN
{%- endif %}


def test_results_expire():
    assert 0 < celery_app.conf.result_expires <= 7 * 24 * 3600


def test_worker_children_are_recycled():
    assert celery_app.conf.worker_max_tasks_per_child
    assert celery_app.conf.worker_max_memory_per_child


def test_shared_tasks_bind_to_the_project_app():
    assert add.app is celery_app
    assert celery_app.main == "{{ cookiecutter.project_slug }}"


def test_celery_leaves_logging_to_django():
    root = logging.getLogger()
    handlers_from_django = list(root.handlers)
    assert handlers_from_django, "Django's LOGGING should have configured the root logger"
    celery_app.log.already_setup = False
    celery_app.log.setup(loglevel="DEBUG")
    assert root.handlers == handlers_from_django


def test_no_settings_module_enables_eager_mode():
    settings_dir = Path(__file__).resolve().parents[2] / "config" / "settings"
    for module in settings_dir.glob("*.py"):
        assert "CELERY_TASK_ALWAYS_EAGER = True" not in module.read_text(), module.name
