import logging

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django_redis import get_redis_connection

from config.celery_app import app
from {{ cookiecutter.project_slug }}.taskqueue import state_redis

logger = logging.getLogger(__name__)


def _database_ok() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone() == (1,)


def _broker_ok() -> bool:
    # One connection from the app's pool (CELERY_BROKER_CONNECTION_TIMEOUT bounds the connect), no retry: a probe.
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        return conn.connected


def _state_ok() -> bool:
    return bool(state_redis.client().ping())


def _cache_ok() -> bool:
    return bool(get_redis_connection("default").ping())


@never_cache
def healthz(request):
    """Liveness of the web process and the services it cannot work without.

    200 when the database, RabbitMQ (the broker), the state Redis and the cache's Redis answer, 503 (with the failing
    part named) otherwise.

    ``/healthz/?ready`` is the readiness of one web pod: the database only. The broker and Redis are shared by every
    pod, so a blip would take all of them out of the Service at once, while every page that enqueues nothing still
    works and an enqueue fails within its own timeouts; the full check stays for alerts and uptime monitors.
    """
    if "ready" in request.GET:
        try:
            ready = _database_ok()
        except Exception:  # any failure of the probe means not ready, whatever its type
            logger.warning("Readiness check of the database failed", exc_info=True)
            ready = False
        return JsonResponse({"status": "ok" if ready else "error", "checks": {"database": "ok" if ready else "error"}},
                            status=200 if ready else 503)  # fmt: skip
    checks = {}
    probes = (("database", _database_ok), ("broker", _broker_ok), ("redis", _state_ok), ("cache", _cache_ok))
    for name, probe in probes:
        try:
            checks[name] = "ok" if probe() else "error"
        except Exception:  # any failure of the probe means unhealthy, whatever its type
            logger.warning("Health check %s failed", name, exc_info=True)
            checks[name] = "error"
    healthy = all(state == "ok" for state in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503)
