"""What ``/healthz/`` runs (views.py): each probe answers True, or fails the check it is named for."""

import logging
from collections.abc import Callable, Iterable

from django.db import connection
from django.http import JsonResponse
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)


def database_ok() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone() == (1,)


def cache_ok() -> bool:
    return bool(get_redis_connection("default").ping())


def readiness() -> JsonResponse:
    """``/healthz/?ready``: the database alone (the healthz view says why)."""
    try:
        ready = database_ok()
    except Exception:  # any failure of the probe means not ready, whatever its type
        logger.warning("Readiness check of the database failed", exc_info=True)
        ready = False
    state = "ok" if ready else "error"
    return JsonResponse({"status": state, "checks": {"database": state}}, status=200 if ready else 503)


def run(probes: Iterable[tuple[str, Callable[[], bool]]]) -> dict[str, str]:
    """Each probe's state by name: "ok", or "error" when it answers False or raises (logged with its traceback)."""
    checks = {}
    for name, probe in probes:
        try:
            checks[name] = "ok" if probe() else "error"
        except Exception:  # any failure of the probe means unhealthy, whatever its type
            logger.warning("Health check %s failed", name, exc_info=True)
            checks[name] = "error"
    return checks
