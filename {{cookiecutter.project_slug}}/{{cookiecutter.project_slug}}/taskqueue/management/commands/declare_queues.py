"""Declare the task queues and the dead-letter queue on RabbitMQ as the settings define them (run by the deploy step).

A worker declares the queue it consumes when it starts; the dead-letter queue has no consumer but must exist before a
message is dead-lettered, or RabbitMQ drops it. Declaring again changes nothing; a queue that exists with other
arguments (say a classic queue of the same name) is refused by RabbitMQ, and this command fails with its name.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config import broker_rabbitmq
from config.celery_app import app


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def handle(self, *args, **options):
        try:
            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=3)
                declared = broker_rabbitmq.declare(connection, settings.CELERY_TASK_QUEUES)
        except Exception as exc:
            raise CommandError(
                f"Could not declare the queues on {app.connection_for_write().as_uri()}: {type(exc).__name__}: {exc}. "
                "A queue declared with other arguments must be deleted (after draining it) before this can declare "
                "it as a quorum queue."
            ) from exc
        self.stdout.write(f"Declared on RabbitMQ: {', '.join(declared)}.")
