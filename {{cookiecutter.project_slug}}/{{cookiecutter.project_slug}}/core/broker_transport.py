"""The broker transport: kombu's Redis transport, except that a malformed message cannot stop a worker.

kombu decodes each message's JSON envelope in the worker's event loop; one that is not JSON, or
not a kombu envelope, raises there and the worker exits ("Unrecoverable error"). Anyone who can
write to Redis could stop every worker, one bad message each. Here such a message is logged and
dropped (it was already popped off the queue). Well-formed messages Celery cannot run (a body
that is not JSON, an unknown task name) Celery itself logs and discards.
"""

import logging

from kombu.transport import TRANSPORT_ALIASES, redis

logger = logging.getLogger(__name__)

# json.loads raises ValueError; reading the fields of something that is not an envelope, KeyError or TypeError.
MALFORMED = (ValueError, KeyError, TypeError)


class Channel(redis.Channel):
    def _brpop_read(self, **options):
        try:
            return super()._brpop_read(**options)
        except MALFORMED as exc:
            # A JSON error keeps the text it failed on: log its start, so the producer can be found.
            start = f"; it began {exc.doc[:200]!r}" if isinstance(getattr(exc, "doc", None), str) else ""
            logger.error(
                "Dropped a malformed message from the broker (not a kombu JSON envelope): %s: %s%s",
                type(exc).__name__,
                exc,
                start,
            )
            return True


class Transport(redis.Transport):
    Channel = Channel


def use_for_redis_urls() -> None:
    """Make ``redis://`` and ``rediss://`` broker URLs use this transport (kombu picks one by URL scheme).

    Registered under the scheme rather than set as CELERY_BROKER_TRANSPORT, so the broker URL
    keeps its ``redis://`` form for Flower and the worker banner.
    """
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
