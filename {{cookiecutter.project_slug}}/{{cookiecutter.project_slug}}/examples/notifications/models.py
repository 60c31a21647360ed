from django.conf import settings
from django.db import models


class WelcomeEmail(models.Model):
    """A user's welcome email was sent: the record that makes sending it idempotent."""

    # One per user, and the primary key: two concurrent sends cannot both record theirs.
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True)
    sent_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"Welcome email to user {self.user_id} at {self.sent_at:%Y-%m-%d %H:%M}"
