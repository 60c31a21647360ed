{% if cookiecutter.broker == "rabbitmq" -%}
"""State, results and cache each in their own Redis database, derived from REDIS_URL; the cache stores JSON."""
{%- else -%}
"""Broker, results and cache each in their own Redis database, derived from REDIS_URL; the cache stores JSON."""
{%- endif %}

import json
import os
import subprocess
import sys

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django_redis import get_redis_connection

from config import redis_roles
from tools.procfile import PROJECT_DIR

PRINT_ROLES = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({
    "broker": settings.CELERY_BROKER_URL,
{%- if cookiecutter.broker == "rabbitmq" %}
    "state": settings.REDIS_STATE_URL,
{%- endif %}
    "results": getattr(settings, "CELERY_RESULT_BACKEND", ""),
    "cache": settings.CACHES["default"]["LOCATION"],
}))
"""


def settings_with(**env: str) -> subprocess.CompletedProcess:
    """Production-like: settings imported in a fresh process with only these Redis variables set."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("REDIS_", "CELERY_"))}
    return subprocess.run(
        [sys.executable, "-c", PRINT_ROLES],
        cwd=PROJECT_DIR,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings.test", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


{% if cookiecutter.broker == "rabbitmq" -%}
def test_redis_url_alone_gives_each_role_its_own_database():
    done = settings_with(REDIS_URL="redis://:secret@redis.internal:6379/4")
    assert done.returncode == 0, done.stderr
    roles = json.loads(done.stdout)
    assert roles["state"] == "redis://:secret@redis.internal:6379/4"
    assert roles["cache"] == "redis://:secret@redis.internal:6379/6"
    if roles["results"].startswith("redis"):
        assert roles["results"] == "redis://:secret@redis.internal:6379/5"
    assert roles["broker"].startswith("amqp://")  # RabbitMQ: CELERY_BROKER_URL, never derived from REDIS_URL


def test_each_role_has_a_url_of_its_own():
    done = settings_with(
        REDIS_URL="redis://redis.internal:6379/0",
        CELERY_BROKER_URL="amqps://app:pw@rabbitmq.internal:5671/app",  # pragma: allowlist secret
        REDIS_STATE_URL="rediss://state.internal:6380/0",
        REDIS_CACHE_URL="redis://cache.internal:6379/0",
        CELERY_RESULT_BACKEND_URL="redis://results.internal:6379/3",
    )
    assert done.returncode == 0, done.stderr
    roles = json.loads(done.stdout)
    assert roles["broker"] == "amqps://app:pw@rabbitmq.internal:5671/app"  # pragma: allowlist secret
    assert roles["state"] == "rediss://state.internal:6380/0"
    assert roles["cache"] == "redis://cache.internal:6379/0"
    if roles["results"].startswith("redis"):
        assert roles["results"] == "redis://results.internal:6379/3"


def test_a_cache_on_the_state_database_is_refused_at_start_by_name():
    done = settings_with(REDIS_URL="redis://redis.internal:6379/0", REDIS_CACHE_URL="redis://:pw@redis.internal/0")
    assert done.returncode != 0
    assert "REDIS_CACHE_URL and REDIS_STATE_URL name the same Redis database" in done.stderr
    assert ":pw@" not in done.stderr  # the password stays out of the message


def test_a_sentinel_url_for_a_redis_role_is_refused_at_start_by_name():
    done = settings_with(REDIS_URL="sentinel://s1:26379/0")
    assert done.returncode != 0
    assert "REDIS_STATE_URL is sentinel://s1:26379/0: the Redis roles (state, results, cache) need" in done.stderr
{%- else -%}
def test_redis_url_alone_gives_each_role_its_own_database():
    done = settings_with(REDIS_URL="redis://:secret@redis.internal:6379/4")
    assert done.returncode == 0, done.stderr
    roles = json.loads(done.stdout)
    assert roles["broker"] == "redis://:secret@redis.internal:6379/4"
    assert roles["cache"] == "redis://:secret@redis.internal:6379/6"
    if roles["results"].startswith("redis"):
        assert roles["results"] == "redis://:secret@redis.internal:6379/5"


def test_each_role_has_a_url_of_its_own():
    done = settings_with(
        REDIS_URL="redis://redis.internal:6379/0",
        CELERY_BROKER_URL="rediss://broker.internal:6380/0",
        REDIS_CACHE_URL="redis://cache.internal:6379/0",
        CELERY_RESULT_BACKEND_URL="redis://results.internal:6379/3",
    )
    assert done.returncode == 0, done.stderr
    roles = json.loads(done.stdout)
    assert roles["broker"] == "rediss://broker.internal:6380/0"
    assert roles["cache"] == "redis://cache.internal:6379/0"
    if roles["results"].startswith("redis"):
        assert roles["results"] == "redis://results.internal:6379/3"


def test_a_cache_on_the_broker_database_is_refused_at_start_by_name():
    done = settings_with(REDIS_URL="redis://redis.internal:6379/0", REDIS_CACHE_URL="redis://:pw@redis.internal/0")
    assert done.returncode != 0
    assert "REDIS_CACHE_URL and CELERY_BROKER_URL name the same Redis database" in done.stderr
    assert ":pw@" not in done.stderr  # the password stays out of the message


def test_a_sentinel_broker_takes_its_primary_name_from_the_environment():
    done = settings_with(
        REDIS_URL="redis://redis.internal:6379/0",
        CELERY_BROKER_URL="sentinel://:pw@s1.internal:26379/0;sentinel://:pw@s2.internal:26379/0",
        REDIS_SENTINEL_MASTER="broker",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["broker"].startswith("sentinel://")
    assert redis_roles.sentinel_options("sentinel://s1:26379/0", "broker") == {"master_name": "broker"}
    assert redis_roles.sentinel_options("redis://h:6379/0", "broker") == {}


def test_a_sentinel_url_without_its_primary_name_or_for_the_cache_is_refused_at_start_by_name():
    done = settings_with(REDIS_URL="redis://redis.internal:6379/0", CELERY_BROKER_URL="sentinel://:pw@s1:26379/0")
    assert done.returncode != 0
    assert "set REDIS_SENTINEL_MASTER" in done.stderr
    assert ":pw@" not in done.stderr
    done = settings_with(REDIS_URL="sentinel://s1:26379/0", REDIS_SENTINEL_MASTER="broker")
    assert done.returncode != 0
    assert "REDIS_CACHE_URL is sentinel://s1:26379/2: the cache and the result backend need a redis://" in done.stderr
{%- endif %}


def test_role_urls_keep_credentials_and_query_and_reject_a_database_that_is_not_a_number():
    assert redis_roles.role_url("rediss://u:p@h:6380?timeout=2", "results") == "rediss://u:p@h:6380/1?timeout=2"
    with pytest.raises(ImproperlyConfigured, match="not a number"):
        redis_roles.role_url("redis://h:6379/cache", "cache")


def test_the_cache_stores_json_and_refuses_what_json_cannot_hold():
    cache.set("report", {"rows": [1, 2], "title": "May"}, timeout=60)
    raw = get_redis_connection("default").get(cache.make_key("report"))
    assert json.loads(raw) == {"rows": [1, 2], "title": "May"}
    with pytest.raises(TypeError):
        cache.set("object", object(), timeout=60)
