"""Beat keeps a heartbeat for its health check, sends only while it holds the beat lock, and is still
django-celery-beat's DatabaseScheduler.

Two real beat processes side by side: tests/reliability/test_two_beats.py.
"""

import os
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from celery.utils.imports import symbol_by_name
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue.patches.django_celery_beat import HeartbeatDatabaseScheduler
from tests.taskqueue.tasks import record_delivery

HEALTHCHECK_BEAT = Path(__file__).resolve().parents[2] / "compose" / "healthcheck-beat"


@pytest.fixture
def heartbeat(settings, tmp_path) -> Path:
    settings.BEAT_HEARTBEAT_FILE = str(tmp_path / "celerybeat-heartbeat")
    return Path(settings.BEAT_HEARTBEAT_FILE)


def healthcheck_beat(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [HEALTHCHECK_BEAT], env={**os.environ, **env}, capture_output=True, text=True, timeout=30, check=False
    )


def test_beat_runs_the_heartbeat_scheduler_which_is_still_a_database_scheduler():
    scheduler = symbol_by_name(celery_app.conf.beat_scheduler)
    assert issubclass(scheduler, HeartbeatDatabaseScheduler)
    assert issubclass(scheduler, DatabaseScheduler)


# transaction=True: the scheduler calls close_old_connections(), which closes a connection
# left inside the test's atomic block (any database but SQLite in memory).
@pytest.mark.django_db(transaction=True)
def test_every_tick_touches_the_heartbeat_and_a_clean_stop_removes_it(heartbeat):
    scheduler = HeartbeatDatabaseScheduler(app=celery_app)
    scheduler.tick()
    assert heartbeat.exists()
    scheduler.close()
    assert not heartbeat.exists()


@pytest.mark.django_db(transaction=True)
def test_a_second_scheduler_stands_by_while_the_first_holds_the_lock_and_takes_over_when_it_closes(heartbeat, caplog):
    first = HeartbeatDatabaseScheduler(app=celery_app)
    second = HeartbeatDatabaseScheduler(app=celery_app)
    first.tick()
    second.tick()
    assert (first.holds_lock, second.holds_lock) == (True, False)
    assert f"Another beat ({first.lock_token}) holds the beat lock" in caplog.text
    # The one standing by stays healthy: it is alive and ready to take over.
    assert heartbeat.exists()

    first.close()  # a clean stop hands the lock over at once
    second.tick()
    assert second.holds_lock
    second.close()


@pytest.mark.django_db(transaction=True)
def test_a_beat_that_stops_ticking_loses_the_lock_after_the_timeout_and_then_stands_by(heartbeat, settings, caplog):
    settings.BEAT_LOCK_TIMEOUT = 1
    stalled = HeartbeatDatabaseScheduler(app=celery_app)
    successor = HeartbeatDatabaseScheduler(app=celery_app)
    stalled.tick()
    time.sleep(1.5)  # longer than the lock timeout, without a tick
    successor.tick()
    assert successor.holds_lock

    stalled.tick()
    assert not stalled.holds_lock
    assert f"Beat {stalled.lock_token} lost the beat lock to {successor.lock_token}" in caplog.text
    successor.close()
    stalled.close()


@pytest.fixture
def due_every_minute(transactional_db) -> PeriodicTask:
    return PeriodicTask.objects.create(
        name="every minute",
        task=record_delivery.name,
        args='["beat", {}]',
        interval=IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS),
        last_run_at=timezone.now() - timedelta(minutes=5),
    )


def test_every_send_of_a_periodic_task_writes_its_last_run_to_the_database_at_once(heartbeat, due_every_minute):
    due_every_minute.interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    due_every_minute.save()
    scheduler = HeartbeatDatabaseScheduler(app=celery_app)
    try:
        scheduler.tick()  # the first send of a beat always writes
        time.sleep(1.1)
        second_sent_after = timezone.now()
        scheduler.tick()
        # Not three minutes later: a beat taking over after a crash reads this and does not send it again.
        due_every_minute.refresh_from_db()
        assert due_every_minute.last_run_at >= second_sent_after
    finally:
        scheduler.close()


def test_a_heap_rebuilt_right_after_a_send_does_not_send_the_task_again(heartbeat, due_every_minute, task_events):
    scheduler = HeartbeatDatabaseScheduler(app=celery_app)
    try:
        scheduler.tick()
        assert len(task_events.of(record_delivery.name, "published")) == 1
        # What a schedule change noticed in the middle of a tick does (a second beat starting, an admin edit).
        scheduler._heap = None
        scheduler.tick()
        assert len(task_events.of(record_delivery.name, "published")) == 1, "sent twice for one tick"
    finally:
        scheduler.close()


def test_beat_healthcheck_passes_on_a_fresh_heartbeat_and_fails_on_a_stale_or_missing_one(heartbeat):
    env = {"BEAT_HEARTBEAT_FILE": str(heartbeat), "BEAT_HEARTBEAT_MAX_AGE": "60"}
    assert healthcheck_beat(env).returncode == 1
    heartbeat.touch()
    assert healthcheck_beat(env).returncode == 0
    two_minutes_ago = time.time() - 120
    os.utime(heartbeat, (two_minutes_ago, two_minutes_ago))
    assert healthcheck_beat(env).returncode == 1


def test_beat_healthcheck_looks_where_the_settings_put_the_heartbeat_by_default(tmp_path, settings):
    # Both default to <temp dir>/<the same name>; TMPDIR moves the temp dir for the script.
    (tmp_path / Path(settings.BEAT_HEARTBEAT_FILE).name).touch()
    env = {key: value for key, value in os.environ.items() if key != "BEAT_HEARTBEAT_FILE"}
    result = subprocess.run(
        [HEALTHCHECK_BEAT],
        env={**env, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
