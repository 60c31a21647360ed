"""Tasks that exist only for the tests: they record how they were delivered."""

from celery import shared_task
from django.core.cache import cache

from {{ cookiecutter.project_slug }}.testing.waiting import wait_until


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


@shared_task(name="core_tests.add_when_released", ignore_result=False)
def add_when_released(left: int, right: int, gate: str) -> int:
    """A task that keeps running until the test sets the cache key ``gate`` (30 s at most)."""
    wait_until(lambda: cache.get(gate), timeout=30, what=f"the test to set {gate}")
    return left + right


@shared_task(name="core_tests.collect")
def collect(results: list, marker: str) -> None:
    """A chord callback that records what it was given and how many times it ran."""
    cache.add(f"collect:{marker}:runs", 0, timeout=60)
    cache.incr(f"collect:{marker}:runs")
    cache.set(f"collect:{marker}:results", results, timeout=60)


@shared_task(name="core_tests.retry_once", bind=True, ignore_result=False)
def retry_once(self, value: int) -> int:
    """Fails its first attempt and asks to be retried at once; returns ``value`` from the second."""
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    return value
