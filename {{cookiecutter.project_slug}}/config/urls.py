from django.conf import settings
from django.contrib import admin
{%- if cookiecutter.include_examples == "y" %}
from django.urls import include, path
{%- else %}
from django.urls import path
{%- endif %}

from {{ cookiecutter.project_slug }}.health.views import healthz

urlpatterns = [
    path("healthz/", healthz, name="healthz"),
{%- if cookiecutter.include_examples == "y" %}
    path("reports/", include("{{ cookiecutter.project_slug }}.examples.reports.urls")),
{%- endif %}
    path(settings.ADMIN_URL, admin.site.urls),
]
