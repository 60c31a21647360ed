from datetime import date

from django.http import Http404, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from {{ cookiecutter.project_slug }}.examples.reports.services import report_status


@require_GET
@never_cache
def report_status_view(request, day: str):
    """The report's status, read from the cache.

    {"day", "status": "pending" | "running" | "ready" | "failed"}, with "url" when ready and "reason" when failed.
    """
    if not request.user.is_authenticated:
        return JsonResponse({"error": "authentication required"}, status=401)
    try:
        report_day = date.fromisoformat(day)
    except ValueError:
        raise Http404("not a date") from None
    return JsonResponse({"day": report_day.isoformat(), **report_status(report_day)})
