"""Daily sales reports: plain functions, tested without Celery; tasks.py wraps them.

A report's status lives in the cache with a TTL: the page that shows it reads the
cache, never the result backend. "pending" (nothing yet), "running", "ready" with the
CSV's URL, or "failed" with the reason (a page fetch or the build failed for good).
"""

import csv
import io
import logging
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from django.core.cache import cache
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from {{ cookiecutter.project_slug }}.examples.reports import api_client, fan_in

logger = logging.getLogger(__name__)

# A run that has not finished in this time is considered dead, and the next one may start.
RUNNING_TTL = 60 * 60
READY_TTL = 7 * 24 * 60 * 60
FAILED_TTL = 24 * 60 * 60


def yesterday() -> date:
    return timezone.localdate() - timedelta(days=1)


def _status_key(day: date) -> str:
    return f"reports:status:{day.isoformat()}"


def report_status(day: date) -> dict:
    return cache.get(_status_key(day)) or {"status": "pending"}


def report_name(day: date) -> str:
    return f"reports/sales-{day.isoformat()}.csv"


def start_report(*, day: date) -> bool:
    """Fan the day's pages out to the io workers, unless a run is under way or done; return whether it started.

    The caller holds the day's lock (tasks.generate_report), so two runs cannot both
    find the status "pending" and both start.
    """
    state = report_status(day)["status"]
    if state not in {"pending", "failed"}:
        logger.info("Report for %s skipped: already %s", day, state)
        return False
    page_count = api_client.fetch_page_count(day)
    cache.set(_status_key(day), {"status": "running"}, timeout=RUNNING_TTL)
    fan_in.start(day, page_count)
    return True


def report_failed(*, day: date, reason: str) -> None:
    """Show the run as failed now, rather than "running" until RUNNING_TTL; the next run may start at once."""
    logger.error("Report for %s failed: %s", day, reason)
    cache.set(_status_key(day), {"status": "failed", "reason": reason}, timeout=FAILED_TTL)


def aggregate(pages: list[list[dict]]) -> list[tuple[str, int, Decimal]]:
    """(region, orders, total) for every region, sorted by region."""
    orders: dict[str, int] = defaultdict(int)
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for page in pages:
        for item in page:
            orders[item["region"]] += 1
            totals[item["region"]] += Decimal(item["amount"])
    return [(region, orders[region], totals[region]) for region in sorted(orders)]


def build_report(*, day: date, pages: list[list[dict]]) -> str:
    """Write the day's CSV to storage and mark the report ready; return the file name. Idempotent."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["region", "orders", "total"])
    writer.writerows(aggregate(pages))
    name = report_name(day)
    # Delete first: storage.save() would otherwise pick a new name rather than overwrite.
    default_storage.delete(name)
    saved = default_storage.save(name, ContentFile(out.getvalue().encode()))
    cache.set(_status_key(day), {"status": "ready", "url": default_storage.url(saved)}, timeout=READY_TTL)
    return saved


def export_name(day: date) -> str:
    return f"exports/sales-{day.isoformat()}.csv"


def archive_export(*, day: date, partial: Path) -> str:
    """Download the day's raw export into ``partial``, then store it; return the stored name.

    The download lands in a local file first, so storage never holds half an export.
    The caller removes ``partial`` if the download is interrupted (tasks.archive_export).
    """
    with partial.open("wb") as out:
        for chunk in api_client.stream_export(day):
            out.write(chunk)
    name = export_name(day)
    default_storage.delete(name)
    with partial.open("rb") as downloaded:
        saved = default_storage.save(name, File(downloaded))
    partial.unlink()
    return saved
