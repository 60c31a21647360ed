from django.conf import settings
from django.db import models


class WelcomeEmail(models.Model):
    """A user's welcome email: claimed by the run sending it, then recorded as sent (what makes it idempotent).

    The claim replaces a row lock held across the send: the lock would block every write to the user for as long
    as a slow mail server takes. A claim older than the send's bound (services.welcome_email_claim()) belongs to a
    run that died mid-send, and the next run takes it over.
    """

    # One per user, and the primary key: two concurrent runs cannot both create theirs.
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When a run started sending it")
    sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        if self.sent_at is None:
            return f"Welcome email to user {self.user_id}: not sent yet"
        return f"Welcome email to user {self.user_id} at {self.sent_at:%Y-%m-%d %H:%M}"
