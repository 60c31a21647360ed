"""The default bake's suite on PostgreSQL, in a virtualenv built from its own pyproject.toml and uv.lock alone,
on the oldest Python the project supports (every other generated suite runs on the one it ships with)."""

from __future__ import annotations

import re

from bakery import FLOOR_PYTHON, SUITE_TIMEOUT, python_interpreter, run_in, uv


def test_default_project_suite_passes_on_postgresql_from_its_declared_dependencies(bake, postgres_url):
    """What the generated CI does: `uv sync` (nothing installed by hand), then the suite against PostgreSQL, here on
    Python 3.12, the floor of the project's requires-python.

    One run proves both: the declared dependencies are complete, and the suite holds on the production database.
    """
    project = bake()
    run_in(project, uv(), "sync", "--quiet", "--python", python_interpreter(FLOOR_PYTHON), timeout=900)
    venv = project / ".venv"
    version = run_in(project, "python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])", venv=venv).stdout
    assert version.strip() == FLOOR_PYTHON
    result = run_in(
        project, "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
        venv=venv, env={"DATABASE_URL": postgres_url}, timeout=SUITE_TIMEOUT,
    )  # fmt: skip
    assert re.search(r"\d+ passed", result.stdout)
    assert "skipped" not in result.stdout.splitlines()[-1]
    assert "postgresql" in run_in(
        project, "python", "-c",
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings.test'; django.setup(); "
        "from django.db import connection; print(connection.vendor)",
        venv=venv, env={"DATABASE_URL": postgres_url},
    ).stdout  # fmt: skip
