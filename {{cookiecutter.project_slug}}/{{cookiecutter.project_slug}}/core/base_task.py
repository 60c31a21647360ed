"""The base class of every task in the project (set as the app's ``task_cls`` in config/celery_app.py).

It adds three things a task author should not have to remember:

- arguments are checked against the task function's annotations before it runs, so a
  message with a wrongly typed argument fails once, clearly, and is never retried (P13);
- a task that fails for good (permanent error, or retries exhausted) is recorded as a
  :class:`~{{ cookiecutter.project_slug }}.core.models.FailedTask` that a person can see in the admin and
  replay with ``manage.py replay_failed_tasks`` (P17);
- a message whose runs keep dying with their process (a poison message) is failed after
  ``max_deliveries`` runs instead of being delivered forever (core/deliveries.py).
"""

import inspect
import logging
import types
import typing
from functools import cached_property

from celery import Task

from {{ cookiecutter.project_slug }}.core.deliveries import count_delivery, forget_deliveries

logger = logging.getLogger(__name__)

# The types a JSON message can carry; an argument annotated with one of them is checked.
JSON_TYPES = (bool, int, float, str, list, dict)


def accepted_types(annotation) -> tuple[type, ...] | None:
    """The JSON types an annotation accepts, or None if it is not one this check understands."""
    if annotation in JSON_TYPES or annotation is type(None):
        return (annotation,)
    origin = typing.get_origin(annotation)
    if origin in (list, dict):
        return (origin,)
    if origin in (typing.Union, types.UnionType):
        parts = [accepted_types(arg) for arg in typing.get_args(annotation)]
        if None in parts:
            return None
        return tuple(kind for part in parts for kind in part)
    return None


def is_instance(value, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        # True is an int to Python, but never a valid ID or count in a message.
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return isinstance(value, kinds)


class BaseTask(Task):
    # Runs of one message that may die with their process (OOM, segfault) before it counts as poison.
    max_deliveries = 5

    def before_start(self, task_id, args, kwargs):
        # Outside the autoretry wrapper: these fail the task once, without retries.
        count_delivery(self)
        self.check_arguments(args, kwargs)

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        # The run ended (success, failure or retry): the message is done with, so is its delivery count.
        forget_deliveries(self)

    @cached_property
    def _argument_types(self) -> tuple[inspect.Signature, dict[str, tuple[type, ...]]]:
        """The task function's signature, and the JSON types each checked parameter accepts (computed once)."""
        function = inspect.unwrap(self.run)
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function)
        checked = {}
        for name, parameter in signature.parameters.items():
            kinds = accepted_types(hints.get(name))
            if kinds is not None and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                checked[name] = kinds
        return signature, checked

    def check_arguments(self, args, kwargs) -> None:
        """Raise TypeError unless the arguments fit the task function's signature and JSON annotations."""
        signature, checked = self._argument_types
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}: {exc}") from None
        for name, value in bound.arguments.items():
            kinds = checked.get(name)
            if kinds is not None and not is_instance(value, kinds):
                expected = " or ".join(kind.__name__ for kind in kinds)
                raise TypeError(
                    f"{self.name}: argument {name!r} must be {expected}, got {type(value).__name__} {value!r:.100}"
                )

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Imported here: this module is loaded with the Celery app, before Django's apps are ready.
        from {{ cookiecutter.project_slug }}.core.dead_letters import record_failure

        try:
            record_failure(task=self, task_id=task_id, args=args, kwargs=kwargs, exc=exc, traceback=str(einfo))
        except Exception:  # recording must never hide the task's own failure
            logger.exception("Could not record the failure of %s[%s]", self.name, task_id)
