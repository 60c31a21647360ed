"""On RabbitMQ the benchmark only ever purges task queues it was given: empty, or purged because the user said
--yes, and never ones someone's workers consume. Its Redis-only mode is refused, saying why."""

import uuid

import pytest
from celery import Celery
from django.conf import settings
from django.core.management import CommandError, call_command
from kombu import Consumer

from config import broker_rabbitmq
from tools.bench.errors import BenchmarkError
from tools.bench.scratch_rabbitmq import claim_queues, queue_counts, server_version


@pytest.fixture
def bench_app(rabbitmq_node):
    """An app on a virtual host of its own with the project's queues declared: the session's workers are not on it."""
    vhost = f"bench-{uuid.uuid4().hex[:8]}"
    app = Celery("bench-claim", broker=rabbitmq_node.add_vhost(vhost), set_as_current=False)
    app.conf.task_queues = settings.CELERY_TASK_QUEUES
    app.conf.broker_transport_options = {"confirm_publish": True}  # a send has arrived when it returns
    with app.connection_for_write() as connection:
        broker_rabbitmq.declare(connection, settings.CELERY_TASK_QUEUES)
    yield app
    app.close()
    rabbitmq_node.delete_vhost(vhost)


def send(app: Celery, queue: str, count: int) -> None:
    for _ in range(count):
        app.send_task("bench.noop", args=("someone-else",), queue=queue)


def test_queues_holding_messages_are_refused_and_left_alone(bench_app):
    send(bench_app, "default", 2)
    send(bench_app, "cpu", 1)
    with pytest.raises(BenchmarkError, match=r"cpu: 1, default: 2.*--yes"):
        claim_queues(bench_app, flush=False)
    assert queue_counts(bench_app) == {"default": (2, 0), "io": (0, 0), "cpu": (1, 0)}


def test_yes_purges_every_task_queue(bench_app):
    send(bench_app, "default", 3)
    send(bench_app, "io", 1)
    claim_queues(bench_app, flush=True)
    assert queue_counts(bench_app) == {"default": (0, 0), "io": (0, 0), "cpu": (0, 0)}


def test_queues_a_worker_consumes_are_refused_even_with_yes(bench_app):
    with bench_app.connection_for_write() as connection, connection.channel() as channel:
        io_queue = next(queue for queue in settings.CELERY_TASK_QUEUES if queue.name == "io")
        with Consumer(channel, queues=[io_queue], callbacks=[lambda body, message: None]):
            with pytest.raises(BenchmarkError, match="Workers consume io"):
                claim_queues(bench_app, flush=True)
            assert queue_counts(bench_app)["io"] == (0, 1)


def test_undeclared_queues_count_as_empty_and_are_claimed(rabbitmq_node):
    """A fresh node: no worker has declared the queues yet, and the passive declares create nothing."""
    vhost = f"bench-{uuid.uuid4().hex[:8]}"
    app = Celery("bench-fresh", broker=rabbitmq_node.add_vhost(vhost), set_as_current=False)
    app.conf.task_queues = settings.CELERY_TASK_QUEUES
    try:
        assert queue_counts(app) == {"default": (0, 0), "io": (0, 0), "cpu": (0, 0)}
        assert rabbitmq_node.queue_counts(vhost) == {}
    finally:
        app.close()
        rabbitmq_node.delete_vhost(vhost)


def test_reported_server_version_is_the_nodes(bench_app, rabbitmq_node):
    assert server_version(bench_app) == rabbitmq_node.ctl_run("version").strip()


def test_herd_mode_is_refused_on_rabbitmq_saying_why():
    with pytest.raises(CommandError, match=r"Redis commands per task.*broker is RabbitMQ"):
        call_command("celery_bench", "--herd", "--start-rabbitmq")
