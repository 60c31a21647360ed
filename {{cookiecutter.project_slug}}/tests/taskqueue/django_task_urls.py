"""A URLconf whose view enqueues a Django task inside a transaction that commits or rolls back."""

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path

from tests.taskqueue.django_task_functions import add_and_record


class RolledBack(Exception):
    """Raised to leave the atomic block the way a failed request does."""


def enqueue_in_a_transaction(request: HttpRequest) -> JsonResponse:
    marker, queue = request.GET["marker"], request.GET.get("queue", "default")
    try:
        with transaction.atomic():
            result = add_and_record.using(queue_name=queue).enqueue(marker, 2, 3)
            if request.GET.get("outcome") == "rollback":
                raise RolledBack
    except RolledBack:
        return JsonResponse({"id": result.id, "committed": False})
    return JsonResponse({"id": result.id, "committed": True})


urlpatterns = [path("django-task/", enqueue_in_a_transaction)]
