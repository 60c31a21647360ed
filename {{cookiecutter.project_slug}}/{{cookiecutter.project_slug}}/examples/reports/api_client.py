"""The external sales API the reports read, with every failure sorted into "retry" or "don't".

Endpoints, relative to settings.REPORTS_API_URL:
    GET sales/<day>/                 {"pages": 3}
    GET sales/<day>/pages/<n>/       {"items": [{"region": "EU", "amount": "12.50"}, ...]}
    GET sales/<day>/export.csv       the day's raw export (large, streamed)
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin

import requests
from django.conf import settings
from django.utils import timezone

EXPORT_CHUNK_BYTES = 64 * 1024


class SalesAPIError(Exception):
    pass


class TransientSalesAPIError(SalesAPIError):
    """Timeouts, connection errors and 5xx: the same request may well work later."""


class RateLimitedError(TransientSalesAPIError):
    """429: the API says when to come back (Retry-After, in seconds), or None if it did not say."""

    def __init__(self, message: str, retry_after: float | None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentSalesAPIError(SalesAPIError):
    """4xx other than 429: the request itself is wrong, so repeating it cannot help."""


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either a number of seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when: datetime = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


def _check(response: requests.Response) -> None:
    request = f"GET {response.url}"
    if response.status_code == 429:
        raise RateLimitedError(f"{request} answered 429", parse_retry_after(response.headers.get("Retry-After")))
    if response.status_code >= 500:
        raise TransientSalesAPIError(f"{request} answered {response.status_code}")
    if response.status_code >= 400:
        raise PermanentSalesAPIError(f"{request} answered {response.status_code}; not retried, it would fail again")


@contextmanager
def _get(path: str, *, stream: bool = False) -> Iterator[requests.Response]:
    url = urljoin(settings.REPORTS_API_URL, path)
    try:
        # Always a timeout: without one a hung API holds a worker slot forever.
        with requests.get(url, timeout=settings.REPORTS_API_TIMEOUT, stream=stream) as response:
            _check(response)
            yield response
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise TransientSalesAPIError(f"GET {url}: {type(exc).__name__}: {exc}") from exc


def fetch_page_count(day: date) -> int:
    with _get(f"sales/{day.isoformat()}/") as response:
        return int(response.json()["pages"])


def fetch_page(day: date, page: int) -> list[dict]:
    with _get(f"sales/{day.isoformat()}/pages/{page}/") as response:
        return response.json()["items"]


def stream_export(day: date) -> Iterator[bytes]:
    """The day's raw export in chunks; a stalled or broken stream raises TransientSalesAPIError."""
    with _get(f"sales/{day.isoformat()}/export.csv", stream=True) as response:
        yield from response.iter_content(EXPORT_CHUNK_BYTES)
