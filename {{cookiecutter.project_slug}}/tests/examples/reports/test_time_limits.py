"""Time limits need a prefork worker (the threads pool cannot interrupt a task): a real one, from the Procfile."""

import pytest

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.examples.reports.tasks import archive_export
from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask
from tests.examples.reports.sales_api import DAY
from tests.support.database import database_url
from tests.support.http_server import Reply
from tests.support.waiting import wait_until
from tools.procfile import ProcfileProcess


@pytest.mark.django_db(transaction=True)
def test_soft_time_limit_removes_the_partial_download_and_records_failure(sales_api, settings, own_broker, tmp_path):
    # A slow download: 100 chunks a tenth of a second apart, far longer than the limit below.
    sales_api.server.route(sales_api.export_path(), Reply(body=b"x" * 100_000, chunks=100, chunk_interval=0.1))
    # A broker of its own: the in-process test worker must not take this message.
    broker = own_broker(1)
    worker = ProcfileProcess(
        "worker",
        env={
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            **broker.env,
            "DATABASE_URL": database_url(),
            "REPORTS_API_URL": settings.REPORTS_API_URL,
            "TMPDIR": str(tmp_path),
        },
        extra_args="--concurrency 1 --hostname time-limits@%h --without-mingle --without-gossip",
    ).start()
    try:
        worker.wait_for_output(" ready.", timeout=60)
        with celery_app.connection_for_write(broker.url) as connection:
            # A small per-call limit; the task's own soft limit is 15 minutes.
            archive_export.apply_async([DAY.isoformat()], soft_time_limit=2, time_limit=30, connection=connection)
        wait_until(lambda: list(tmp_path.glob("*.partial")), timeout=30, what="the partial download to start")
        worker.wait_for_output("partial download removed", timeout=60)
        assert list(tmp_path.glob("*.partial")) == []
        failed = wait_until(lambda: FailedTask.objects.filter(task_name="reports.archive_export").first())
        assert failed.exception == "SoftTimeLimitExceeded"
        assert failed.args == [DAY.isoformat()]
    finally:
        worker.stop()
