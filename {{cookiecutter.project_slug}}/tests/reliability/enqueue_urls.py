"""A URLconf with a view that enqueues the reliability task keyed by the URL, as a web process enqueues it."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from tests.reliability.tasks import apply_effect


def enqueue(request: HttpRequest, key: str) -> HttpResponse:
    apply_effect.delay(key)
    return HttpResponse("enqueued")


urlpatterns = [path("enqueue/<str:key>/", enqueue)]
