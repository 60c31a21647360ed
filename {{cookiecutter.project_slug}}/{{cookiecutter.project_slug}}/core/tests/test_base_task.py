"""Every project task is named, routed and typed as PRACTICES.md asks (P2, P13)."""

import re

import pytest

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.core.base_task import BaseTask
from {{ cookiecutter.project_slug }}.core.sending import registered_task_names

PROJECT = "{{ cookiecutter.project_slug }}."


def project_tasks():
    registered_task_names()  # imports every tasks.py
    return {
        name: task
        for name, task in celery_app.tasks.items()
        if type(task).__module__.startswith(PROJECT) and ".tests." not in type(task).__module__
    }


def test_the_sample_apps_define_tasks():
    assert {"accounts.send_welcome_email", "reports.fetch_page", "core.send_admin_email"} <= set(project_tasks())


def test_every_task_has_an_explicit_prefixed_name():
    # Not the default name (the module path, which changes when code moves): <prefix>.<verb_noun>.
    for name in project_tasks():
        assert re.fullmatch(r"[a-z]+\.[a-z]+(_[a-z]+)*", name), f"{name} should be <app>.<verb_noun>"


def test_sample_tasks_are_prefixed_with_their_app():
    for name, task in project_tasks().items():
        app_label = type(task).__module__.removeprefix(PROJECT).split(".")[0]
        if app_label in {"core", "accounts", "reports"}:
            assert name.startswith(f"{app_label}."), name


def test_every_task_uses_the_project_base_class():
    assert all(isinstance(task, BaseTask) for task in project_tasks().values())


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["2024-05-01", "1"], "argument 'page' must be int, got str '1'"),
        (["2024-05-01", 1.0], "argument 'page' must be int, got float 1.0"),
        (["2024-05-01", False], "argument 'page' must be int, got bool False"),
        ([20240501, 1], "argument 'day' must be str, got int 20240501"),
        (["2024-05-01"], "missing a required argument: 'page'"),
        (["2024-05-01", 1, 2], "too many positional arguments"),
    ],
)
def test_arguments_are_checked_against_the_annotations(args, problem):
    task = celery_app.tasks["reports.fetch_page"]
    with pytest.raises(TypeError, match=re.escape(f"reports.fetch_page: {problem}")):
        task.check_arguments(args, {})


def test_well_typed_arguments_pass():
    celery_app.tasks["reports.fetch_page"].check_arguments(["2024-05-01", 3], {})
    celery_app.tasks["reports.generate_report"].check_arguments([], {"day": None})
    celery_app.tasks["reports.build_report"].check_arguments([[[{"region": "EU"}]], "2024-05-01"], {})
