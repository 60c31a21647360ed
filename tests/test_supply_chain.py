"""Supply chain and CI security: each bake's workflows, Dockerfile, update configs and code pass public linters."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from bakery import TEMPLATE_DIR, run_in
from test_generated_project import COMBINATIONS, KUBERNETES

CI_TOOLS = ["github", "gitlab", "none"]
# The linters come from the template's `test` group, installed next to this interpreter.
LINTER_BIN = Path(sys.executable).parent
WORKFLOW = ".github/workflows/ci.yml"
UPSTREAM_WORKFLOW = ".github/workflows/upstream.yml"
DEPENDABOT = ".github/dependabot.yml"
RENOVATE = "renovate.json"
# A made-up AWS key of the documented example shape: the secret scanner must stop it.
PLANTED_SECRET = 'AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\n'


def linter(name: str) -> str:
    return str(LINTER_BIN / name)


@pytest.fixture(params=CI_TOOLS)
def ci_project(request, bake_once) -> Path:
    """A bake per CI tool, Sentry on (its Dockerfile has the most lines)."""
    return bake_once(f"supply-chain-{request.param}", ci_tool=request.param, use_sentry="y")


def ci_tool_of(project: Path) -> str:
    return "github" if (project / WORKFLOW).exists() else "gitlab" if (project / ".gitlab-ci.yml").exists() else "none"


def github_project(bake_once) -> Path:
    return bake_once("supply-chain-github", ci_tool="github", use_sentry="y")


def gitlab_project(bake_once) -> Path:
    return bake_once("supply-chain-gitlab", ci_tool="gitlab", use_sentry="y")


def workflows(owner: str, bake_once) -> tuple[Path, list[str]]:
    """The template's own workflow, or every workflow of a generated project (its CI and its upstream canary)."""
    if owner == "template":
        return TEMPLATE_DIR, [WORKFLOW]
    root = github_project(bake_once)
    found = sorted(str(path.relative_to(root)) for path in (root / ".github/workflows").glob("*.yml"))
    assert found == [WORKFLOW, UPSTREAM_WORKFLOW], found
    return root, found


@pytest.mark.parametrize("owner", ["template", "generated"])
def test_workflow_has_no_zizmor_finding_at_medium_or_above(owner, bake_once):
    root, files = workflows(owner, bake_once)
    run_in(root, linter("zizmor"), "--offline", "--min-severity", "medium", *files)


@pytest.mark.parametrize("owner", ["template", "generated"])
def test_every_action_is_pinned_to_a_commit_sha_with_its_version_in_a_comment(owner, bake_once):
    root, files = workflows(owner, bake_once)
    for file in files:
        uses_lines = [line.strip() for line in (root / file).read_text().splitlines() if "uses:" in line]
        assert uses_lines, file
        for line in uses_lines:
            assert re.fullmatch(r"- uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+(\.\d+)*", line), (file, line)


@pytest.mark.parametrize("owner", ["template", "generated"])
def test_workflow_token_can_read_the_code_and_nothing_else(owner, bake_once):
    root, files = workflows(owner, bake_once)
    for file in files:
        workflow = yaml.safe_load((root / file).read_text())
        assert workflow["permissions"] == {}, file
        for name, job in workflow["jobs"].items():
            assert job["permissions"] == {"contents": "read"}, (file, name)


@pytest.mark.parametrize("owner", ["template", "generated"])
def test_workflow_matches_the_github_workflow_schema(owner, bake_once):
    root, files = workflows(owner, bake_once)
    run_in(root, linter("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files)


def test_the_upstream_canary_runs_weekly_on_the_newest_releases_and_leaves_the_lock_alone(bake_once):
    github = github_project(bake_once)
    workflow = yaml.safe_load((github / UPSTREAM_WORKFLOW).read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    (schedule,) = triggers["schedule"]
    _minute, _hour, day, month, weekday = schedule["cron"].split()
    assert (day, month) == ("*", "*"), schedule  # once a week:
    assert weekday.isdigit(), schedule  # on one day of it
    steps = [step.get("run", "") for step in workflow["jobs"]["canary"]["steps"]]
    gitlab = yaml.safe_load((gitlab_project(bake_once) / ".gitlab-ci.yml").read_text())["upstream-canary"]
    assert "schedule" in gitlab["rules"][0]["if"]
    for commands in ("\n".join(steps), "\n".join(gitlab["before_script"] + gitlab["script"])):
        assert "make upstream-check LATEST=1" in commands
        assert "uv run --no-sync pytest" in commands  # the project's suite, on the same releases
        assert "uv sync --locked" in commands
        assert not re.search(r"uv (lock|add)\b|uv sync(?! --locked)", commands), commands  # uv.lock is never edited


def test_gitlab_ci_matches_the_gitlab_ci_schema(bake_once):
    project = gitlab_project(bake_once)
    run_in(project, linter("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", ".gitlab-ci.yml")


def test_dependabot_matches_its_schema_and_groups_the_lock_file_base_image_images_and_actions(bake_once):
    project = github_project(bake_once)
    run_in(project, linter("check-jsonschema"), "--builtin-schema", "vendor.dependabot", DEPENDABOT)
    updates = yaml.safe_load((project / DEPENDABOT).read_text())["updates"]
    assert {update["package-ecosystem"] for update in updates} == {"uv", "docker", "docker-compose", "github-actions"}
    for update in updates:
        assert update["groups"], f"{update['package-ecosystem']}: one pull request per dependency"


def test_renovate_matches_its_schema_groups_updates_and_pins_image_digests(bake_once):
    project = gitlab_project(bake_once)
    run_in(project, linter("check-jsonschema"), "--builtin-schema", "vendor.renovate", RENOVATE)
    config = json.loads((project / RENOVATE).read_text())
    assert "docker:pinDigests" in config["extends"]
    assert all(rule.get("groupName") for rule in config["packageRules"])
    assert {manager for rule in config["packageRules"] for manager in rule.get("matchManagers", [])} >= {"pep621"}


def test_each_ci_tool_gets_its_own_update_config_only(ci_project):
    ci_tool = ci_tool_of(ci_project)
    assert (ci_project / DEPENDABOT).exists() == (ci_tool == "github")
    assert (ci_project / RENOVATE).exists() == (ci_tool == "gitlab")


def audit_commands(project: Path) -> list[str]:
    """The commands of the CI job that runs pip-audit; fails the test if none does, or if its failure is ignored."""
    if ci_tool_of(project) == "github":
        jobs = yaml.safe_load((project / WORKFLOW).read_text())["jobs"]
        audits = [job for job in jobs.values() if any("pip-audit" in step.get("run", "") for step in job["steps"])]
        (job,) = audits
        assert not job.get("continue-on-error")
        assert not any(step.get("continue-on-error") for step in job["steps"])
        return [step["run"] for step in job["steps"] if "run" in step]
    config = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
    jobs = [job for job in config.values() if isinstance(job, dict)]
    audits = [job for job in jobs if "pip-audit" in " ".join(job.get("script", []))]
    (job,) = audits
    assert not job.get("allow_failure")
    return job["script"]


@pytest.mark.parametrize("ci_tool", ["github", "gitlab"])
def test_ci_audits_the_locked_dependencies_and_fails_on_a_vulnerability(ci_tool, bake_once):
    project = github_project(bake_once) if ci_tool == "github" else gitlab_project(bake_once)
    commands = " && ".join(audit_commands(project))
    # The export locks first when the project has no uv.lock, so the audit sees exact versions.
    export = re.search(r"uv export --format requirements-txt .*--output-file (\S+)", commands)
    assert export, commands
    assert re.search(rf"pip-audit@[\d.]+ --strict .*--requirement {re.escape(export.group(1))}", commands), commands


@pytest.mark.parametrize("use_sentry", ["y", "n"])
def test_dockerfile_passes_hadolint_without_even_an_informational_finding(use_sentry, bake_once):
    project = bake_once(f"supply-chain-sentry-{use_sentry}", use_sentry=use_sentry)
    run_in(project, linter("hadolint"), "--no-color", "--failure-threshold", "info", "Dockerfile")


def test_code_has_no_bandit_finding_and_ci_lint_enforces_the_rules(bake_once):
    project = github_project(bake_once)
    lint = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "S" in lint["select"], "ruff's bandit rules leave the CI's `ruff check`"
    # Only the two subprocess rules the pyproject explains are off project-wide; the tests may assert.
    assert {rule for rule in lint["ignore"] if rule.startswith("S")} == {"S603", "S607"}
    assert {rule for rules in lint["per-file-ignores"].values() for rule in rules if rule.startswith("S")} == {"S101"}
    run_in(project, linter("ruff"), "check", "--no-cache", ".")


def committed_copy(project: Path, destination: Path) -> tuple[Path, list[str]]:
    """A git repository of the bake with everything added, as a first commit would have it."""
    copy = Path(shutil.copytree(project, destination / project.name))
    run_in(copy, "git", "init", "--quiet")
    run_in(copy, "git", "add", "--all")
    return copy, run_in(copy, "git", "ls-files").stdout.split()


def secret_scan(project: Path, files: list[str]) -> subprocess.CompletedProcess[str]:
    """The pre-commit config's detect-secrets hook, with its arguments, over the given files."""
    repos = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())["repos"]
    (hook,) = [hook for repo in repos for hook in repo["hooks"] if hook["id"] == "detect-secrets"]
    # As pre-commit does: the hook's `exclude` pattern drops files before the hook sees them.
    files = [path for path in files if not re.search(hook.get("exclude", "(?!)"), path)]
    return run_in(project, linter("detect-secrets-hook"), *hook.get("args", []), *files, check=False)


def test_the_committed_files_pass_the_secret_scanning_hook(ci_project, tmp_path):
    copy, files = committed_copy(ci_project, tmp_path)
    assert ".env" not in files
    assert not any(path.startswith(".envs/.production/") for path in files)
    # The local containers' env files are committed on purpose, and the hook skips them (README.md, Quickstart).
    assert {".envs/.local/.django", ".envs/.local/.postgres"} <= set(files)
    scan = secret_scan(copy, files)
    assert scan.returncode == 0, scan.stdout


def test_a_kubernetes_projects_committed_files_pass_the_secret_scanning_hook(bake_once, tmp_path):
    """The manifests' automountServiceAccountToken is a boolean, and the made-up credentials of
    tests/test_kubernetes_manifests.py are marked so."""
    copy, files = committed_copy(bake_once(KUBERNETES, **COMBINATIONS[KUBERNETES]), tmp_path)
    assert "deploy/kubernetes/base/workers.yaml" in files
    scan = secret_scan(copy, files)
    assert scan.returncode == 0, scan.stdout


def test_a_rabbitmq_projects_committed_files_pass_the_secret_scanning_hook(bake_once, tmp_path):
    """Its broker URLs in the settings, the Makefile and the README are the local node's guest user, marked so; it
    has the Kubernetes manifests too."""
    copy, files = committed_copy(bake_once("rabbitmq", **COMBINATIONS["rabbitmq"]), tmp_path)
    assert ".envs/.local/.rabbitmq" in files
    assert "deploy/kubernetes/base/autoscaling.yaml" in files
    assert not any(path.startswith(".envs/.production/") for path in files)
    scan = secret_scan(copy, files)
    assert scan.returncode == 0, scan.stdout


def test_the_secret_scanning_hook_stops_a_committed_credential(bake_once, tmp_path):
    copy, files = committed_copy(github_project(bake_once), tmp_path)
    settings = copy / "config/settings/base.py"
    settings.write_text(settings.read_text() + PLANTED_SECRET)
    scan = secret_scan(copy, files)
    assert scan.returncode != 0
    assert "config/settings/base.py" in scan.stdout
