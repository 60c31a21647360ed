"""Every option combination the template claims to support renders, lints, checks and passes its own suite."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from bakery import SUITE_TIMEOUT, read_env_file, run_in

# The defaults, everything switched off, three bakes that between them give every other answer of every prompt,
# and RabbitMQ as the broker: each bake costs a full run of the generated suite (minutes), so the answers that change
# no task code (Sentry, Kubernetes, the CI tool) share bakes with those that do (examples, result backend, Flower).
COMBINATIONS = {
    "defaults": {},
    "redis-results+sentry+kubernetes+gitlab": {
        "result_backend": "redis",
        "use_sentry": "y",
        "use_kubernetes": "y",
        "ci_tool": "gitlab",
    },
    "no-results+no-flower+no-ci": {"result_backend": "none", "use_flower": "n", "ci_tool": "none"},
    "no-examples+sentry+kubernetes": {"include_examples": "n", "use_sentry": "y", "use_kubernetes": "y"},
    "all-off": {
        "include_examples": "n",
        "result_backend": "none",
        "use_flower": "n",
        "use_sentry": "n",
        "ci_tool": "none",
    },
    # Its suite starts a RabbitMQ node of its own (Debian's rabbitmq-server) besides its Redis; its manifests scale
    # on RabbitMQ queues.
    "rabbitmq": {"broker": "rabbitmq", "use_kubernetes": "y"},
}
# The bakes the Kubernetes tests read (one per broker) and the one the no-Flower tests read.
KUBERNETES = "redis-results+sentry+kubernetes+gitlab"
KUBERNETES_RABBITMQ = "rabbitmq"
NO_FLOWER = "no-results+no-flower+no-ci"
UNRENDERED = re.compile(r"{{\s*cookiecutter|{%-?\s*(if|for|endif|raw)\b|cookiecutter\.")
# Django's own templates use {% if %} and {% for %}: in them only a cookiecutter variable is left over.
UNRENDERED_IN_DJANGO_TEMPLATE = re.compile(r"{{\s*cookiecutter|cookiecutter\.")


@pytest.fixture(params=list(COMBINATIONS), ids=list(COMBINATIONS))
def project(request, bake_once) -> Path:
    return bake_once(request.param, **COMBINATIONS[request.param])


def leftover_template_syntax(path: Path) -> bool:
    django_template = path.suffix == ".html" and "templates" in path.parts
    pattern = UNRENDERED_IN_DJANGO_TEMPLATE if django_template else UNRENDERED
    return bool(pattern.search(path.read_text(errors="ignore")))


def test_no_template_syntax_is_left(project):
    leftovers = [
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.parts and leftover_template_syntax(path)
    ]
    assert leftovers == []


@pytest.mark.parametrize("interpreter", ["project", "template"])
def test_every_python_file_compiles(project, template_venv, tmp_path, interpreter):
    """With the project's own Python, and with the one running these tests (3.11 here): a reviewer's or an editor's
    tooling may parse the files with whatever Python the machine has, and a file using syntax newer than that (PEP
    695's `def f[T]`) stops it. The bytecode goes to a temp dir, not into the shared bake."""
    python = "python" if interpreter == "project" else sys.executable
    run_in(
        project, python, "-m", "compileall", "-q", "-f", "-x", r"/\.venv/", ".",
        venv=template_venv if interpreter == "project" else None, env={"PYTHONPYCACHEPREFIX": str(tmp_path)},
    )  # fmt: skip


def test_ruff_check_and_format_pass(project, template_venv):
    run_in(project, "ruff", "check", ".", venv=template_venv)
    run_in(project, "ruff", "format", "--check", ".", venv=template_venv)


def test_mypy_passes(project, template_venv):
    run_in(project, "mypy", ".", venv=template_venv, timeout=900)


def test_make_lint_type_checks_a_teams_code(bake, template_venv):
    """A type error in code a team adds fails `make lint` (mypy runs there, on the whole project), named."""
    project = bake()
    planted = project / "my_project" / "billing.py"
    module = '"""A module a team adds."""\n\n\ndef total_cents(amount: int) -> int:\n    return {}\n'
    planted.write_text(module.format('amount + "00"'))
    result = run_in(project, "make", "lint", "RUN=", venv=template_venv, timeout=900, check=False)
    assert result.returncode != 0
    assert 'my_project/billing.py:5: error: Unsupported operand types for + ("int" and "str")' in result.stdout
    planted.write_text(module.format("amount * 100"))
    run_in(project, "mypy", ".", venv=template_venv, timeout=900)


def test_deptry_finds_every_import_declared_and_every_dependency_used(project, template_venv):
    run_in(project, "deptry", ".", venv=template_venv)


def test_manage_py_check_passes_with_local_settings(project, template_venv):
    run_in(project, "python", "manage.py", "check", "--fail-level", "WARNING", venv=template_venv)


def test_check_deploy_passes_with_production_settings(project, template_venv):
    result = run_in(
        project,
        "python", "manage.py", "check", "--deploy", "--fail-level", "WARNING",
        venv=template_venv,
        env=read_env_file(project / ".envs/.production/.django"),
    )  # fmt: skip
    assert "System check identified no issues" in result.stdout


def test_hsts_preload_is_off_until_chosen(project, template_venv):
    """Preloading binds every subdomain to HTTPS for months: production leaves it to the team (docs/decisions.md)."""
    show = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_HSTS_PRELOAD, s.SILENCED_SYSTEM_CHECKS)"
    )
    env = read_env_file(project / ".envs/.production/.django")
    default = run_in(project, "python", "-c", show, venv=template_venv, env=env)
    assert default.stdout.splitlines()[-1] == "False ['security.W021']"
    env["DJANGO_SECURE_HSTS_PRELOAD"] = "True"
    chosen = run_in(project, "python", "-c", show, venv=template_venv, env=env)
    assert chosen.stdout.splitlines()[-1] == "True []"


def test_migrations_are_complete(project, template_venv):
    run_in(project, "python", "manage.py", "makemigrations", "--check", "--dry-run", venv=template_venv)


# The default bake's suite runs in test_generated_suite_environments.py, on PostgreSQL from its own declared
# dependencies: running it here as well cost CI 7 minutes of a worker (README.md, "Template tests").
SUITE_COMBINATIONS = [name for name in COMBINATIONS if name != "defaults"]


# The generated modules that start worker and beat processes with the suite's own test tasks and kill, stop or starve
# them (173 of the default suite's 330 s on an idle machine). Two bakes differ from another bake only by the example
# apps and by answers that change no Python the test settings load (Sentry, Kubernetes, the CI tool): there these
# modules would run the same code against the same settings again, so they run in the twin, once per result backend
# (django: the defaults, in test_generated_suite_environments.py; none: no-results; redis: its own bake). The test
# checks that premise on every run: the modules, the task-queue package, the Celery app, the start scripts and every
# Celery, database and cache setting are the twin's.
PROCESS_MODULES = (
    "tests/taskqueue/test_liveness.py",
    "tests/taskqueue/test_shutdown.py",
    "tests/taskqueue/test_broker_transport.py",
)
PROCESS_TWIN = {"no-examples+sentry+kubernetes": "defaults", "all-off": "no-results+no-flower+no-ci"}
SAME_PROCESS_CODE = (*PROCESS_MODULES, "my_project/taskqueue", "config/celery_app.py", "compose")
SHOW_PROCESS_SETTINGS = """
import django
django.setup()
from django.conf import settings
print(sorted((key, repr(getattr(settings, key))) for key in dir(settings) if key.startswith("CELERY_")))
print(settings.CACHES)
# The database's file is named after the project's directory and the test process: its engine and options count.
print({alias: (db["ENGINE"], db["OPTIONS"]) for alias, db in settings.DATABASES.items()})
"""


def tree_bytes(root: Path) -> dict[str, bytes]:
    paths = [root] if root.is_file() else sorted(path for path in root.rglob("*") if path.is_file())
    return {str(path.relative_to(root.parent)): path.read_bytes() for path in paths if "__pycache__" not in path.parts}


def assert_same_process_code(project: Path, twin: Path, venv: Path) -> None:
    for name in SAME_PROCESS_CODE:
        assert tree_bytes(project / name) == tree_bytes(twin / name), f"{name} differs from the twin's: run it here"
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.test"}
    shown = [
        run_in(path, "python", "-c", SHOW_PROCESS_SETTINGS, venv=venv, env=env).stdout for path in (project, twin)
    ]
    assert shown[0] == shown[1], "a Celery, database or cache setting differs from the twin's: run the modules here"


def test_a_bake_whose_process_code_or_settings_differ_from_its_twins_runs_the_process_modules_itself(
    bake, bake_once, template_venv
):
    twin = bake_once("defaults")
    assert_same_process_code(twin, twin, template_venv)
    for planted in ("tests/taskqueue/test_shutdown.py", "config/settings/test.py"):
        project = bake()
        with (project / planted).open("a") as changed:
            changed.write("\nCELERY_WORKER_PREFETCH_MULTIPLIER = 4\n")
        with pytest.raises(AssertionError, match="differs from the twin's"):
            assert_same_process_code(project, twin, template_venv)


@pytest.mark.parametrize("name", SUITE_COMBINATIONS)
def test_generated_test_suite_passes(bake_once, template_venv, name):
    project = bake_once(name, **COMBINATIONS[name])
    skipped: list[str] = []
    if name in PROCESS_TWIN:
        twin = PROCESS_TWIN[name]
        assert_same_process_code(project, bake_once(twin, **COMBINATIONS[twin]), template_venv)
        skipped = [f"--ignore={module}" for module in PROCESS_MODULES]
    result = run_in(
        project, "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *skipped,
        venv=template_venv, timeout=SUITE_TIMEOUT,
    )  # fmt: skip
    assert re.search(r"\d+ passed", result.stdout)
    assert "skipped" not in result.stdout.splitlines()[-1]
