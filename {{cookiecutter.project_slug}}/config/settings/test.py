"""Test settings: fast, isolated, and still talking to a real Redis (started by the test plugin)."""

import os
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
{% if cookiecutter.broker == "rabbitmq" %}from .base import DATABASES, env{% else %}from .base import CELERY_BROKER_TRANSPORT_OPTIONS, DATABASES, env{% endif %}

SECRET_KEY = env("DJANGO_SECRET_KEY", default="!!!test-only-not-secret!!!")
ALLOWED_HOSTS = ["testserver", "localhost"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
if env("TEST_EMAIL_OUTBOX", default=""):
    # The delivery-contract harness's workers: emails go to files there, where the test counts them (locmem's
    # outbox is in the worker's memory): tests/contracts/harness.py emails_sent().
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = env("TEST_EMAIL_OUTBOX")
# Tests run without collectstatic: WhiteNoise looks files up per request instead of warning at every start.
WHITENOISE_AUTOREFRESH = True

# The watchdogs would end the test process itself if a debugger or a loaded machine held a loop: off, unless a
# test that starts a worker or beat process sets them (tests/taskqueue/test_liveness.py).
WORKER_STUCK_AFTER = env.float("WORKER_STUCK_AFTER", default=0)
BEAT_STUCK_AFTER = env.float("BEAT_STUCK_AFTER", default=0)

# Task metrics are written to Redis at every event, so tests read them at once.
TASK_METRICS_FLUSH_INTERVAL = 0

# Task tests go through a real worker and a real Redis (see tests/conftest.py), never eager mode.
CELERY_TASK_ALWAYS_EAGER = False

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not SQLite's shared memory: worker subprocesses started by tests must see the same database.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"{{ cookiecutter.project_slug }}-test-{os.getpid()}.sqlite3")
    }

{%- if cookiecutter.include_examples == "y" %}

# Retries wait at most a second between attempts, so retry tests take seconds, not minutes.
REPORTS_API_RETRY_BACKOFF_MAX = 1
REPORTS_API_TIMEOUT = (3.05, 2)
{%- endif %}
{%- if cookiecutter.broker == "redis" %}

# The reliability suite shortens the visibility timeout to seconds (CELERY_VISIBILITY_TIMEOUT); look for messages
# whose worker died every second too, not kombu's default of every 10 x 10 s.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
{%- endif %}
