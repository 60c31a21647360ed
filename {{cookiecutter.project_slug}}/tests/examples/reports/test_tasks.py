"""The report pipeline through the broker and a real worker, against a real (loopback) HTTP API."""

import logging

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command

from {{ cookiecutter.project_slug }}.examples.reports import services
from {{ cookiecutter.project_slug }}.examples.reports.tasks import fetch_page, generate_report
from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask
from tests.examples.reports.sales_api import CSV, DAY, PAGES
from tests.support.http_server import Reply
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_workers", "media_root")]


def wait_for_report(day=DAY, timeout: float = 30.0) -> dict:
    return wait_until(
        lambda: services.report_status(day)["status"] == "ready" and services.report_status(day),
        timeout=timeout,
        what=f"the report of {day} to be ready",
    )


def report_csv(day=DAY) -> str:
    return default_storage.open(services.report_name(day)).read().decode()


def test_pipeline_writes_the_csv_and_each_step_runs_on_its_queue(sales_api, task_events):
    generate_report.delay(DAY.isoformat())
    wait_for_report()
    assert report_csv() == CSV
    task_events.wait_for("reports.build_report", "succeeded")
    names = ("reports.generate_report", "reports.fetch_page", "reports.build_report")
    started = [event for name in names for event in task_events.of(name, "started")]
    assert {(event.task, event.queue) for event in started} == {
        ("reports.generate_report", "default"),
        ("reports.fetch_page", "io"),
        ("reports.build_report", "cpu"),
    }
    assert len(task_events.of("reports.fetch_page", "started")) == len(PAGES)


def test_status_endpoint_reads_pending_then_ready_with_a_link(sales_api, client, django_user_model):
    client.force_login(django_user_model.objects.create_user("reader"))
    url = f"/reports/{DAY.isoformat()}/"
    assert client.get(url).json() == {"day": DAY.isoformat(), "status": "pending"}
    generate_report.delay(DAY.isoformat())
    wait_for_report()
    body = client.get(url).json()
    assert body["status"] == "ready"
    assert body["url"] == default_storage.url(services.report_name(DAY))


def test_status_endpoint_needs_a_signed_in_user_and_a_date(client, django_user_model):
    assert client.get(f"/reports/{DAY.isoformat()}/").status_code == 401
    client.force_login(django_user_model.objects.create_user("reader"))
    assert client.get("/reports/yesterday/").status_code == 404


def test_server_errors_are_retried_with_backoff_until_the_page_arrives(sales_api, task_events, caplog):
    sales_api.server.script(sales_api.page_path(2), Reply(500), Reply(503))
    generate_report.delay(DAY.isoformat())
    wait_for_report()
    assert report_csv() == CSV
    assert len(sales_api.requests_to(sales_api.page_path(2))) == 3
    # The retry signal may fire after the retried run already finished: wait for it.
    assert len(task_events.wait_for("reports.fetch_page", "retried", count=2)) == 2
    retry_lines = [record.getMessage() for record in caplog.records if "will retry" in record.getMessage()]
    assert len(retry_lines) == 2
    assert all(line.startswith("Task reports.fetch_page[") for line in retry_lines)


def test_a_hung_api_times_out_and_the_fetch_is_retried(sales_api, settings, task_events):
    hang = settings.REPORTS_API_TIMEOUT[1] + 2  # longer than the client waits
    sales_api.server.script(sales_api.page_path(1), Reply(delay=hang, json={"items": PAGES[0]}))
    generate_report.delay(DAY.isoformat())
    wait_for_report(timeout=60)
    assert report_csv() == CSV
    assert len(sales_api.requests_to(sales_api.page_path(1))) == 2
    (retry,) = task_events.wait_for("reports.fetch_page", "retried")
    assert "ReadTimeout" in str(retry.detail.exc)
    # The run gave up after the read timeout, timed on the worker's side: the server notes a request's arrival a
    # moment after the client starts its wait (its handler thread is scheduled first), so its clock can read short.
    first_run = task_events.of("reports.fetch_page", "started", task_id=retry.task_id)[0]
    assert retry.at - first_run.at >= settings.REPORTS_API_TIMEOUT[1]


def test_429_is_retried_after_the_delay_the_api_asks_for(sales_api):
    sales_api.server.script(sales_api.page_path(1), Reply(429, headers={"Retry-After": "3"}))
    generate_report.delay(DAY.isoformat())
    wait_for_report()
    first, second = sales_api.requests_to(sales_api.page_path(1))
    # The backoff alone would wait at most REPORTS_API_RETRY_BACKOFF_MAX (1 s in tests).
    assert second.at - first.at >= 3


def test_not_found_fails_at_once_with_a_clear_log_line_and_is_recorded(sales_api, task_events, caplog):
    sales_api.server.script(sales_api.index_path(), Reply(404))
    generate_report.delay(DAY.isoformat())
    (failure,) = task_events.wait_for("reports.generate_report", "failed")
    assert len(sales_api.requests_to(sales_api.index_path())) == 1
    assert task_events.of("reports.generate_report", "retried") == []
    assert any(
        f"reports.generate_report[{failure.task_id}] failed, not retried" in record.getMessage()
        and "answered 404" in record.getMessage()
        for record in caplog.records
        if record.levelno == logging.ERROR
    )
    recorded = wait_until(lambda: FailedTask.objects.filter(task_id=failure.task_id).first())
    assert recorded.exception == "PermanentSalesAPIError"
    assert services.report_status(DAY) == {"status": "pending"}


def test_a_page_that_fails_for_good_shows_the_report_failed_at_once_and_a_rerun_makes_it(sales_api, task_events):
    sales_api.server.script(sales_api.page_path(2), Reply(404))
    generate_report.delay(DAY.isoformat())
    task_events.wait_for("reports.fetch_page", "failed")
    status = wait_until(
        lambda: services.report_status(DAY)["status"] == "failed" and services.report_status(DAY),
        what="the report to show it failed",
    )
    assert status["reason"].startswith("reports.fetch_page failed: GET ")
    assert "/pages/2/ answered 404" in status["reason"]

    generate_report.delay(DAY.isoformat())  # the page is back: the next run is not skipped as "running"
    wait_for_report()
    assert report_csv() == CSV


def test_overlapping_runs_make_one_report_and_log_one_skip(sales_api, task_events, caplog):
    # The first run holds the day's lock while the API takes 1.5 s to answer: longer than the
    # second run waits for the lock (1 s), shorter than the client's timeout (2 s in tests).
    sales_api.server.script(sales_api.index_path(), Reply(delay=1.5, json={"pages": len(PAGES)}))
    generate_report.delay(DAY.isoformat())
    generate_report.delay(DAY.isoformat())
    task_events.wait_for("reports.generate_report", "succeeded", count=2)
    wait_for_report()
    assert report_csv() == CSV
    assert len(sales_api.requests_to(sales_api.index_path())) == 1
    skipped = [record for record in caplog.records if f"Report for {DAY} skipped" in record.getMessage()]
    assert len(skipped) == 1
    assert skipped[0].levelno == logging.INFO  # losing the race is normal, not an error


def test_a_ready_report_is_not_generated_again(sales_api, task_events):
    generate_report.delay(DAY.isoformat())
    wait_for_report()
    generate_report.delay(DAY.isoformat())
    task_events.wait_for("reports.generate_report", "succeeded", count=2)
    assert len(sales_api.requests_to(sales_api.index_path())) == 1


def test_page_fetches_are_rate_limited(sales_api, settings):
    pages = [[{"region": "EU", "amount": "1.00"}]] * 11
    sales_api.serve(pages)
    generate_report.delay(DAY.isoformat())
    wait_for_report()
    arrivals = sorted(sales_api.requests_to(sales_api.page_path(page))[0].at for page in range(1, len(pages) + 1))
    per_second = float(fetch_page.rate_limit.split("/")[0])
    # Without the limit, four worker threads fetched all eleven in 0.19 s. The token bucket hands them
    # to the pool 1/rate apart (1 s for ten gaps at 10/s); the server sees that plus each thread's
    # start-up, which on a busy machine once squeezed the first gap by 0.09 s: allow 0.25 s.
    assert arrivals[-1] - arrivals[0] >= (len(pages) - 1) / per_second - 0.25


def test_exhausted_retries_are_recorded_and_replayed_once_the_api_recovers(sales_api, task_events):
    sales_api.server.route(sales_api.index_path(), Reply(500))
    generate_report.delay(DAY.isoformat())
    (failure,) = task_events.wait_for("reports.generate_report", "failed", timeout=60)
    assert len(sales_api.requests_to(sales_api.index_path())) == generate_report.max_retries + 1
    recorded = wait_until(lambda: FailedTask.objects.filter(task_id=failure.task_id).first())
    assert (recorded.task_name, recorded.args, recorded.retries) == (
        "reports.generate_report",
        [DAY.isoformat()],
        generate_report.max_retries,
    )

    sales_api.serve(PAGES)  # the API recovers
    call_command("replay_failed_tasks", str(recorded.pk))
    wait_for_report()
    assert report_csv() == CSV
    recorded.refresh_from_db()
    assert recorded.replayed_at is not None
    assert recorded.replayed_as in {event.task_id for event in task_events.of("reports.generate_report", "started")}
