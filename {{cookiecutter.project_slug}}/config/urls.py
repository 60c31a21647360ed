from django.conf import settings
from django.contrib import admin
{%- if cookiecutter.include_examples == "y" %}
from django.urls import include, path
{%- else %}
from django.urls import path
{%- endif %}

from {{ cookiecutter.project_slug }}.health.views import healthz
from {{ cookiecutter.project_slug }}.taskqueue.views import metrics_view, queues_view, start_page

urlpatterns = [
    path("healthz/", healthz, name="healthz"),
    # Prometheus scrapes this (docs/monitoring.md); METRICS_TOKEN guards it.
    path("metrics", metrics_view, name="metrics"),
{%- if cookiecutter.include_examples == "y" %}
    path("reports/", include("{{ cookiecutter.project_slug }}.examples.reports.urls")),
{%- endif %}
    # Before the admin's own URLs, which would otherwise answer this path; staff only, like the admin.
    path(f"{settings.ADMIN_URL}queues/", admin.site.admin_view(queues_view), name="taskqueue-queues"),
    path(settings.ADMIN_URL, admin.site.urls),
]

if settings.DEBUG:
    # A start page for local development; in production `/` is the project's own.
    urlpatterns.append(path("", start_page, name="start-page"))
