"""A URLconf with a view that fails, for the server-error email test."""

from django.urls import path


def fail(request):
    raise RuntimeError("the view failed on purpose")


urlpatterns = [path("fail/", fail)]
