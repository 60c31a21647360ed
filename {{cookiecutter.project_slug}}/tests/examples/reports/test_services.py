"""The report logic and the API client, without Celery."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from {{ cookiecutter.project_slug }}.examples.reports import api_client, services
from tests.examples.reports.sales_api import CSV, DAY, PAGES
from tests.support.http_server import Reply


def test_aggregate_counts_orders_and_sums_amounts_per_region():
    assert services.aggregate(PAGES) == [
        ("APAC", 1, Decimal("7.00")),
        ("EU", 2, Decimal("11.75")),
        ("US", 1, Decimal("4.00")),
    ]


def test_build_report_writes_the_csv_and_marks_the_report_ready(media_root):
    assert services.report_status(DAY) == {"status": "pending"}
    name = services.build_report(day=DAY, pages=PAGES)
    assert default_storage.open(name).read().decode() == CSV
    assert services.report_status(DAY) == {"status": "ready", "url": default_storage.url(name)}


def test_building_twice_overwrites_the_same_file(media_root):
    first = services.build_report(day=DAY, pages=PAGES)
    second = services.build_report(day=DAY, pages=PAGES[:1])
    assert first == second == services.report_name(DAY)
    assert default_storage.open(second).read().decode() == "region,orders,total\r\nEU,1,10.50\r\nUS,1,4.00\r\n"


def test_client_reads_the_page_count_and_a_page(sales_api):
    assert api_client.fetch_page_count(DAY) == 3
    assert api_client.fetch_page(DAY, 2) == PAGES[1]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(sales_api, status):
    sales_api.server.script(sales_api.page_path(1), Reply(status))
    with pytest.raises(api_client.TransientSalesAPIError):
        api_client.fetch_page(DAY, 1)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_other_than_429_are_permanent(sales_api, status):
    sales_api.server.script(sales_api.page_path(1), Reply(status))
    with pytest.raises(api_client.PermanentSalesAPIError, match=f"answered {status}; not retried"):
        api_client.fetch_page(DAY, 1)


def test_429_is_transient_and_carries_retry_after(sales_api):
    sales_api.server.script(sales_api.page_path(1), Reply(429, headers={"Retry-After": "7"}))
    with pytest.raises(api_client.RateLimitedError) as raised:
        api_client.fetch_page(DAY, 1)
    assert isinstance(raised.value, api_client.TransientSalesAPIError)
    assert raised.value.retry_after == 7


def test_retry_after_may_be_an_http_date():
    in_a_minute = timezone.now() + timedelta(seconds=60)
    seconds = api_client.parse_retry_after(in_a_minute.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    assert seconds is not None
    assert 50 < seconds <= 60
    assert api_client.parse_retry_after("soon") is None


def test_a_hung_api_is_a_transient_timeout(sales_api, settings):
    settings.REPORTS_API_TIMEOUT = (1, 0.5)
    sales_api.server.script(sales_api.page_path(1), Reply(delay=2, json={"items": []}))
    with pytest.raises(api_client.TransientSalesAPIError, match="ReadTimeout"):
        api_client.fetch_page(DAY, 1)


def test_an_unreachable_api_is_transient(settings):
    settings.REPORTS_API_URL = "http://127.0.0.1:1/api/"  # nothing listens on port 1
    with pytest.raises(api_client.TransientSalesAPIError, match="ConnectionError"):
        api_client.fetch_page_count(DAY)
