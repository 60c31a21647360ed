"""Test fixtures: a real Redis and a real Celery worker, shared by the whole session.

Task tests must go through serialisation, routing and the broker, so there is no
eager mode and no fake Redis here (P33).
"""

import contextlib
import gc
import os

import pytest
from celery.contrib.testing.worker import start_worker
from celery.result import AsyncResult
from django.conf import settings
from django.core.cache import cache, caches

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.testing.redis_server import RedisServer
from {{ cookiecutter.project_slug }}.testing.task_events import TaskEvents

WORKER_QUEUES = ["default", "io", "cpu"]


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
    settings.REDIS_URL = url
    settings.CACHES["default"]["LOCATION"] = url
    # The test database setup (createcachetable) may already have opened the cache: reopen it.
    with contextlib.suppress(AttributeError):
        del caches["default"]
    celery_app.conf.broker_url = url
    if str(celery_app.conf.result_backend or "").startswith("redis"):
        celery_app.conf.result_backend = url
    yield url
    _forget_pending_results()
    if server is not None:
        server.stop(remove_data=True)


def _forget_pending_results():
    """Stop waiting for results nobody reads, such as a chord's header results in the worker thread.

    On the Redis result backend each holds a pubsub subscription: freed at exit, with Redis
    already stopped, each one retries the dead connection for many seconds.
    """
    gc.collect()
    for result in [obj for obj in gc.get_objects() if isinstance(obj, AsyncResult)]:
        result.backend.remove_pending_result(result)


@pytest.fixture(autouse=True)
def _empty_redis(redis_url):
    """Each test starts with no queued messages, locks or cached values."""
    cache.clear()


@pytest.fixture(scope="session")
def celery_worker(redis_url, django_db_blocker):
    """A real worker consuming every project queue, in a thread of the test process.

    Tests that use it need `@pytest.mark.django_db(transaction=True)`, so the worker's
    own database connection sees the rows the test committed.
    """
    with (
        django_db_blocker.unblock(),
        start_worker(
            celery_app,
            pool="threads",
            concurrency=4,
            queues=WORKER_QUEUES,
            perform_ping_check=False,
            shutdown_timeout=30,
        ) as worker,
    ):
        yield worker


@pytest.fixture
def task_events():
    """What Celery signals report during the test: sends, starts, retries, failures, expiries."""
    with TaskEvents() as events:
        yield events


@pytest.fixture
def media_root(settings, tmp_path):
    """Files the test (or the in-process worker) stores go to a temp dir."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT
