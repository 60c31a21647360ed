"""Check a task's arguments against its function's annotations before it runs.

A message with a wrongly typed argument (a string ID, a float count) then fails once, with a
message naming the task and the argument, instead of failing somewhere inside the task and
being retried for nothing. Only the JSON types are checked: a message cannot carry others.
"""

import inspect
import logging
import types
import typing
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# The types a JSON message can carry; an argument annotated with one of them is checked.
JSON_TYPES = (bool, int, float, str, list, dict)


class UnresolvableAnnotationError(Exception):
    """The task function's annotations name something that cannot be imported at run time."""


def accepted_types(annotation) -> tuple[type, ...] | None:
    """The JSON types an annotation accepts, or None if it is not one this check understands."""
    if annotation in JSON_TYPES or annotation is type(None):
        return (annotation,)
    origin = typing.get_origin(annotation)
    if origin in (list, dict):
        return (origin,)
    if origin in (typing.Union, types.UnionType):
        kinds: list[type] = []
        for arg in typing.get_args(annotation):
            part = accepted_types(arg)
            if part is None:
                return None
            kinds.extend(part)
        return tuple(kinds)
    return None


def is_instance(value, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        # True is an int to Python, but never a valid ID or count in a message.
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return isinstance(value, kinds)


@dataclass(frozen=True)
class ArgumentSpec:
    """A task function's signature, and the JSON types each checked parameter accepts."""

    signature: inspect.Signature
    checked: dict[str, tuple[type, ...]]

    @classmethod
    def of(cls, function) -> "ArgumentSpec":
        """Read ``function``'s annotations; raise UnresolvableAnnotationError if one names an unknown type.

        An annotation that only a type checker can resolve (a name imported under ``TYPE_CHECKING``)
        fails here, when the task is first checked, not inside every run of the task.
        """
        function = inspect.unwrap(function)
        try:
            hints = typing.get_type_hints(function)
        except (NameError, TypeError) as exc:
            raise UnresolvableAnnotationError(f"{type(exc).__name__}: {exc}") from exc
        checked = {}
        signature = inspect.signature(function)
        for name, parameter in signature.parameters.items():
            kinds = accepted_types(hints.get(name))
            if kinds is not None and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                checked[name] = kinds
        return cls(signature, checked)

    @classmethod
    def signature_only(cls, function) -> "ArgumentSpec":
        """Check the number and names of the arguments only (the annotations cannot be read)."""
        return cls(inspect.signature(inspect.unwrap(function)), {})

    def check(self, task_name: str, args, kwargs) -> None:
        """Raise TypeError unless the arguments fit the signature and the JSON annotations."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{task_name}: {exc}") from None
        for name, value in bound.arguments.items():
            kinds = self.checked.get(name)
            if kinds is not None and not is_instance(value, kinds):
                expected = " or ".join(kind.__name__ for kind in kinds)
                raise TypeError(
                    f"{task_name}: argument {name!r} must be {expected}, got {type(value).__name__} {value!r:.100}"
                )
