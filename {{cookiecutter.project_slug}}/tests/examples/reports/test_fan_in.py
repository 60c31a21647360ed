"""The chord fan-in (result backend configured): only the page fetches keep results."""

import pytest
from celery.result import AsyncResult

from {{ cookiecutter.project_slug }}.examples.reports.tasks import generate_report
from tests.examples.reports.sales_api import DAY, PAGES
from tests.examples.reports.test_tasks import wait_for_report
from tests.taskqueue.tasks import add

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_workers", "media_root")]


def test_a_task_that_opts_in_returns_its_result():
    assert add.delay(2, 3).get(timeout=15) == 5


def test_only_the_page_fetches_store_results_for_the_chord(sales_api, task_events):
    generate_report.delay(DAY.isoformat())
    wait_for_report()
    (build,) = task_events.wait_for("reports.build_report", "succeeded")
    fetches = task_events.of("reports.fetch_page", "started")
    stored = {event.args[1]: AsyncResult(event.task_id).get(timeout=10) for event in fetches}
    assert stored == dict(enumerate(PAGES, start=1))
    # Ignored results are never stored: the backend does not know these tasks ran.
    assert AsyncResult(build.task_id).state == "PENDING"
    # generate_report's success is signalled after it published the chord, which may finish first.
    (generate,) = task_events.wait_for("reports.generate_report", "succeeded")
    assert AsyncResult(generate.task_id).state == "PENDING"
