import logging

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)


def _database_ok() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone() == (1,)


def _redis_ok() -> bool:
    return bool(get_redis_connection("default").ping())


@never_cache
def healthz(request):
    """Liveness of the web process and the two services it cannot work without.

    200 when the database and Redis answer, 503 (with the failing part named) otherwise.
    """
    checks = {}
    for name, probe in (("database", _database_ok), ("redis", _redis_ok)):
        try:
            checks[name] = "ok" if probe() else "error"
        except Exception:  # any failure of the probe means unhealthy, whatever its type
            logger.warning("Health check %s failed", name, exc_info=True)
            checks[name] = "error"
    healthy = all(state == "ok" for state in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503)
