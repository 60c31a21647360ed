"""An email backend for tests that stands in for a slow SMTP server."""

import time

from django.conf import settings
from django.core.mail.backends.locmem import EmailBackend


class SlowLocmemEmailBackend(EmailBackend):
    """Like locmem (messages land in django.core.mail.outbox), but each send first waits
    ``settings.TEST_EMAIL_DELAY`` seconds, as a slow or overloaded mail server would."""

    def send_messages(self, messages):
        time.sleep(getattr(settings, "TEST_EMAIL_DELAY", 0))
        return super().send_messages(messages)
