"""A URLconf with a view that enqueues a task, for the broker-outage tests."""

from django.http import HttpResponse
from django.urls import path

from tests.taskqueue.tasks import record_delivery


def enqueue(request):
    record_delivery.delay("from-a-view", {})
    return HttpResponse("enqueued")


urlpatterns = [path("enqueue/", enqueue)]
