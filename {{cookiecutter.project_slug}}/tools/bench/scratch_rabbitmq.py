"""The RabbitMQ task queues a benchmark may fill and purge: never ones holding someone's messages or feeding workers.

On RabbitMQ the queues are not in the benchmark's Redis database (scratch_redis.py), so flushing that does not
empty them: the benchmark reads them with a passive declare (it creates nothing, as taskqueue/metrics.py reads
their depth) and purges them.
"""

from celery import Celery

from tools.bench.errors import BenchmarkError


def queue_counts(app: Celery) -> dict[str, tuple[int, int]]:
    """Each task queue: (messages ready, consumers). A queue not declared yet counts (0, 0)."""
    counts = {}
    with app.connection_for_write() as connection:
        for queue in app.conf.task_queues:
            # A failed passive declare closes its channel: one channel per queue.
            with connection.channel() as channel:
                try:
                    declared = channel.queue_declare(queue=queue.name, passive=True)
                except connection.channel_errors:  # NOT_FOUND (404): no worker has declared it yet
                    counts[queue.name] = (0, 0)
                else:
                    counts[queue.name] = (declared.message_count, declared.consumer_count)
    return counts


def claim_queues(app: Celery, *, flush: bool) -> None:
    """Make sure the benchmark may use the broker's task queues: no worker of someone else's on them, and
    empty, or emptied because the user said so."""
    counts = queue_counts(app)
    consumed = sorted(name for name, (_, consumers) in counts.items() if consumers)
    if consumed:
        raise BenchmarkError(
            f"Workers consume {', '.join(consumed)} on CELERY_BROKER_URL: they would take the benchmark's tasks. "
            "Stop them, or pass --start-rabbitmq to run on a RabbitMQ node of its own."
        )
    waiting = {name: ready for name, (ready, _) in counts.items() if ready}
    if waiting and not flush:
        held = ", ".join(f"{name}: {ready}" for name, ready in sorted(waiting.items()))
        raise BenchmarkError(
            f"The task queues hold messages ({held}). The benchmark purges its queues before and after it runs: "
            "pass --yes to purge these, or --start-rabbitmq to run on a RabbitMQ node of its own."
        )
    app.control.purge()


def server_version(app: Celery) -> str:
    """The RabbitMQ version the broker announces when a connection opens (its AMQP server properties)."""
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1)
        version = connection.connection.server_properties.get("version", "?")
    return version.decode() if isinstance(version, bytes) else str(version)
