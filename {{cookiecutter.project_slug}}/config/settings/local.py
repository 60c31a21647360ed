"""Local development: DEBUG on, mail caught by Mailpit (or the console without Docker)."""

from .base import *  # noqa: F403
from .base import env

DEBUG = True
SECRET_KEY = env("DJANGO_SECRET_KEY", default="!!!local-development-only-not-secret!!!")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# Mailpit in Docker (EMAIL_HOST=mailpit); without Docker, the console shows outgoing mail.
EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=1025)

# Tasks run on real workers locally too: eager mode would hide serialisation and routing bugs.
CELERY_TASK_ALWAYS_EAGER = False
