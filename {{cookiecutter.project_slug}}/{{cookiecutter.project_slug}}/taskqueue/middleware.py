"""Turn a send that failed because the broker is unavailable into a clear 503, not a bare 500."""

import logging

from django.http import HttpResponse
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)


class BrokerUnavailableMiddleware:
    """A view that enqueues while Redis is down (or not answering) answers 503 within seconds.

    The seconds come from the broker settings (socket timeouts, pool and publish-retry bounds); this
    says why the request failed, to the client and in one log line, instead of an unexplained 500.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError):
            return None
        # The error email about this response would wait on the same broker: its handler skips it.
        request.broker_unavailable = True
        logger.error(
            # A send that timed out may still be applied once Redis answers again: it may run (tasks are idempotent).
            "Could not enqueue a task for %s %s: the broker is unavailable (the task may still run, if a send that "
            "timed out reaches it later): %s",
            request.method,
            request.path,
            exception,
        )
        return HttpResponse(
            "The task queue is unavailable, so your request may not have been queued. Try again in a moment.",
            status=503,
            content_type="text/plain",
            headers={"Retry-After": "30"},
        )
