"""A managed Redis's ACL user (``+@all -@dangerous``: no FLUSHDB, INFO, CONFIG or KEYS), the default user off.

Every role works through it: the broker (with the transport's claim), the cache and its locks, the beat
lock, the result backend, cache.clear() and /healthz/.
"""

import uuid

import pytest
import redis
from django.core.cache import cache
from django.urls import reverse
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue.cache_client import redis_cache
from {{ cookiecutter.project_slug }}.taskqueue.patches.django_celery_beat import HeartbeatDatabaseScheduler
from tests.support.redis_shapes import broker_on, use_cache_on, worker_delivers_and_stores
from tools.redis_server import AclUser, RedisServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def acl_redis():
    server = RedisServer(acl_user=AclUser()).start()
    yield server
    server.stop(remove_data=True)


def test_the_server_has_the_managed_shape(acl_redis):
    client = redis.Redis.from_url(acl_redis.url)
    for refused in (client.flushdb, client.info, lambda: client.config_get("maxmemory")):
        with pytest.raises(NoPermissionError):
            refused()
    anonymous = redis.Redis.from_url(acl_redis.url.replace(f"{AclUser.name}:{AclUser.password}@", ""))
    with pytest.raises((AuthenticationError, ResponseError)):
        anonymous.ping()


def test_the_cache_its_locks_and_clear_work_for_an_acl_user(acl_redis, settings):
    use_cache_on(settings, acl_redis)
    cache.set("report", {"rows": [1, 2]}, timeout=60)
    assert cache.get("report") == {"rows": [1, 2]}
    held = redis_cache().lock("lock:acl", timeout=10, blocking_timeout=0.1)
    assert held.acquire()
    assert not redis_cache().lock("lock:acl", timeout=10, blocking_timeout=0.1).acquire()
    held.release()
    # django-redis would send FLUSHDB, which this user may not run; the project's client scans its prefix.
    cache.clear()
    assert cache.get("report") is None


def test_the_beat_lock_is_taken_and_refreshed_for_an_acl_user(acl_redis, settings, tmp_path):
    use_cache_on(settings, acl_redis)
    settings.BEAT_HEARTBEAT_FILE = str(tmp_path / "heartbeat")
    with broker_on(acl_redis):
        scheduler = HeartbeatDatabaseScheduler(app=celery_app)
        try:
            scheduler.tick()
            assert scheduler.holds_lock
            scheduler.tick()  # the refresh (a Lua script) is allowed too
            assert scheduler.holds_lock
            assert scheduler.lock_holder() == scheduler.lock_token
        finally:
            scheduler.close()


def test_a_worker_takes_tasks_and_stores_results_through_an_acl_user(acl_redis, settings):
    use_cache_on(settings, acl_redis)
    outcome = worker_delivers_and_stores(acl_redis, hostname=f"acl-{uuid.uuid4().hex[:6]}")
    assert outcome["delivery"]["payload"] == {"shape": outcome["delivery"]["payload"]["shape"]}
    if celery_app.conf.result_backend:
        assert outcome["result"] == 3
    assert "NOPERM" not in outcome["log"]
    assert "no permissions" not in outcome["log"]
    assert outcome["probe"].startswith("healthy"), outcome["probe"]


def test_healthz_reports_memory_unknown_for_an_acl_user_and_stays_healthy(acl_redis, settings, client):
    use_cache_on(settings, acl_redis)
    with broker_on(acl_redis):
        response = client.get(reverse("healthz"))
    assert response.status_code == 200
    body = response.json()
    assert body["checks"] == {"database": "ok", "redis": "ok", "cache": "ok"}
    assert body["redis_memory"]["state"] == "unknown"
