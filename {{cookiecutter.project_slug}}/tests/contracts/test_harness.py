"""The harness catches a broken task: each contract here is checked under the faults that expose it.

A task that keeps its promise passes every fault, on a prefork queue and on the io queue's threads; a task that is
not idempotent fails as DUPLICATED, and one that swallows its failure fails as LOST, each naming the fault.
"""

import pytest

from {{ cookiecutter.project_slug }}.taskqueue.contracts import FAULTS, REGISTRY, DeliveryContract
from tests.contracts import sample_tasks
from tests.contracts.harness import check
from tests.reliability import ledger as effect_ledger

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]
INCLUDE = ("tests.contracts.sample_tasks",)


@pytest.fixture
def ledger(transactional_db):
    effect_ledger.create_tables()
    yield effect_ledger
    effect_ledger.drop_tables()


def contract(task, key: str) -> DeliveryContract:
    return DeliveryContract(task, args=[key], effect=effect_ledger.effect_count)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_an_idempotent_task_keeps_its_contract_under_every_fault(ledger, tmp_path, fault):
    check(contract(sample_tasks.record_payment, f"kept-{fault}"), fault, tmp_path, include=INCLUDE)


@pytest.mark.parametrize("fault", ["kill-before-effect", "kill-after-effect", "sigterm"])
def test_an_io_task_keeps_its_contract_when_its_threads_worker_dies_or_stops(ledger, tmp_path, fault):
    check(contract(sample_tasks.fetch_payment, f"io-{fault}"), fault, tmp_path, include=INCLUDE)


@pytest.mark.parametrize("fault", ["duplicate", "kill-after-effect"])
def test_a_task_that_is_not_idempotent_fails_as_duplicated(ledger, tmp_path, fault):
    with pytest.raises(AssertionError) as failure:
        check(contract(sample_tasks.record_payment_blindly, f"blind-{fault}"), fault, tmp_path, include=INCLUDE)
    assert f"under the fault {fault!r}" in str(failure.value)
    assert "DUPLICATED: its effect was applied 2 times" in str(failure.value)


def test_a_task_that_swallows_its_failure_fails_as_lost(ledger, tmp_path):
    with pytest.raises(AssertionError) as failure:
        check(contract(sample_tasks.record_payment_quietly, "quiet"), "database-error", tmp_path, include=INCLUDE)
    assert "under the fault 'database-error'" in str(failure.value)
    assert "LOST: its effect was never applied, although a run reported SUCCESS" in str(failure.value)


def test_a_contract_is_registered_under_its_tasks_name_and_refuses_an_unknown_fault():
    made = contract(sample_tasks.record_payment, "registered")
    assert made in REGISTRY["contracts.record_payment"]
    with pytest.raises(ValueError, match="Unknown fault"):
        DeliveryContract(sample_tasks.record_payment, effect=effect_ledger.effect_count, faults=("meteor",))
