"""The checks of a Redis broker: the visibility timeout against the run bounds and the longest countdown."""

from {{ cookiecutter.project_slug }}.taskqueue import checks
from tests.taskqueue.tasks import add, fetch_delivery


def _ids(messages):
    return [message.id for message in messages]


def test_hard_limit_longer_than_visibility_timeout_is_an_error(celery_conf):
    celery_conf(task_time_limit=7200, broker_transport_options={"visibility_timeout": 3600})
    messages = checks.check_visibility_timeout()
    assert "celery.E001" in _ids(messages)
    assert "CELERY_TASK_TIME_LIMIT (7200 s)" in messages[0].msg


def test_hard_limit_plus_the_longest_countdown_must_fit_in_the_visibility_timeout(celery_conf, settings):
    # Each below the timeout, together above it: a task sent with the longest countdown runs twice.
    settings.TASK_MAX_COUNTDOWN = 3500
    celery_conf(task_time_limit=360, broker_transport_options={"visibility_timeout": 3600})
    messages = checks.check_visibility_timeout()
    assert set(_ids(messages)) == {"celery.E001"}
    assert "CELERY_TASK_TIME_LIMIT (360 s) plus TASK_MAX_COUNTDOWN (3500 s)" in messages[0].msg


def test_missing_hard_limit_is_an_error(celery_conf):
    celery_conf(task_time_limit=None)
    assert _ids(checks.check_visibility_timeout()) == ["celery.E001"]


def test_task_level_hard_limit_is_checked_too(celery_conf, monkeypatch):
    celery_conf(broker_transport_options={"visibility_timeout": 2500})
    monkeypatch.setattr(add, "time_limit", 900)
    messages = checks.check_visibility_timeout()
    assert any("task tests.add (900 s)" in message.msg for message in messages)


def test_countdown_longer_than_visibility_timeout_is_an_error(settings):
    settings.TASK_MAX_COUNTDOWN = 10_000
    assert "celery.E002" in _ids(checks.check_visibility_timeout())


def test_result_backend_visibility_timeout_must_match_broker(celery_conf):
    celery_conf(
        result_backend="redis://127.0.0.1:6379/0",
        result_backend_transport_options={"visibility_timeout": 60},
    )
    assert "celery.E003" in _ids(checks.check_visibility_timeout())


def test_the_longest_countdown_and_a_tasks_own_hard_limit_are_one_sum(celery_conf, settings, monkeypatch):
    # 1000 + 2000 < 3600 and each alone fits; the task's own 2700 s limit with the countdown does not.
    settings.TASK_MAX_COUNTDOWN = 1000
    celery_conf(task_time_limit=300, broker_transport_options={"visibility_timeout": 3600})
    monkeypatch.setattr(add, "time_limit", 2700)
    messages = checks.check_visibility_timeout()
    assert _ids(messages) == ["celery.E001"]
    assert "task tests.add (2700 s) plus TASK_MAX_COUNTDOWN (1000 s) is 3700 s" in messages[0].msg


def test_an_io_tasks_io_timeout_and_the_longest_countdown_must_fit_in_the_visibility_timeout(
    celery_conf, settings, monkeypatch
):
    # Its io_timeout, not the hard limit (which no thread obeys), is what bounds its run.
    settings.TASK_MAX_COUNTDOWN = 100
    celery_conf(
        task_time_limit=60,
        broker_transport_options={"visibility_timeout": 1200},
        # Kept equal to the broker's, so that only the sum is wrong (celery.E003 compares the two).
        result_backend_transport_options={"visibility_timeout": 1200},
    )
    monkeypatch.setattr(fetch_delivery, "io_timeout", 1150)
    messages = checks.check_visibility_timeout()
    assert _ids(messages) == ["celery.E001"]
    assert "task tests.fetch_delivery (io_timeout) (1150 s) plus TASK_MAX_COUNTDOWN (100 s)" in messages[0].msg
