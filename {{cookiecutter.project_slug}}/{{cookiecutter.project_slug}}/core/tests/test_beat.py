"""Beat keeps a heartbeat for its health check, and is still django-celery-beat's DatabaseScheduler (P25, P29)."""

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
