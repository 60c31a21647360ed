from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from config.celery_app import app
from {{ cookiecutter.project_slug }}.health import probes
from {{ cookiecutter.project_slug }}.taskqueue import state_redis


def _broker_ok() -> bool:
    # One connection from the app's pool (CELERY_BROKER_CONNECTION_TIMEOUT bounds the connect), no retry: a probe.
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        return conn.connected


def _state_ok() -> bool:
    return bool(state_redis.client().ping())


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
        return probes.readiness()
    checks = probes.run(
        (("database", probes.database_ok), ("broker", _broker_ok), ("redis", _state_ok), ("cache", probes.cache_ok))
    )
    healthy = all(state == "ok" for state in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503)
