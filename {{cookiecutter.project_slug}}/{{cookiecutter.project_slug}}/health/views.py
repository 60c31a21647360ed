import logging
from typing import Any

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from redis.exceptions import NoPermissionError

from {{ cookiecutter.project_slug }}.health import probes
from {{ cookiecutter.project_slug }}.taskqueue import broker_redis
from {{ cookiecutter.project_slug }}.taskqueue.views import bears_metrics_token

logger = logging.getLogger(__name__)


def _broker_ok() -> bool:
    return bool(broker_redis.client().ping())


def broker_memory() -> dict:
    """The broker's used memory against its maxmemory; "unknown" where INFO is refused (ACL without @dangerous)."""
    try:
        info = broker_redis.client().info("memory")
    except NoPermissionError:
        return {"state": "unknown", "reason": "this Redis user may not run INFO"}
    used, limit = int(info["used_memory"]), int(info.get("maxmemory", 0))
    if not limit:
        # No limit: Redis grows until the kernel kills it. The compose files set one (docs/practices.md, P12).
        return {"state": "no-limit", "used_bytes": used}
    ratio = used / limit
    state = "near-limit" if ratio >= settings.HEALTH_REDIS_MEMORY_WARNING_RATIO else "ok"
    return {"state": state, "used_bytes": used, "maxmemory_bytes": limit, "used_ratio": round(ratio, 3)}


@never_cache
def healthz(request):
    """Liveness of the web process and the services it cannot work without, and the broker's memory.

    200 when the database, the broker's Redis and the cache's Redis answer, 503 (with the failing part named)
    otherwise. A broker near its maxmemory answers 200 with status "degraded": restarting web would not
    free Redis memory, but someone must look before noeviction starts refusing every new task.

    Probes and uptime checks call it without credentials: they get the states. The memory figures (bytes used,
    the limit) describe the deployment, so only a caller with the /metrics bearer token (METRICS_TOKEN) gets them.

    ``/healthz/?ready`` is the readiness of one web pod: the database only. Redis is shared by every pod, so a
    Redis blip would take all of them out of the Service at once, while every page that enqueues nothing still
    works and an enqueue fails within its own timeouts; the full check stays for alerts and uptime monitors.
    """
    if "ready" in request.GET:
        return probes.readiness()
    checks = probes.run((("database", probes.database_ok), ("redis", _broker_ok), ("cache", probes.cache_ok)))
    healthy = all(state == "ok" for state in checks.values())
    body: dict[str, Any] = {"status": "ok" if healthy else "error", "checks": checks}
    if checks["redis"] == "ok":
        try:
            body["redis_memory"] = broker_memory()
        except Exception:  # memory is advice: its failure must not fail the health check
            logger.warning("Reading the broker's memory failed", exc_info=True)
            body["redis_memory"] = {"state": "unknown", "reason": "INFO failed"}
        if body["redis_memory"]["state"] == "near-limit":
            body["status"] = "degraded"
            logger.warning("The broker's Redis is near its maxmemory: %s", body["redis_memory"])
        if not bears_metrics_token(request):
            body["redis_memory"] = {
                key: body["redis_memory"][key] for key in ("state", "reason") if key in body["redis_memory"]
            }
    return JsonResponse(body, status=200 if healthy else 503)
