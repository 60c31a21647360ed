"""Tasks that exist only for the tests: they record how they were delivered."""

from celery import shared_task
from django.core.cache import cache


@shared_task(name="core_tests.record_delivery", bind=True)
def record_delivery(self, marker: str, payload: dict) -> None:
    cache.set(
        f"delivery:{marker}",
        {
            "queue": self.request.delivery_info.get("routing_key"),
            "payload": payload,
        },
        timeout=60,
    )


@shared_task(name="reports.fetch_test_page", bind=True)
def fetch_test_page(self, marker: str) -> None:
    """Named like an I/O task, so the route `reports.fetch_*` sends it to the io queue."""
    cache.set(f"delivery:{marker}", {"queue": self.request.delivery_info.get("routing_key")}, timeout=60)


@shared_task(name="core_tests.add", ignore_result=False)
def add(left: int, right: int) -> int:
    return left + right
