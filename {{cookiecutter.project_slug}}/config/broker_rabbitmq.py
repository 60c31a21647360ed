"""The RabbitMQ shapes of the task queues: quorum queues on a topic exchange, dead letters to a queue of their own.

- Quorum queues are replicated (Raft) and durable: a message survives the loss of a node, and a node restart.
- The topic exchange: Celery 5.5's native delayed delivery routes a countdown's message through its own delay queues
  and back to the task's queue by topic (``<delay bits>.<queue>``); it cannot do so for a direct exchange.
- ``x-delivery-limit``: RabbitMQ counts the deliveries of each message; past the limit (a message that kills its
  worker every time, so the project's own count in BaseTask never gets to record it), it dead-letters the message.
- ``x-dead-letter-exchange`` with ``at-least-once``: a dead-lettered message is republished to ``dead-letters`` and
  removed from its queue only once that queue has confirmed it (needs ``x-overflow: reject-publish``). Expired
  messages (a task's ``expires``) and ``Reject(requeue=False)`` go there too, with the reason in ``x-death``.

Imported by the settings: no Django here.
"""

from kombu import Exchange, Queue

TASKS_EXCHANGE = Exchange("tasks", type="topic", durable=True)
DEAD_LETTER_EXCHANGE = Exchange("dead-letters", type="fanout", durable=True)
DEAD_LETTER_QUEUE = Queue(
    "dead-letters",
    DEAD_LETTER_EXCHANGE,
    routing_key="",
    queue_arguments={"x-queue-type": "quorum"},
)


def queue_arguments(delivery_limit: int) -> dict:
    """A task queue's arguments: quorum, dead-lettering at least once past ``delivery_limit`` deliveries."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def task_queue(name: str, delivery_limit: int) -> Queue:
    """A task queue: on the topic exchange under its own name, with queue_arguments(delivery_limit)."""
    return Queue(name, TASKS_EXCHANGE, routing_key=name, queue_arguments=queue_arguments(delivery_limit))


def declare(connection, queues) -> list[str]:
    """Declare the exchanges, the task queues and the dead-letter queue on ``connection`` (a kombu Connection).

    Idempotent: declaring them again with the same arguments changes nothing; a queue that exists with other
    arguments is refused by RabbitMQ (PRECONDITION_FAILED, 406), and that error is raised with its name.
    """
    declared = []
    with connection.channel() as channel:
        for queue in (*queues, DEAD_LETTER_QUEUE):
            queue.bind(channel).declare()
            declared.append(queue.name)
    return declared
