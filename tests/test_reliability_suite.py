"""The default bake's reliability suite: real workers killed, a real Redis restarted, no task lost or doubled.

It takes minutes, so the generated project runs it as its own CI step (`pytest -m reliability`),
outside its default test run; here it runs once, on PostgreSQL, as production does.
"""

from __future__ import annotations

import re
import warnings

import yaml
from bakery import run_in
from test_generated_project import COMBINATIONS

# Tests in the generated suite's reliability marker (8 of them the welcome email's delivery contract), and the
# figure lines they print (the contract tests print CONTRACT lines; one test only asserts).
TESTS = 49
SCENARIOS = 25


class ReliabilityFigure(UserWarning):
    """One scenario's figure line, shown in pytest's warnings summary (under xdist too)."""


# Replication to a Sentinel replica is asynchronous: a failover may lose what the primary had not passed on
# yet. Those scenarios report their losses (docs/reliability.md) instead of promising none.
MAY_LOSE = ("sentinel, ",)
FIGURE = re.compile(
    r"^RELIABILITY (?P<scenario>.+?): sent=(?P<sent>\d+) completed=(?P<completed>\d+) lost=(?P<lost>\d+) "
    r"duplicated=(?P<duplicated>\d+) executions=(?P<executions>\d+)(?P<notes>.*)$",
    flags=re.MULTILINE,
)


def test_generated_reliability_suite_passes_on_postgresql_with_no_task_lost_or_duplicated(
    bake_once, template_venv, postgres_url
):
    project = bake_once("defaults")
    result = run_in(
        project, "python", "-m", "pytest", "-m", "reliability", "-p", "no:cacheprovider",
        venv=template_venv, env={"DATABASE_URL": postgres_url}, timeout=1800,
    )  # fmt: skip
    assert re.search(rf"\b{TESTS} passed\b", result.stdout), result.stdout[-3000:]
    figures = {match["scenario"]: match for match in FIGURE.finditer(result.stdout)}
    assert len(figures) == SCENARIOS, result.stdout[-3000:]
    for scenario, figure in figures.items():
        warnings.warn(ReliabilityFigure(figure.group(0)), stacklevel=1)
        assert figure["duplicated"] == "0", scenario
        if scenario.startswith(MAY_LOSE):
            assert int(figure["completed"]) + int(figure["lost"]) == int(figure["sent"]), scenario
        else:
            assert figure["lost"] == "0", scenario


# The RabbitMQ bake: its reliability marker holds the delivery contracts (8 of them the welcome email's) and the
# scenarios that are not Redis-shaped (docs/reliability.md of that bake).
RABBITMQ_TESTS = 36
RABBITMQ_SCENARIOS = 13


def test_a_rabbitmq_projects_reliability_suite_passes_with_no_task_lost_or_duplicated(
    bake_once, template_venv, postgres_url
):
    project = bake_once("rabbitmq", **COMBINATIONS["rabbitmq"])
    result = run_in(
        project, "python", "-m", "pytest", "-m", "reliability", "-p", "no:cacheprovider",
        venv=template_venv, env={"DATABASE_URL": postgres_url}, timeout=1800,
    )  # fmt: skip
    assert re.search(rf"\b{RABBITMQ_TESTS} passed\b", result.stdout), result.stdout[-3000:]
    figures = {match["scenario"]: match for match in FIGURE.finditer(result.stdout)}
    assert len(figures) == RABBITMQ_SCENARIOS, result.stdout[-3000:]
    assert "rabbitmq-restart" in figures
    assert "long-run" in figures
    assert "bad-input" in figures
    for scenario, figure in figures.items():
        warnings.warn(ReliabilityFigure(figure.group(0)), stacklevel=1)
        assert (figure["lost"], figure["duplicated"]) == ("0", "0"), scenario


def test_the_default_test_run_leaves_the_reliability_suite_to_its_own_step(bake_once, template_venv):
    project = bake_once("defaults")
    result = run_in(
        project, "python", "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", venv=template_venv
    )  # fmt: skip
    assert "reliability/" not in result.stdout
    assert re.search(rf"\b{TESTS} deselected\b", result.stdout), result.stdout[-2000:]


def test_generated_ci_runs_the_reliability_suite_with_a_redis_server_of_its_own(bake):
    github = yaml.safe_load((bake(ci_tool="github") / ".github/workflows/ci.yml").read_text())["jobs"]["reliability"]
    commands = [step["run"] for step in github["steps"] if "run" in step]
    assert "uv run pytest -m reliability" in commands
    # The inventory of delivery contracts is printed before the suite runs them.
    assert commands.index("uv run python manage.py celery_contracts") < commands.index("uv run pytest -m reliability")
    assert any("install" in command and "redis-server" in command for command in commands)
    assert "redis" not in github["services"]
    assert "REDIS_URL" not in github["env"]

    gitlab = yaml.safe_load((bake(ci_tool="gitlab") / ".gitlab-ci.yml").read_text())["reliability"]
    assert gitlab["script"] == ["uv run python manage.py celery_contracts", "uv run pytest -m reliability"]
    assert any("redis-server" in command for command in gitlab["before_script"])
    assert gitlab["services"] == ["postgres:15"]
    assert gitlab["variables"]["REDIS_URL"] == ""


def test_a_rabbitmq_projects_ci_installs_rabbitmq_server_for_its_tests_and_reliability_suite(bake):
    project = bake(broker="rabbitmq", ci_tool="github")
    jobs = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())["jobs"]
    for job in ("test", "reliability"):
        commands = [step["run"] for step in jobs[job]["steps"] if "run" in step]
        assert any("install" in command and "rabbitmq-server" in command for command in commands), job
    gitlab = yaml.safe_load((bake(broker="rabbitmq", ci_tool="gitlab") / ".gitlab-ci.yml").read_text())
    for job in ("test", "reliability", "upstream-canary"):
        assert any("rabbitmq-server" in command for command in gitlab[job]["before_script"]), job
