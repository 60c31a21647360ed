"""Test settings: fast, isolated, and still talking to a real Redis (started by the test plugin)."""

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = env("DJANGO_SECRET_KEY", default="!!!test-only-not-secret!!!")
ALLOWED_HOSTS = ["testserver", "localhost"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# Task tests go through a real worker and a real Redis (see conftest.py), never eager mode (P33).
CELERY_TASK_ALWAYS_EAGER = False
