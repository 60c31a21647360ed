from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    # Set in the same transaction that sends the welcome email: the flag that makes it idempotent (P8).
    welcome_email_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
