"""Every project task is named and typed the way the base task expects, and derives from Celery's Django task.

delay_on_commit() through a real worker: test_worker.py.
"""

import re
import typing

import pytest
from celery import shared_task
from celery.contrib.django.task import DjangoTask

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue.base_task import BaseTask
from {{ cookiecutter.project_slug }}.taskqueue.checks import check_task_annotations_resolve, project_tasks

if typing.TYPE_CHECKING:
    from decimal import Decimal  # only a type checker sees it: the annotation below cannot be resolved


def test_every_task_has_an_explicit_prefixed_name():
    # Not the default name (the module path, which changes when code moves): <prefix>.<verb_noun>.
    for name, task in project_tasks().items():
        if type(task).__module__.startswith("tests."):
            continue
        assert re.fullmatch(r"[a-z_]+\.[a-z]+(_[a-z]+)*", name), f"{name} should be <app>.<verb_noun>"


def test_every_task_is_named_after_its_app():
    for name, task in project_tasks().items():
        module = type(task).__module__
        if module.startswith("{{ cookiecutter.project_slug }}."):
            app_label = module.removesuffix(".tasks").rsplit(".", 1)[-1]
            assert name.startswith(f"{app_label}."), f"{name} is defined in the {app_label} app"


def test_every_task_uses_the_project_base_class_which_is_celerys_django_task():
    assert issubclass(BaseTask, DjangoTask)
    assert all(isinstance(task, BaseTask) for task in project_tasks().values())


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["2024-05-01", "1"], "argument 'page' must be int, got str '1'"),
        (["2024-05-01", 1.0], "argument 'page' must be int, got float 1.0"),
        (["2024-05-01", False], "argument 'page' must be int, got bool False"),
        ([20240501, 1], "argument 'day' must be str, got int 20240501"),
        (["2024-05-01", 1, "rows"], "argument 'rows' must be list or NoneType, got str 'rows'"),
        (["2024-05-01"], "missing a required argument: 'page'"),
        (["2024-05-01", 1, [], 2], "too many positional arguments"),
    ],
)
def test_arguments_are_checked_against_the_annotations(args, problem):
    with pytest.raises(TypeError, match=re.escape(f"tests.typed: {problem}")):
        celery_app.tasks["tests.typed"].check_arguments(args, {})


def test_well_typed_arguments_pass():
    typed = celery_app.tasks["tests.typed"]
    typed.check_arguments(["2024-05-01", 3], {})
    typed.check_arguments(["2024-05-01", 3], {"rows": None})
    typed.check_arguments([], {"day": "2024-05-01", "page": 3, "rows": [{"region": "EU"}]})


@pytest.fixture
def unresolvable_task():
    @shared_task(name="tests.unresolvable_annotation")
    def unresolvable_annotation(amount: "Decimal", count: int) -> None:
        """Its first annotation names a type imported only under TYPE_CHECKING."""

    yield celery_app.tasks["tests.unresolvable_annotation"]
    celery_app.tasks.unregister("tests.unresolvable_annotation")


def test_an_annotation_that_cannot_be_resolved_fails_the_check_with_the_task_name(unresolvable_task):
    messages = check_task_annotations_resolve()
    assert [message.id for message in messages] == ["celery.E008"]
    assert "Task tests.unresolvable_annotation" in messages[0].msg
    assert "Decimal" in messages[0].msg


def test_an_annotation_that_cannot_be_resolved_leaves_the_task_runnable_with_its_signature_checked(
    unresolvable_task, caplog
):
    unresolvable_task.check_arguments(["1.50", 2], {})  # not every run failing with NameError
    with pytest.raises(TypeError, match="missing a required argument: 'count'"):
        unresolvable_task.check_arguments(["1.50"], {})
    assert "argument types are not checked" in caplog.text
