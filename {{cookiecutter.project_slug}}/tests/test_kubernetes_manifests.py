"""The Kubernetes Deployments run the Procfile's processes, and the checks read them (docs/deploy-kubernetes.md).

Rendering and schema validation are the template's tests (kubectl kustomize, kubernetes-validate);
these keep the manifests and the Celery configuration in step whenever either changes.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue import checks, process_definitions
from tools.procfile import PROJECT_DIR

BASE = PROJECT_DIR / "deploy/kubernetes/base"


def _ids(messages):
    return [message.id for message in messages]


def _deployments(directory: Path = BASE) -> dict[str, dict]:
    found = {}
    for manifest in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(manifest.read_text()):
            if document and document.get("kind") == "Deployment":
                found[document["metadata"]["name"]] = document
    return found


@pytest.fixture
def project_copy(settings, tmp_path):
    """A copy of the process definitions, the checks reading it instead of the project."""
    project = tmp_path / "project"
    shutil.copytree(PROJECT_DIR / "compose", project / "compose")
    shutil.copytree(PROJECT_DIR / "deploy", project / "deploy")
    for name in ("Procfile", *process_definitions.COMPOSE_FILES):
        shutil.copy(PROJECT_DIR / name, project / name)
    settings.BASE_DIR = project
    return project


def test_every_deployment_runs_its_procfile_process():
    procfile = process_definitions.procfile_commands(PROJECT_DIR / "Procfile")
    processes = process_definitions.kubernetes_definitions(PROJECT_DIR)[process_definitions.KUBERNETES_DIR]
    assert {process.name: process.command for process in processes} == procfile


def test_every_declared_queue_has_exactly_one_worker_deployment():
    declared = {queue.name for queue in celery_app.conf.task_queues}
    processes = process_definitions.kubernetes_processes(PROJECT_DIR)
    consumers = process_definitions.consumers(processes, declared)
    for queue in declared:
        assert [name for name, queues in consumers.items() if queue in queues] != [], queue
        assert len([name for name, queues in consumers.items() if queue in queues]) == 1, queue


def test_a_queue_without_a_worker_deployment_is_an_error(project_copy):
    workers = project_copy / "deploy/kubernetes/base/workers.yaml"
    workers.write_text(workers.read_text().replace('command: ["compose/start-worker-cpu"]', 'command: ["sleep", "1"]'))
    (message,) = checks.check_every_queue_has_a_kubernetes_worker()
    assert message.id == "celery.E006"
    assert "Queue 'cpu'" in message.msg
    assert "in deploy/kubernetes" in message.msg


def test_without_deploy_kubernetes_the_kubernetes_check_has_nothing_to_read(project_copy):
    shutil.rmtree(project_copy / "deploy")
    assert checks.check_every_queue_has_a_kubernetes_worker() == []


def test_every_worker_grace_period_covers_the_shutdown_window():
    processes = process_definitions.kubernetes_processes(PROJECT_DIR)
    consumers = process_definitions.consumers(processes, set(checks.routed_queues()))
    workers = [process for process in processes if process.name in consumers]
    assert sorted(process.name for process in workers) == ["worker", "worker-cpu", "worker-io"]
    for process in workers:
        needed, _ = checks.shutdown_window(process.command)
        assert needed > celery_app.conf.worker_soft_shutdown_timeout
        assert process.grace_seconds >= needed, process.name
    assert checks.check_worker_grace_period() == []


def test_a_worker_deployment_killed_before_its_tasks_end_is_an_error(project_copy):
    workers = project_copy / "deploy/kubernetes/base/workers.yaml"
    text = workers.read_text()
    io_start = text.index("name: worker-io")
    workers.write_text(
        text[:io_start]
        + text[io_start:].replace("terminationGracePeriodSeconds: 390", "terminationGracePeriodSeconds: 20", 1)
    )
    # The io worker needs the soft shutdown window (20 s) plus the margin.
    (message,) = checks.check_worker_grace_period()
    assert message.id == "celery.E010"
    assert "'worker-io' in deploy/kubernetes is killed 20 s after SIGTERM" in message.msg


def test_a_compose_worker_stopped_too_soon_is_an_error(project_copy):
    compose = project_copy / "docker-compose.production.yml"
    compose.write_text(re.sub(r"stop_grace_period: \d+s", "stop_grace_period: 20s", compose.read_text()))
    messages = checks.check_worker_grace_period()
    assert set(_ids(messages)) == {"celery.E010"}
    assert {message.msg.split("'")[1] for message in messages} == {"worker", "worker-io", "worker-cpu"}
    assert all("docker-compose.production.yml is killed 20 s" in message.msg for message in messages)


def test_the_soft_shutdown_window_counts_towards_the_io_workers_grace_period(project_copy):
    saved = celery_app.conf.get("worker_soft_shutdown_timeout")
    celery_app.conf.worker_soft_shutdown_timeout = 400
    try:
        messages = checks.check_worker_grace_period()
    finally:
        celery_app.conf.worker_soft_shutdown_timeout = saved
    # 400 + 10 > 390: the io worker's grace period is too short everywhere; the prefork workers' are not.
    assert set(_ids(messages)) == {"celery.E010"}
    assert {message.msg.split("'")[1] for message in messages} == {"worker-io"}
    assert any("deploy/kubernetes" in message.msg for message in messages)


@pytest.mark.parametrize(("value", "seconds"), [("390s", 390), ("1m30s", 90), (45, 45), ("1h", 3600)])
def test_compose_durations_are_read_in_seconds(value, seconds):
    assert process_definitions.compose_duration(value) == seconds


def test_a_malformed_compose_duration_is_refused():
    with pytest.raises(ValueError, match="not a compose duration"):
        process_definitions.compose_duration("ten seconds")


def _pod_specs() -> dict[str, dict]:
    found = {}
    for manifest in sorted(BASE.glob("*.yaml")):
        for document in yaml.safe_load_all(manifest.read_text()):
            if document and document.get("kind") in ("Deployment", "Job"):
                found[document["metadata"]["name"]] = document["spec"]["template"]["spec"]
    return found


def test_no_pod_mounts_a_service_account_token():
    # None of these processes talks to the Kubernetes API: a token in the pod would only serve an intruder.
    pods = _pod_specs()
    assert {"web", "worker", "worker-io", "worker-cpu", "beat", "migrate"} <= set(pods)
    assert {name: pod.get("automountServiceAccountToken") for name, pod in pods.items()} == dict.fromkeys(pods, False)


def test_worker_liveness_reads_the_heartbeat_of_the_node_the_worker_runs():
    procfile = process_definitions.procfile_commands(PROJECT_DIR / "Procfile")
    for name, pod in _pod_specs().items():
        if not name.startswith("worker"):
            continue
        node = procfile[name].split(" -n ")[1].split("@")[0]
        assert pod["containers"][0]["livenessProbe"]["exec"]["command"] == ["compose/healthcheck-worker", node]


FAKE_KUBECTL = """#!/usr/bin/env bash
# Records each call; answers `get job` with the Job status the test chose.
echo "$*" >> "$KUBECTL_CALLS"
case "$1 $2 $3 $4" in
    "kustomize "*) echo "rendered" ;;
    "-n "*" get job"*) echo "$JOB_STATUS" ;;
    "-n "*" get deployments"*) echo "deployment.apps/web" ;;
esac
"""


def run_deploy(tmp_path: Path, job_status: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """deploy/kubernetes/deploy against a kubectl that records its calls: no cluster can run here."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    calls = tmp_path / "calls"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin",
        "KUBECTL_CALLS": str(calls),
        "JOB_STATUS": job_status,
        "MIGRATE_TIMEOUT_SECONDS": "30",
    }
    result = subprocess.run(
        [str(PROJECT_DIR / "deploy/kubernetes/deploy")], cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    return result, calls.read_text().splitlines()


def test_a_deploy_replaces_the_migrate_job_and_applies_the_rest_only_after_it_succeeded(tmp_path):
    result, calls = run_deploy(tmp_path, "1/")
    assert result.returncode == 0, result.stderr
    namespace = PROJECT_DIR.name.replace("_", "-")
    verbs = [" ".join(call.split()[:4]) for call in calls]
    assert verbs[:2] == ["kustomize deploy/kubernetes/overlays/production", f"-n {namespace} delete job"]
    assert calls[2].startswith("apply -f")
    assert "--selector app.kubernetes.io/component in (namespace, settings, migrate)" in calls[2]
    full_apply = next(n for n, call in enumerate(calls) if call.startswith("apply -f") and "--selector" not in call)
    waited = next(n for n, call in enumerate(calls) if call.startswith(f"-n {namespace} get job migrate"))
    assert full_apply > waited
    assert f"-n {namespace} rollout status deployment.apps/web --timeout=30s" in calls


def test_a_failed_migrate_job_stops_the_deploy_with_its_log(tmp_path):
    result, calls = run_deploy(tmp_path, "/3")
    assert result.returncode == 1
    assert "the migrate Job did not succeed" in result.stderr
    assert any(call.endswith("logs job/migrate --tail=200") for call in calls)
    assert not [call for call in calls if call.startswith("apply -f") and "--selector" not in call], calls
