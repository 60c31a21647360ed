"""CI and tooling files parse and run the same commands the READMEs give."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from bakery import TEMPLATE_DIR


def readme_commands(readme: Path) -> list[str]:
    """Commands in the README's ```bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", readme.read_text(), flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_entry_point_runs_the_readme_test_command():
    test_command = "uv run --group test pytest -n 4"
    assert test_command in readme_commands(TEMPLATE_DIR / "README.md")
    ci_lines = [line.strip() for line in (TEMPLATE_DIR / ".ci/run").read_text().splitlines()]
    assert test_command in ci_lines


def test_template_workflow_runs_the_ci_entry_point():
    workflow = yaml.safe_load((TEMPLATE_DIR / ".github/workflows/ci.yml").read_text())
    steps = workflow["jobs"]["template-tests"]["steps"]
    assert any(".ci/run" in step.get("run", "") for step in steps)


@pytest.mark.parametrize("ci_tool", ["github", "gitlab"])
def test_generated_ci_parses_and_runs_the_readme_test_command(bake, ci_tool):
    project = bake(ci_tool=ci_tool)
    path = project / (".github/workflows/ci.yml" if ci_tool == "github" else ".gitlab-ci.yml")
    config = yaml.safe_load(path.read_text())
    if ci_tool == "github":
        job = config["jobs"]["test"]
        commands = [step["run"] for step in job["steps"] if "run" in step]
        services = set(job["services"])
    else:
        job = config["test"]
        commands = job["script"]
        services = {service.split(":")[0] for service in job["services"]}
    assert services == {"redis", "postgres"}
    run_lines = {line.strip() for command in commands for line in command.splitlines()}
    assert "uv run pytest" in readme_commands(project / "README.md")
    assert "uv run pytest" in run_lines
    assert any("check --deploy" in line for line in run_lines)
    assert any("makemigrations --check" in line for line in run_lines)
    assert "uv run deptry ." in run_lines
    # Every install is exactly uv.lock, and the production image is built from the commit.
    text = path.read_text()
    assert re.findall(r"uv sync\b[^\n]*", text), "no job installs the project"
    assert all("--locked" in line for line in re.findall(r"uv sync\b[^\n]*", text))
    assert "docker build --target runtime" in text


@pytest.mark.parametrize("ci_tool", ["github", "gitlab"])
def test_one_postgresql_major_version_in_compose_and_ci(bake, ci_tool):
    project = bake(ci_tool=ci_tool)
    files = ["docker-compose.yml", "docker-compose.production.yml"]
    files.append(".github/workflows/ci.yml" if ci_tool == "github" else ".gitlab-ci.yml")
    image = re.compile(r"\bimage: postgres:(\d+)|^\s+- postgres:(\d+)$", re.MULTILINE)  # a job's image or service
    versions = {name: {"".join(match) for match in image.findall((project / name).read_text())} for name in files}
    assert all(versions.values()), versions
    assert len(set().union(*versions.values())) == 1, versions


def test_pre_commit_runs_ruff_django_upgrade_and_hygiene_hooks(bake):
    config = yaml.safe_load((bake() / ".pre-commit-config.yaml").read_text())
    hook_ids = {hook["id"] for repo in config["repos"] for hook in repo["hooks"]}
    assert {"ruff", "ruff-format", "django-upgrade", "trailing-whitespace", "end-of-file-fixer"} <= hook_ids


def test_makefile_has_the_everyday_commands(bake):
    project = bake()
    listed = subprocess.run(["make", "help"], cwd=project, capture_output=True, text=True, check=True).stdout
    targets = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert {"dev", "test", "reliability", "bench", "lint", "migrate", "shell"} <= targets
    for target in sorted(targets):
        dry_run = subprocess.run(["make", "-n", target], cwd=project, capture_output=True, text=True, check=False)
        assert dry_run.returncode == 0, f"make -n {target}: {dry_run.stderr}"
