"""Test fixtures: a real Redis and real Celery workers, shared by the whole session.

Task tests go through serialisation, routing to each task's queue and the broker, so there is
no eager mode and no fake Redis here. The workers run in threads of the test process, one per
queue, as the Procfile runs one worker process per queue.
"""

import contextlib
import gc
import os

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.result import AsyncResult
from django.conf import settings
from django.core.cache import caches
from kombu.asynchronous import set_event_loop

from config import redis_roles
from config.celery_app import app as celery_app
from tests.support.task_events import TaskEvents
from tools.redis_server import RedisServer

# One in-process worker per queue, as in the Procfile; threads here, so time limits are not enforced.
WORKER_CONCURRENCY = {"default": 2, "io": 4, "cpu": 2}


@pytest.fixture(scope="session", autouse=True)
def redis_url():
    """The Redis at REDIS_URL if set, else a redis-server started for this session.

    Settings are imported before any fixture runs, so the URL is applied here to the
    cache, the broker and (when it is Redis) the result backend.
    """
    server = None
    url = os.environ.get("REDIS_URL")
    if not url:
        server = RedisServer().start()
        url = server.url
    settings.REDIS_URL = settings.CELERY_BROKER_URL = url
    # Each role in its own database, as config/redis_roles.py derives them from REDIS_URL.
    settings.REDIS_CACHE_URL = settings.CACHES["default"]["LOCATION"] = redis_roles.role_url(url, "cache")
    # The test database setup (createcachetable) may already have opened the cache: reopen it.
    with contextlib.suppress(AttributeError):
        del caches["default"]
    celery_app.conf.broker_url = url
    if str(celery_app.conf.result_backend or "").startswith("redis"):
        celery_app.conf.result_backend = redis_roles.role_url(url, "results")
    yield url
    _forget_pending_results()
    if server is not None:
        server.stop(remove_data=True)


def _forget_pending_results():
    """Stop waiting for results nobody reads, such as a chord's header results in a worker thread.

    On the Redis result backend each holds a pubsub subscription: freed at exit, with Redis
    already stopped, each one retries the dead connection for many seconds.
    """
    gc.collect()
    for result in [obj for obj in gc.get_objects() if isinstance(obj, AsyncResult)]:
        result.backend.remove_pending_result(result)


@pytest.fixture(scope="session")
def _role_databases(redis_url):
    clients = [redis.Redis.from_url(redis_roles.role_url(redis_url, role)) for role in redis_roles.DATABASE_OFFSETS]
    yield clients
    for client in clients:
        client.close()


@pytest.fixture(autouse=True)
def _empty_redis(_role_databases):
    """Each test starts with no queued messages, results, locks or cached values."""
    for client in _role_databases:
        client.flushdb()


@pytest.fixture(scope="session")
def celery_workers(redis_url, django_db_blocker):
    """Real workers, one per queue (each consumes only its queue, as the Procfile's do), in this process.

    Tests that use them need `@pytest.mark.django_db(transaction=True)`, so the workers' own
    database connections see the rows the test committed.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(django_db_blocker.unblock())
        workers = {}
        for queue, concurrency in WORKER_CONCURRENCY.items():
            # A worker's event loop is kombu's process-wide one if there is one already: each of these
            # workers needs its own, or they share one poller and timer (rate limits, ETAs stall).
            set_event_loop(None)
            workers[queue] = stack.enter_context(
                start_worker(
                    celery_app,
                    pool="threads",
                    concurrency=concurrency,
                    queues=[queue],
                    hostname=f"{queue}@tests",
                    perform_ping_check=False,
                    shutdown_timeout=30,
                )
            )
        set_event_loop(None)
        yield workers


@pytest.fixture(scope="session")
def celery_worker(celery_workers):
    """Every queue consumed (the workers of celery_workers); the default queue's worker."""
    return celery_workers["default"]


@pytest.fixture
def task_events():
    """What Celery signals report during the test: sends, starts, retries, failures, expiries."""
    with TaskEvents() as events:
        yield events


@pytest.fixture
def media_root(settings, tmp_path):
    """Files the test (or an in-process worker) stores go to a temp dir."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT
