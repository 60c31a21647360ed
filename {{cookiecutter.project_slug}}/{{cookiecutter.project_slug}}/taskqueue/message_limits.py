"""Limits on every task message, checked where every send goes through (``.delay()``, ``apply_async``,
``retry``, ``send_task``, beat, canvas): a message that breaks one is refused before it reaches Redis.

- Size (TASK_MAX_MESSAGE_BYTES). Arguments are IDs and small values. A megabyte payload is
  a bug (a whole file or queryset passed by value): it slows the sender, and it fills Redis, which
  runs with ``noeviction`` and then refuses every write, including every other sender's.
- Delay (TASK_MAX_COUNTDOWN). A worker holds a task with a countdown or ETA unacked until it is
  due; once the visibility timeout passes, Redis delivers it again and both copies run.
  TASK_MAX_COUNTDOWN stays below the visibility timeout (check ``celery.E002``).
"""

from datetime import datetime

from celery.app.amqp import AMQP
from celery.utils.time import maybe_make_aware
from django.conf import settings
from kombu.serialization import dumps


class MessageTooLargeError(ValueError):
    """A task message over settings.TASK_MAX_MESSAGE_BYTES."""


class CountdownTooLongError(ValueError):
    """A task message due further ahead than settings.TASK_MAX_COUNTDOWN."""


class LimitedAMQP(AMQP):
    """Celery's message builder (the app's ``amqp`` class), refusing messages over the project's limits."""

    def as_task_v2(self, task_id, name, *args, **kwargs):
        message = super().as_task_v2(task_id, name, *args, **kwargs)
        self.check_delay(task_id, name, message.headers.get("eta"))
        self.check_size(task_id, name, message.body)
        return message

    def check_delay(self, task_id: str, name: str, eta: str | None) -> None:
        if eta is None:
            return
        due = maybe_make_aware(datetime.fromisoformat(eta), self.app.timezone)
        delay = (due - self.app.now()).total_seconds()
        if delay > settings.TASK_MAX_COUNTDOWN:
            raise CountdownTooLongError(
                f"{name}[{task_id}] would wait {delay:.0f} s before running, longer than TASK_MAX_COUNTDOWN "
                f"({settings.TASK_MAX_COUNTDOWN} s): Redis would deliver it again before it is due. "
                "Store the due time in the database and let a periodic task send it instead."
            )

    def check_size(self, task_id: str, name: str, body) -> None:
        # Serialised as the producer will, so the size is the one Redis would store.
        _content_type, _encoding, serialized = dumps(body, serializer=self.app.conf.task_serializer)
        size = len(serialized if isinstance(serialized, bytes) else serialized.encode())
        if size > settings.TASK_MAX_MESSAGE_BYTES:
            raise MessageTooLargeError(
                f"{name}[{task_id}]: the message would be {size:,} bytes, more than TASK_MAX_MESSAGE_BYTES "
                f"({settings.TASK_MAX_MESSAGE_BYTES:,}). Pass IDs and small values, and keep large data in the "
                "database or in storage."
            )
