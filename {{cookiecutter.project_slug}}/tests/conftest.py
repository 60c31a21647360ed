{% if cookiecutter.broker == "rabbitmq" -%}
"""Test fixtures: a real RabbitMQ, a real Redis and real Celery workers, shared by the whole session.
{%- else -%}
"""Test fixtures: a real Redis and real Celery workers, shared by the whole session.
{%- endif %}

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

{% if cookiecutter.broker == "rabbitmq" -%}
from config import broker_rabbitmq, redis_roles
{%- else -%}
from config import redis_roles
{%- endif %}
from config.celery_app import app as celery_app
from tests.support.own_broker import OwnBroker
from tests.support.task_events import TaskEvents
{%- if cookiecutter.broker == "rabbitmq" %}
from tools.rabbitmq_server import RabbitMQServer
{%- endif %}
from tools.redis_server import RedisServer

# One in-process worker per queue, as in the Procfile; threads here, so time limits are not enforced.
WORKER_CONCURRENCY = {"default": 2, "io": 4, "cpu": 2}


{% if cookiecutter.broker == "rabbitmq" -%}
@pytest.fixture(scope="session")
def rabbitmq_node():
    """A RabbitMQ node started for this session: loopback, a temp dir, its own ports (tools/rabbitmq_server.py)."""
    node = RabbitMQServer().start()
    yield node
    node.stop(remove_data=True)


@pytest.fixture(scope="session", autouse=True)
def rabbitmq_url(rabbitmq_node):
    """The broker of this session: a virtual host on the session's node with the project's queues declared."""
    url = rabbitmq_node.add_vhost("tests")
    settings.CELERY_BROKER_URL = celery_app.conf.broker_url = url
    with celery_app.connection_for_write() as connection:
        broker_rabbitmq.declare(connection, settings.CELERY_TASK_QUEUES)
    return url


@pytest.fixture(autouse=True)
def _empty_queues(rabbitmq_url):
    """Each test starts with no message waiting in a task queue or the dead-letter queue."""
    with celery_app.connection_for_write() as connection, connection.channel() as channel:
        for queue in (*settings.CELERY_TASK_QUEUES, broker_rabbitmq.DEAD_LETTER_QUEUE):
            queue.bind(channel).purge()


@pytest.fixture(scope="session", autouse=True)
def redis_url(rabbitmq_url):
    """The Redis at REDIS_URL if set, else a redis-server started for this session.

    Settings are imported before any fixture runs, so the URL is applied here to the state Redis,
    the cache and (when it is Redis) the result backend.
    """
    server = None
    url = os.environ.get("REDIS_URL")
    if not url:
        server = RedisServer().start()
        url = server.url
    settings.REDIS_URL = url
    settings.REDIS_STATE_URL = redis_roles.role_url(url, "state")
{%- else -%}
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
{%- endif %}
    # Each role in its own database, as config/redis_roles.py derives them from REDIS_URL.
    settings.REDIS_CACHE_URL = settings.CACHES["default"]["LOCATION"] = redis_roles.role_url(url, "cache")
    # The test database setup (createcachetable) may already have opened the cache: reopen it.
    with contextlib.suppress(AttributeError):
        del caches["default"]
{%- if cookiecutter.broker == "redis" %}
    celery_app.conf.broker_url = url
{%- endif %}
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


@contextlib.contextmanager
def _own_brokers(redis_url: str{% if cookiecutter.broker == "rabbitmq" %}, node: RabbitMQServer{% endif %}):
    made = []

    def make(database: int) -> OwnBroker:
        database_url = f"{redis_url.rsplit('/', 1)[0]}/{database}"
        broker = OwnBroker({% if cookiecutter.broker == "rabbitmq" %}node, {% endif %}database_url)
        made.append(broker)
        return broker

    try:
        yield make
    finally:
        for broker in made:
            broker.close()


@pytest.fixture
def own_broker(redis_url{% if cookiecutter.broker == "rabbitmq" %}, rabbitmq_node{% endif %}):
    """``own_broker(n)``: a broker of the test's own for the worker processes it starts, with Redis database n of the
    session's server for their state (tests/support/own_broker.py). Each is emptied when made and closed when the test
    ends{% if cookiecutter.broker == "rabbitmq" %}: its virtual host is deleted with its queues. Kept to the session's end, each one's 32 quorum
    queues (a worker declares the delay queues too) went on ticking on the session's node, from 18 tests by the last
    ones (tests/test_own_broker.py){% endif %}."""
    with _own_brokers(redis_url{% if cookiecutter.broker == "rabbitmq" %}, rabbitmq_node{% endif %}) as make:
        yield make


@pytest.fixture(scope="module")
def module_own_broker(redis_url{% if cookiecutter.broker == "rabbitmq" %}, rabbitmq_node{% endif %}):
    """``own_broker`` for a module's fixtures (a worker process that serves the module's tests): closed when the module
    ends."""
    with _own_brokers(redis_url{% if cookiecutter.broker == "rabbitmq" %}, rabbitmq_node{% endif %}) as make:
        yield make


@pytest.fixture
def session_broker(redis_url{% if cookiecutter.broker == "rabbitmq" %}, rabbitmq_node, rabbitmq_url{% endif %}):
    """The session's broker, as an OwnBroker to read (its queues, what is unacked): the in-process workers' one."""
{%- if cookiecutter.broker == "rabbitmq" %}
    broker = OwnBroker(rabbitmq_node, redis_url, vhost=rabbitmq_url.rsplit("/", 1)[1])
{%- else %}
    broker = OwnBroker(redis_url)
{%- endif %}
    yield broker
    broker.close()


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
def broker_at(monkeypatch):
    """``broker_at(url)``: the app's broker for this test only (a server that is down, say). The app's connection and
    producer pools are built on first use with the URL of that moment, by anything that sends a task (the error-email
    log handler does, on the failed probe's log line): they are dropped after the test, as Celery drops them after a
    fork, so the next test's sends build new ones to the session's broker."""
    yield lambda url: monkeypatch.setattr(celery_app.conf, "broker_url", url)
    celery_app._pool = celery_app.amqp._producer_pool = None


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
