"""The project pointed at one Redis shape (an ACL user, TLS): its settings, a real worker, its cache, its results.

Each helper applies the project's own settings logic (config/redis_roles.py) to the shape's REDIS_URL, as a
deployment that sets only REDIS_URL (and REDIS_CA_CERTS for TLS) would get.
"""

import contextlib
import subprocess
from collections.abc import Iterator

from django.core.cache import cache
from kombu import Connection

from config import redis_roles
from config.celery_app import app as celery_app
from tests.support.database import database_url
from tests.support.waiting import wait_until
from tests.taskqueue.tasks import add, record_delivery
from tools.procfile import PROJECT_DIR, ProcfileProcess
from tools.redis_server import RedisServer


def ca_certs(server: RedisServer) -> str:
    return str(server.tls.ca_file) if server.tls else ""


def use_cache_on(settings, server: RedisServer, ca: str | None = None) -> None:
    """Point this process's cache at the shape's cache database, with the TLS options settings derive."""
    url = redis_roles.role_url(server.url, "cache")
    tls = redis_roles.tls_options(url, ca_certs(server) if ca is None else ca) or {}
    default = settings.CACHES["default"]
    # Assigning CACHES resets Django's cache handler: `cache` connects to the new location.
    settings.CACHES = {
        "default": {**default, "LOCATION": url, "OPTIONS": {**default["OPTIONS"], "CONNECTION_POOL_KWARGS": tls}}
    }


@contextlib.contextmanager
def celery_conf(**values) -> Iterator[None]:
    """Celery settings changed for the block (monkeypatch cannot restore a key the app reads as unset)."""
    conf = celery_app.conf
    before = {key: conf.get(key) for key in values}
    conf.update(values)
    try:
        yield
    finally:
        conf.update(before)


def broker_on(server: RedisServer):
    """This process's broker URL (metrics, /healthz/, the beat's tick record) on the shape, for a with block."""
    return celery_conf(broker_url=server.url, broker_use_ssl=redis_roles.tls_options(server.url, ca_certs(server)))


def broker_connection(server: RedisServer, ca: str | None = None) -> Connection:
    """A connection for sending to the shape's broker, as settings configure it."""
    tls = redis_roles.tls_options(server.url, ca_certs(server) if ca is None else ca)
    return celery_app.connection_for_write(server.url, ssl=tls)


def result_backend(server: RedisServer):
    """The result backend a worker on the shape stores into: the shape's results database, or the test database."""
    if not str(celery_app.conf.result_backend or "").startswith("redis"):
        return celery_app.backend
    with celery_conf(redis_backend_use_ssl=redis_roles.tls_options(server.url, ca_certs(server))):
        # The backend reads its TLS options when it is made.
        return type(celery_app.backend)(app=celery_app, url=redis_roles.role_url(server.url, "results"))


def worker_probe(node: str) -> subprocess.CompletedProcess:
    """compose/healthcheck-worker for a worker started here under ``-n node@%h`` (its heartbeat in the default dir)."""
    return subprocess.run(
        [str(PROJECT_DIR / "compose/healthcheck-worker"), node], capture_output=True, text=True, timeout=30
    )


@contextlib.contextmanager
def worker_on(server: RedisServer, hostname: str) -> Iterator[ProcfileProcess]:
    """The Procfile's default-queue worker, configured by REDIS_URL (and REDIS_CA_CERTS) alone."""
    worker = ProcfileProcess(
        "worker",
        env={
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "REDIS_URL": server.url,
            "REDIS_CA_CERTS": ca_certs(server),
            "DATABASE_URL": database_url(),
        },
        # The test tasks (tests/taskqueue/tasks.py) are not in an installed app: the worker imports them too.
        extra_args=f"--concurrency 1 --hostname {hostname}@%h --without-mingle --without-gossip"
        " --include tests.taskqueue.tasks",
    ).start()
    try:
        worker.wait_for_output(" ready.", timeout=60)
        yield worker
    finally:
        worker.stop()


def worker_delivers_and_stores(server: RedisServer, hostname: str) -> dict:
    """Through a real worker on the shape: a task's cache write, a task's stored result, its probe, and its log.

    The caller's cache must point at the shape (use_cache_on). Sending uses the broker, the worker's
    task writes the cache, and (when the project has a result backend) the result goes where settings say.
    """
    marker = f"{hostname}-delivery"
    outcome = {}
    with worker_on(server, hostname) as worker, broker_connection(server) as broker:
        record_delivery.apply_async([marker, {"shape": hostname}], connection=broker)
        outcome["delivery"] = wait_until(
            lambda: cache.get(f"delivery:{marker}"), timeout=30, what=f"the delivery; worker log:\n{worker.output()}"
        )
        if celery_app.conf.result_backend:
            backend = result_backend(server)
            sent = add.apply_async([1, 2], connection=broker)
            meta = wait_until(
                lambda: (meta := backend.get_task_meta(sent.id))["status"] == "SUCCESS" and meta,
                timeout=30,
                what="the stored result",
            )
            outcome["result"] = meta["result"]
        # The health check of the worker's container, which reads the heartbeat its event loop touches.
        outcome["probe"] = worker_probe(hostname).stdout
        outcome["log"] = worker.output()
    return outcome
