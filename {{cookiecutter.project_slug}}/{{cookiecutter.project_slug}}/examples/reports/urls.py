from django.urls import path

from {{ cookiecutter.project_slug }}.examples.reports.views import report_status_view

app_name = "reports"
urlpatterns = [
    path("<str:day>/", report_status_view, name="status"),
]
