"""django-celery-results' test settings (t/proj/settings.py), on the generated project's PostgreSQL.

Upstream's settings use PostgreSQL when psycopg2cffi is installed, SQLite otherwise; the project runs on
PostgreSQL with psycopg 3, and its backend locks rows (SELECT ... FOR UPDATE), which SQLite ignores.
So the same three aliases upstream declares point at the PostgreSQL the check is given
(UPSTREAM_DATABASE_URL). The read-only alias keeps upstream's read-only transaction option.
"""

import os
from urllib.parse import urlsplit

from t.proj.settings import *  # noqa: F403

_url = urlsplit(os.environ["UPSTREAM_DATABASE_URL"])
_database = {
    "ENGINE": "django.db.backends.postgresql",
    "HOST": _url.hostname,
    "PORT": _url.port,
    "NAME": _url.path.lstrip("/"),
    "USER": _url.username,
    "PASSWORD": _url.password,
    "OPTIONS": {"connect_timeout": 10},
    # One test database per concurrent run on the shared server.
    "TEST": {"NAME": os.environ["UPSTREAM_TEST_DATABASE"]},
}
DATABASES = {
    "default": _database,
    "secondary": {**_database, "TEST": {"MIRROR": "default"}},
    "read-only": {
        **_database,
        "OPTIONS": {"connect_timeout": 10, "options": "-c default_transaction_read_only=on"},
        "TEST": {"MIRROR": "default"},
    },
}
