"""Email backends for tests that stand in for a slow SMTP server, or one that is down for a moment."""

import smtplib
import time

from django.conf import settings
from django.core.cache import cache
from django.core.mail.backends.locmem import EmailBackend


class SlowLocmemEmailBackend(EmailBackend):
    """Like locmem (messages land in django.core.mail.outbox), but each send first waits
    ``settings.TEST_EMAIL_DELAY`` seconds, as a slow or overloaded mail server would. While it waits, the cache
    key SENDING is set, so a test can act during a send."""

    SENDING = "test-email-sending"

    def send_messages(self, messages):
        cache.set(self.SENDING, True, timeout=60)
        time.sleep(getattr(settings, "TEST_EMAIL_DELAY", 0))
        return super().send_messages(messages)


class FailingLocmemEmailBackend(EmailBackend):
    """Like locmem, but the first ``settings.TEST_EMAIL_FAILURES`` sends fail as an SMTP server that is
    down for a moment does. Counted in the cache, which every test starts empty."""

    def send_messages(self, messages):
        cache.add("test-email-attempts", 0)
        if cache.incr("test-email-attempts") <= getattr(settings, "TEST_EMAIL_FAILURES", 0):
            raise smtplib.SMTPServerDisconnected("the test mail server is down")
        return super().send_messages(messages)
