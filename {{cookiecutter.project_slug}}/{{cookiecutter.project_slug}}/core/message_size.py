"""A size limit on task messages, checked where every send goes through (``.delay()``, ``send_task``, beat, canvas).

Arguments are IDs and small values (P4). A megabyte payload is a bug (a whole file or queryset
passed by value): it slows the sender, and it fills Redis, which runs with ``noeviction`` and
then refuses every write, including the next task of every other sender (P12).
"""

from celery.app.amqp import AMQP
from django.conf import settings
from kombu.serialization import dumps


class MessageTooLargeError(ValueError):
    """A task message over settings.TASK_MAX_MESSAGE_BYTES: refused before it reaches the broker."""


class SizeLimitedAMQP(AMQP):
    """Celery's message builder (the app's ``amqp`` class), refusing bodies over TASK_MAX_MESSAGE_BYTES."""

    def as_task_v2(self, task_id, name, *args, **kwargs):
        message = super().as_task_v2(task_id, name, *args, **kwargs)
        # Serialised as the producer will, so the size is the one Redis would store.
        _content_type, _encoding, body = dumps(message.body, serializer=self.app.conf.task_serializer)
        size = len(body if isinstance(body, bytes) else body.encode())
        if size > settings.TASK_MAX_MESSAGE_BYTES:
            raise MessageTooLargeError(
                f"{name}[{task_id}]: the message would be {size:,} bytes, more than TASK_MAX_MESSAGE_BYTES "
                f"({settings.TASK_MAX_MESSAGE_BYTES:,}). Pass IDs and small values, and keep large data in the "
                "database or in storage."
            )
        return message
