from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from {{ cookiecutter.project_slug }}.core.views import healthz

urlpatterns = [
    path("healthz/", healthz, name="healthz"),
    path("reports/", include("{{ cookiecutter.project_slug }}.reports.urls")),
    path(settings.ADMIN_URL, admin.site.urls),
]
