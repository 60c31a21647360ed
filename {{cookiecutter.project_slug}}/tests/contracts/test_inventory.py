"""``manage.py celery_contracts``: every task of the project's apps, its queue, and the contracts covering it."""

import sys
from io import StringIO

from django.core.management import call_command

from {{ cookiecutter.project_slug }}.taskqueue import contracts
from {{ cookiecutter.project_slug }}.taskqueue.management.commands import celery_contracts


def inventory() -> dict[str, tuple[str, str]]:
    out = StringIO()
    call_command("celery_contracts", stdout=out)
    rows = out.getvalue().splitlines()
    assert rows[0].split() == ["task", "queue", "contract"]
    assert rows[-1].endswith("tasks have a delivery contract (docs/reliability.md).")
    return {row.split()[0]: (row.split()[1], row.split()[2]) for row in rows[1:-1]}


def test_every_task_of_the_projects_apps_is_listed_with_its_queue_and_test_tasks_are_not():
    listed = inventory()
    assert listed["taskqueue.purge_failed_tasks"][0] == "default"
    assert listed["error_emails.send_to_admins"][0] == "io"
    assert not [name for name in listed if name.startswith(("tests.", "contracts.", "reliability."))]
{%- if cookiecutter.include_examples == "y" %}
    # The examples' own contract (tests/examples/notifications/test_contracts.py) is found and named.
    assert listed["notifications.send_welcome_email"] == ("io", "tests.examples.notifications.test_contracts")
{%- endif %}


def test_a_task_is_covered_by_the_module_that_declares_its_contract_whatever_the_names(tmp_path, monkeypatch):
    # A contract in a module named after nothing, for a task whose name shares nothing with it.
    tests_dir = tmp_path / "tests"
    (tests_dir / "odd").mkdir(parents=True)
    (tests_dir / "odd" / "test_whatever").with_suffix(".py").write_text(
        "from {{ cookiecutter.project_slug }}.taskqueue.contracts import DeliveryContract\n"
        "from {{ cookiecutter.project_slug }}.taskqueue.tasks import purge_failed_tasks\n"
        "PURGE = DeliveryContract(purge_failed_tasks, effect=lambda: 0)\n"
    )
    monkeypatch.setattr(celery_contracts, "PROJECT_DIR", tmp_path)
    monkeypatch.setattr(contracts, "REGISTRY", {})  # what this test's module registers goes with it
    monkeypatch.delitem(sys.modules, "tests.odd.test_whatever", raising=False)
    listed = inventory()
    assert listed["taskqueue.purge_failed_tasks"] == ("default", "tests.odd.test_whatever")
    # Listed again with the module already imported (as under pytest): found by what the module holds.
    assert inventory()["taskqueue.purge_failed_tasks"] == ("default", "tests.odd.test_whatever")
    assert listed["error_emails.send_to_admins"][1] == "none"
