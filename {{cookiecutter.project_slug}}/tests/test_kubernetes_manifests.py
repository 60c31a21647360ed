"""The Kubernetes Deployments run the Procfile's processes, and the checks read them (docs/deploy-kubernetes.md).

Rendering and schema validation are the template's tests (kubectl kustomize, kubernetes-validate);
these keep the manifests and the Celery configuration in step whenever either changes.
"""

import os
import re
import shutil
import subprocess
{%- if cookiecutter.use_flower == "y" %}
import sys
{%- endif %}
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
        assert process.grace_seconds is not None, process.name
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
# Records each call and keeps a copy of each Secret's files; answers `get job` with the Job status the test chose.
echo "$*" >> "$KUBECTL_CALLS"
previous=""
secret=""
for argument in "$@"; do
    case "$argument" in
        --from-env-file=*) cp "${argument#*=}" "$KUBECTL_CALLS.$secret.env" ;;
        --from-file=*) cp -r "${argument#*=}" "$KUBECTL_CALLS.$secret" ;;
    esac
    [[ "$previous" == generic ]] && secret="$argument"
    previous="$argument"
done
case "$1 $2 $3 $4" in
    "kustomize "*) echo "rendered" ;;
    "-n "*" get job"*) echo "$JOB_STATUS" ;;
    "-n "*" get deployments"*) echo "deployment.apps/web" ;;
esac
"""


def run_script(
    tmp_path: Path, script: str, *arguments: str, **env: str
) -> tuple[subprocess.CompletedProcess, list[str]]:
    """A deploy/kubernetes script against a kubectl that records its calls: no cluster can run here."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    calls = tmp_path / "calls"
    environment = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "KUBECTL_CALLS": str(calls), **env}
    result = subprocess.run(
        [str(PROJECT_DIR / "deploy/kubernetes" / script), *arguments], cwd=PROJECT_DIR, env=environment,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return result, calls.read_text().splitlines() if calls.exists() else []


def run_deploy(tmp_path: Path, job_status: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    return run_script(tmp_path, "deploy", JOB_STATUS=job_status, MIGRATE_TIMEOUT_SECONDS="30")


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


# A production env file of made-up values (the secret scan is told so line by line).
ENV_FILE = "".join(
    f"{line}\n"
    for line in (
        "DJANGO_SETTINGS_MODULE=config.settings.production",
        "DJANGO_SECRET_KEY=the-signing-key",  # pragma: allowlist secret
        "DATABASE_URL=postgres://app:db-password@postgres:5432/app",  # pragma: allowlist secret
{%- if cookiecutter.broker == "rabbitmq" %}
        "REDIS_URL=redis://:redis-password@redis:6379/0",  # pragma: allowlist secret
        "CELERY_BROKER_URL={broker_url}",
{%- else %}
        "REDIS_URL={redis_url}",
{%- endif %}
        "DJANGO_EMAIL_HOST=smtp.example.com",
        "METRICS_TOKEN=the-metrics-token",  # pragma: allowlist secret
{%- if cookiecutter.use_sentry == "y" %}
        "SENTRY_DSN=https://public-key@sentry.invalid/1",
{%- endif %}
{%- if cookiecutter.use_flower == "y" %}
        "FLOWER_USER=flower",
        "FLOWER_PASSWORD=flower-password",  # pragma: allowlist secret
{%- endif %}
    )
)


{% if cookiecutter.broker == "rabbitmq" -%}
BROKER_URL = "amqps://app:p%40ss@rabbitmq.example:5671/app"  # pragma: allowlist secret


def secrets_script(tmp_path: Path, broker_url: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    env_file = tmp_path / "production.env"
    env_file.write_text(ENV_FILE.format(broker_url=broker_url))
    return run_script(tmp_path, "secrets", str(env_file))


def run_secrets(tmp_path: Path, *, broker_url: str = BROKER_URL):
    result, calls = secrets_script(tmp_path, broker_url)
{%- else -%}
def run_secrets(
    tmp_path: Path,
    extra: str = "",
    *,
    redis_url: str = "rediss://app:p%40ss@redis.example:6380/0",  # pragma: allowlist secret
):
    env_file = tmp_path / "production.env"
    env_file.write_text(ENV_FILE.format(redis_url=redis_url) + extra)
    result, calls = run_script(tmp_path, "secrets", str(env_file))
{%- endif %}
    assert result.returncode == 0, result.stderr
    return calls, tmp_path / "calls"


def _env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def _auth(path: Path) -> dict[str, str]:
    return {file.name: file.read_text() for file in path.iterdir()}


def test_the_secrets_script_gives_each_secret_only_what_its_readers_use(tmp_path):
    calls, recorded = run_secrets(tmp_path)
    namespace = PROJECT_DIR.name.replace("_", "-")
    created = [call.split()[5] for call in calls if call.startswith(f"-n {namespace} create secret generic")]
{%- if cookiecutter.use_flower == "y" %}
    assert created == ["django-env", "flower-env", "{{ cookiecutter.broker }}-auth"]
    django_env = _env(Path(f"{recorded}.django-env.env"))
    assert "FLOWER_PASSWORD" not in django_env
    assert set(_env(Path(f"{recorded}.flower-env.env"))) == {
        "FLOWER_USER", "FLOWER_PASSWORD", {% if cookiecutter.broker == "rabbitmq" %}"CELERY_BROKER_URL", {% endif %}"REDIS_URL",{% if cookiecutter.use_sentry == "y" %} "SENTRY_DSN",{% endif %}
    }  # fmt: skip
{%- else %}
    assert created == ["django-env", "{{ cookiecutter.broker }}-auth"]
    django_env = _env(Path(f"{recorded}.django-env.env"))
{%- endif %}
{%- if cookiecutter.broker == "rabbitmq" %}
    assert django_env["DATABASE_URL"] == "postgres://app:db-password@postgres:5432/app"  # pragma: allowlist secret
    # KEDA's view of the broker: the workers' URL as it is (KEDA takes the user, password and virtual host from it).
    assert _auth(Path(f"{recorded}.rabbitmq-auth")) == {"host": BROKER_URL}


def test_the_secrets_script_refuses_a_broker_url_keda_cannot_read(tmp_path):
    result, calls = secrets_script(tmp_path, "redis://redis:6379/0")
    assert result.returncode == 1
    assert "CELERY_BROKER_URL in" in result.stderr
    assert "must be the RabbitMQ's amqp:// or amqps:// URL, not 'redis://redis:6379/0'" in result.stderr
    assert calls == [], "nothing applied"
{%- else %}
    assert django_env["DATABASE_URL"] == "postgres://app:db-password@postgres:5432/app"  # pragma: allowlist secret
    # KEDA's view of the broker: the workers' URL taken apart, TLS on for rediss://.
    assert _auth(Path(f"{recorded}.redis-auth")) == {
        "address": "redis.example:6380", "username": "app", "password": "p@ss", "tls": "enable", "ca": "",
    }  # fmt: skip


def test_keda_follows_a_separate_broker_url_and_its_sentinels(tmp_path):
    sentinels = "sentinel://:pw@sentinel-1:26379/0;sentinel://:pw@sentinel-2:26379/0"
    _, recorded = run_secrets(tmp_path, f"CELERY_BROKER_URL={sentinels}\nREDIS_SENTINEL_MASTER=primary\n")
    assert _auth(Path(f"{recorded}.redis-auth")) == {
        "address": "sentinel-1:26379,sentinel-2:26379", "username": "",
        "password": "pw",  # pragma: allowlist secret
        "tls": "disable", "ca": "", "sentinelMaster": "primary",
    }  # fmt: skip
{%- endif %}
{%- if cookiecutter.use_flower == "y" %}


def test_flower_starts_its_celery_app_with_only_its_own_secret_and_the_stand_ins(tmp_path):
{%- if cookiecutter.broker == "rabbitmq" %}
    broker_url = "amqp://app:pw@localhost:5672/app"  # pragma: allowlist secret
    _, recorded = run_secrets(tmp_path, broker_url=broker_url)
{%- else %}
    broker_url = "redis://:pw@localhost:6379/0"  # pragma: allowlist secret
    _, recorded = run_secrets(tmp_path, redis_url=broker_url)
{%- endif %}
    (flower,) = [
        document
        for document in yaml.safe_load_all((BASE / "flower.yaml").read_text())
        if document["kind"] == "Deployment"
    ]
    container = flower["spec"]["template"]["spec"]["containers"][0]
    stand_ins = {env["name"]: env["value"] for env in container["env"] if "value" in env}
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        **_env(Path(f"{recorded}.flower-env.env")),
        **stand_ins,
    }
    # What `celery -A config.celery_app flower` loads before it serves: the settings, Django's apps, every task.
    loaded = subprocess.run(
        [sys.executable, "-c", "from config.celery_app import app; app.loader.import_default_modules(); "
         "print(app.conf.broker_url)"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == broker_url
{%- endif %}
