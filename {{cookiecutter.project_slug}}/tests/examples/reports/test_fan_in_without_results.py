"""The fan-in without a result backend: the last page sends the build, once, with every page in order."""

import pytest
from celery.backends.base import DisabledBackend

from {{ cookiecutter.project_slug }}.examples.reports.tasks import fetch_page, generate_report
from tests.examples.reports.sales_api import CSV, DAY, PAGES
from tests.examples.reports.test_tasks import report_csv, wait_for_report
from tests.support.http_server import Reply
from tests.taskqueue.tasks import add

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_workers", "media_root")]


def test_results_are_disabled_without_a_result_backend():
    assert isinstance(add.app.backend, DisabledBackend)


def test_a_page_delivered_twice_does_not_send_the_build_early(sales_api, task_events):
    last = len(PAGES)
    sales_api.server.script(sales_api.page_path(last), Reply(delay=3, json={"items": PAGES[-1]}))
    generate_report.delay(DAY.isoformat())
    task_events.wait_for("reports.fetch_page", "succeeded", count=last - 1)
    # What a redelivery after a lost worker looks like: page 1 arrives a second time.
    fetch_page.delay(DAY.isoformat(), 1)
    task_events.wait_for("reports.fetch_page", "succeeded", count=last)
    assert task_events.of("reports.build_report", "published") == []

    wait_for_report()
    assert report_csv() == CSV
    (build,) = task_events.of("reports.build_report", "published")
    assert build.args == (PAGES, DAY.isoformat())


def test_no_page_results_are_kept():
    assert fetch_page.ignore_result is True
