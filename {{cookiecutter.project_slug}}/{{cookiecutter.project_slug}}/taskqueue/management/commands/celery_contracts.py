"""List every task of the project's apps, its queue, and the delivery contracts that cover it.

A contract (taskqueue/contracts.py) holds the task object itself, so the link survives a rename of the function,
the task or the test. This imports each test module that declares one (a module under tests/ whose source
constructs a ``DeliveryContract``), which registers its contracts, then matches them to the registered tasks.
A task with no contract is listed, not failed: the list is for reading (the CI prints it).
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from django.core.management.base import BaseCommand

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue import contracts
from {{ cookiecutter.project_slug }}.taskqueue.sending import registered_task_names, routed_queue

PROJECT_DIR = Path(__file__).resolve().parents[4]
PROJECT_PACKAGE = "{{ cookiecutter.project_slug }}"


def contract_modules(tests_dir: Path) -> list[tuple[str, Path]]:
    """The test modules that construct a DeliveryContract: dotted name and file."""
    return sorted(
        (".".join(path.relative_to(tests_dir.parent).with_suffix("").parts), path)
        for path in tests_dir.rglob("*.py")
        if "DeliveryContract(" in path.read_text(errors="replace")
    )


def declared_in(module: ModuleType) -> list[contracts.DeliveryContract]:
    """The contracts a module holds at its top level, alone or in a list, tuple or dict."""
    found: list[contracts.DeliveryContract] = []
    for value in vars(module).values():
        items = list(value.values()) if isinstance(value, dict) else value
        items = items if isinstance(items, list | tuple) else [items]
        found.extend(item for item in items if isinstance(item, contracts.DeliveryContract))
    return found


def import_file(module: str, path: Path) -> None:
    """Import ``path`` as ``module`` (once: pytest may have imported it already)."""
    if module in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        del sys.modules[module]
        raise


class Command(BaseCommand):
    help = "List the project's tasks, each with its queue and the delivery contracts (tests) that cover it."

    def handle(self, *args, **options):
        tests_dir = PROJECT_DIR / "tests"
        covered_in: dict[str, list[str]] = {}
        if str(PROJECT_DIR) not in sys.path:  # the modules import tests.* helpers
            sys.path.insert(0, str(PROJECT_DIR))
        for module, path in contract_modules(tests_dir) if tests_dir.is_dir() else []:
            before = {name: len(found) for name, found in contracts.REGISTRY.items()}
            try:
                import_file(module, path)
            except Exception as exc:  # a test module that does not import here (missing dev dependency)
                self.stderr.write(
                    f"{module}: not imported ({type(exc).__name__}: {exc}); its contracts are not listed"
                )
                continue
            # What the import registered, and what the module holds (it may have been imported before: by pytest).
            names = {name for name, found in contracts.REGISTRY.items() if len(found) > before.get(name, 0)}
            names.update(contract.task.name for contract in declared_in(sys.modules[module]))
            for name in sorted(names):
                covered_in.setdefault(name, []).append(module)

        own = sorted(
            name
            for name in registered_task_names()
            if celery_app.tasks[name].__module__.startswith(f"{PROJECT_PACKAGE}.")
        )
        width = max((len(name) for name in own), default=4)
        self.stdout.write(f"{'task'.ljust(width)}  {'queue'.ljust(7)}  contract")
        for name in own:
            where = ", ".join(covered_in.get(name, [])) or "none"
            self.stdout.write(f"{name.ljust(width)}  {routed_queue(name).ljust(7)}  {where}")
        covered = sum(1 for name in own if name in covered_in)
        self.stdout.write(f"{covered} of {len(own)} tasks have a delivery contract (docs/reliability.md).")
