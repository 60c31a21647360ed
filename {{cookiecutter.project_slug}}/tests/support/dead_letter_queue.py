"""What RabbitMQ dead-lettered itself (delivery limit, expiry, reject without requeue): the ``dead-letters`` queue."""

from config import broker_rabbitmq
from config.celery_app import app as celery_app


def dead_letters(url: str | None = None) -> list[dict]:
    """Take every message of the dead-letter queue (of the broker at ``url``, else the app's): its task id and the
    first ``x-death`` entry (reason, queue)."""
    taken = []
    with celery_app.connection_for_read(url) as connection, connection.channel() as channel:
        while (message := channel.basic_get(queue=broker_rabbitmq.DEAD_LETTER_QUEUE.name, no_ack=True)) is not None:
            headers = message.headers or {}
            death = (headers.get("x-death") or [{}])[0]
            taken.append({"id": headers.get("id"), "reason": death.get("reason"), "queue": death.get("queue")})
    return taken
