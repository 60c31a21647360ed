"""Web views of the task queues: Prometheus's ``/metrics``, the admin's "Task queues" page, the DEBUG start page."""

import hmac

from django.conf import settings
from django.contrib import admin
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from {{ cookiecutter.project_slug }}.taskqueue import metrics
from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask


@require_GET
def bears_metrics_token(request) -> bool:
    """True for ``Authorization: Bearer <METRICS_TOKEN>``, and for every request where no token is set (local)."""
    token = settings.METRICS_TOKEN
    if not token:
        return True
    return hmac.compare_digest(request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode())


def metrics_view(request):
    """Prometheus text; with METRICS_TOKEN set, only for ``Authorization: Bearer <token>``."""
    if not bears_metrics_token(request):
        response = HttpResponse("A bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = "Bearer"
        return response
    # A registry per scrape holding only the collector: every value is read from Redis and the database now,
    # so no process keeps metric state and gunicorn needs no prometheus multiprocess directory.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.TaskQueueCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def queues_view(request):
    """The admin's "Task queues" page: the system at a glance, read from Redis and the database."""
    failures = FailedTask.objects.order_by("-failed_at")[:10]
    context = {
        **admin.site.each_context(request),
        "title": "Task queues",
        "queues": metrics.queue_states(),
        "beat_seconds_since_tick": metrics.beat_seconds_since_tick(),
        "dead_letters_waiting": metrics.dead_letters_waiting(),
        "unpublished_retries": metrics.unpublished_retries(),
        "failures": failures,
        "failed_tasks_url": reverse("admin:taskqueue_failedtask_changelist"),
        "flower_url": getattr(settings, "FLOWER_URL", ""),
    }
    return TemplateResponse(request, "taskqueue/queues.html", context)


def start_page(request):
    """``/`` while DEBUG is on: where everything of the local deployment is."""
    context = {
        "admin_url": reverse("admin:index"),
        "queues_url": reverse("taskqueue-queues"),
        "flower_url": getattr(settings, "FLOWER_URL", ""),
        "mail_url": settings.MAIL_CATCHER_URL,
        "health_url": reverse("healthz"),
        "metrics_url": reverse("metrics"),
    }
    return TemplateResponse(request, "taskqueue/start.html", context)
