"""Delivery contracts: what a task promises when workers die, deploys stop them and {{ 'RabbitMQ' if cookiecutter.broker == 'rabbitmq' else 'Redis' }} restarts or stalls.

A contract names a task, the arguments of one call, and how to count that call's effect::

    CHARGE_CARD = DeliveryContract(
        charge_card,
        args=lambda: [Order.objects.create(total=10).pk],  # run in the test, before each fault
        effect=lambda order_id: Charge.objects.filter(order_id=order_id).count(),
    )
    test_charge_card_contract = contract_tests(CHARGE_CARD)  # tests/contracts/harness.py

The harness (``tests/contracts/``) sends the call to two real workers of the task's queue, on a {{ 'RabbitMQ' if cookiecutter.broker == 'rabbitmq' else 'Redis' }} of its own
and the test database, once per fault in :data:`FAULTS`, and asserts that the task completed, that its effect was
applied exactly once, and that nothing was left queued or unacked, within a bounded time.

``manage.py celery_contracts`` lists every task of the project's apps and the contracts that cover it: a contract
holds the task object itself, so renaming the function or the task follows it.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery import Task

# The faults, in the order the harness applies them; each is deterministic (tests/contracts/faults.py says how).
FAULTS = {
    "kill-before-effect": "the worker process is SIGKILLed at the run's first database write",
    "kill-after-effect": "the worker process is SIGKILLed after the run returned, before its ack",
    "sigterm": "the task's worker gets SIGTERM (a deploy) with the run in flight",
    "duplicate": "the same message is delivered twice (a visibility-timeout redelivery, a failover)",
    "{{ cookiecutter.broker }}-restart": "{{ 'RabbitMQ' if cookiecutter.broker == 'rabbitmq' else 'Redis' }} restarts with the run in flight",
    "{{ cookiecutter.broker }}-stall": "{{ 'RabbitMQ' if cookiecutter.broker == 'rabbitmq' else 'Redis' }} answers nothing for 4 s as the run works and acks",
    "{{ cookiecutter.broker }}-stall-retry": "the run retries at its first database write, and its retry meets a 4 s {{ 'RabbitMQ' if cookiecutter.broker == 'rabbitmq' else 'Redis' }} stall",
    "database-error": "the run's first database write fails once (OperationalError): it must retry, not swallow it",
}

# Every contract constructed (by importing its test module), by task name.
REGISTRY: dict[str, list["DeliveryContract"]] = {}


@dataclass(frozen=True)
class DeliveryContract:
    """A task, one call of it, and how many times that call's effect has been applied.

    ``args``/``kwargs``: the call's arguments, or a callable returning them (run in the test before each fault,
    e.g. to create the row the task works on). ``effect``: called with the same arguments, returns how many times
    the effect was applied (0 before the task ran, 1 after; 2 is a duplicate). ``faults``: a subset of FAULTS.
    """

    task: Task
    effect: Callable[..., int]
    args: list[Any] | Callable[[], list[Any]] = field(default_factory=list)
    kwargs: dict[str, Any] | Callable[[], dict[str, Any]] = field(default_factory=dict)
    faults: tuple[str, ...] = tuple(FAULTS)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.faults) - set(FAULTS))
        if unknown:
            raise ValueError(
                f"Unknown fault(s) {unknown} in the contract of {self.task.name}: choose from {list(FAULTS)}."
            )
        REGISTRY.setdefault(self.task.name, []).append(self)

    def call(self) -> tuple[list[Any], dict[str, Any]]:
        """The arguments of one call (created now, if they are callables)."""
        args = self.args() if callable(self.args) else list(self.args)
        kwargs = self.kwargs() if callable(self.kwargs) else dict(self.kwargs)
        return args, kwargs
