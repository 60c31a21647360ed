from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """The project's user (AUTH_USER_MODEL).

    A model of its own from the first migration, even with nothing to add yet: Django cannot
    switch AUTH_USER_MODEL once tables exist, and this keeps adding a field a migration away.
    """
