"""A team's own task, added as the generated README says, held to its delivery contract exactly as the README shows.

The README's "Add an app with tasks" is followed in a fresh bake: a `billing` app with an `Order` and a `Charge`,
a task `billing.charge_order`, and `tests/billing/test_contracts.py` copied from the README's example. The
contract fails, naming the fault, for a task that inserts its charge with no key (DUPLICATED) and for one that
swallows its error (LOST); the idempotent task passes. In one bake per result backend: the defaults (the database),
Redis results, and the all-off bake (none; the no-results bake differs from it only by the examples, which the
billing app does not touch).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bakery import run_in
from test_generated_project import COMBINATIONS

BAKES = ["defaults", "redis-results+sentry+kubernetes+gitlab", "all-off"]

MODELS = """from django.db import models


class Order(models.Model):
    total = models.IntegerField()


class Charge(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE)
"""

TASKS = """import logging

from celery import shared_task
from django.db import OperationalError, transaction

from {package}.billing.models import Charge, Order

logger = logging.getLogger(__name__)


RETRY = {{"autoretry_for": (OperationalError,), "retry_backoff": True, "retry_jitter": True, "max_retries": 3}}


@shared_task(name="billing.charge_order", **RETRY)
def charge_order(order_id: int) -> None:
{body}
"""

BODIES = {
    # Every run charges: a second delivery charges twice.
    "not-idempotent": "    Charge.objects.create(order_id=order_id)",
    # An error is logged and the task reports success: the charge is lost.
    "swallows": (
        "    try:\n"
        "        Charge.objects.create(order_id=order_id)\n"
        "    except Exception:\n"
        '        logger.exception("Could not charge order %s", order_id)'
    ),
    # The order's row lock (SQLite: the project's IMMEDIATE transactions) makes the check and the insert one step.
    "idempotent": (
        "    with transaction.atomic():\n"
        "        order = Order.objects.select_for_update().get(pk=order_id)\n"
        "        if not Charge.objects.filter(order=order).exists():\n"
        "            Charge.objects.create(order=order)"
    ),
}


def readme_contract(project: Path) -> str:
    """The contract test exactly as the generated README shows it."""
    readme = (project / "README.md").read_text()
    block = readme.split("<!-- contract-example -->", 1)[1].split("<!-- /contract-example -->", 1)[0]
    return block.split("```python\n", 1)[1].split("```", 1)[0]


def add_billing_app(project: Path, venv: Path) -> Path:
    """The README's checklist: the app, its models and migration, its settings entry, its contract test."""
    package = project / "my_project"
    (package / "billing").mkdir()
    run_in(project, "python", "manage.py", "startapp", "billing", "my_project/billing", venv=venv)
    apps = package / "billing" / "apps.py"
    apps.write_text(apps.read_text().replace("name = 'billing'", 'name = "my_project.billing"'))
    (package / "billing" / "models.py").write_text(MODELS)
    settings = project / "config" / "settings" / "base.py"
    text = settings.read_text()
    assert "LOCAL_APPS = [\n" in text
    settings.write_text(text.replace("LOCAL_APPS = [\n", 'LOCAL_APPS = [\n    "my_project.billing",\n', 1))
    run_in(project, "python", "manage.py", "makemigrations", "billing", venv=venv)
    (project / "tests" / "billing").mkdir()
    (project / "tests" / "billing" / "__init__.py").touch()
    (project / "tests" / "billing" / "test_contracts.py").write_text(readme_contract(project))
    return package / "billing" / "tasks.py"


def run_contract(project: Path, venv: Path, faults: str | None = None):
    argv = [
        "python",
        "-m",
        "pytest",
        "-m",
        "reliability",
        "-p",
        "no:cacheprovider",
        "-q",
        "tests/billing/test_contracts.py",
    ]
    if faults:
        argv += ["-k", faults]
    return run_in(project, *argv, venv=venv, timeout=900, check=False)


@pytest.mark.parametrize("name", BAKES)
def test_a_teams_task_is_held_to_its_contract_as_the_readme_shows(bake, template_venv, name):
    project = bake(**COMBINATIONS[name])
    tasks = add_billing_app(project, template_venv)

    tasks.write_text(TASKS.format(package="my_project", body=BODIES["not-idempotent"]))
    result = run_contract(project, template_venv, "duplicate or kill-after-effect")
    assert result.returncode == 1, result.stdout[-4000:]
    for fault in ("duplicate", "kill-after-effect"):
        assert re.search(
            rf"billing\.charge_order\(\[\d+\], \{{\}}\) under the fault '{fault}' "
            r".*DUPLICATED: its effect was applied 2 times",
            result.stdout,
        ), result.stdout[-4000:]
    assert "2 failed" in result.stdout, result.stdout[-2000:]

    tasks.write_text(TASKS.format(package="my_project", body=BODIES["swallows"]))
    result = run_contract(project, template_venv, "database-error")
    assert result.returncode == 1, result.stdout[-4000:]
    assert "under the fault 'database-error'" in result.stdout
    assert "LOST: its effect was never applied, although a run reported SUCCESS" in result.stdout

    tasks.write_text(TASKS.format(package="my_project", body=BODIES["idempotent"]))
    # The faults the broken tasks failed. Every fault is run on an idempotent task in the reliability suite
    # (tests/contracts/test_harness.py, test_reliability_suite.py), with the same harness.
    result = run_contract(project, template_venv, "duplicate or kill or database")
    assert result.returncode == 0, result.stdout[-6000:]
    assert re.search(r"\b4 passed\b", result.stdout), result.stdout[-2000:]

    listed = run_in(project, "python", "manage.py", "celery_contracts", venv=template_venv).stdout
    assert re.search(r"^billing\.charge_order\s+default\s+tests\.billing\.test_contracts$", listed, re.MULTILINE), (
        listed
    )
