"""Beat keeps a heartbeat for its health check, sends only while it holds the beat lock, and is still
django-celery-beat's DatabaseScheduler (P24, P25, P29).

Two real beat processes side by side: reliability/test_two_beats.py.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest
from celery.utils.imports import symbol_by_name
from django_celery_beat.schedulers import DatabaseScheduler

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.core.beat import HeartbeatDatabaseScheduler

HEALTHCHECK_BEAT = Path(__file__).resolve().parents[3] / "compose" / "healthcheck-beat"


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
