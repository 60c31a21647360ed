"""use_kubernetes=y: the Kustomize overlay renders, validates against the API schemas, and keeps the practices.

Kubernetes objects are validated with kubernetes-validate (PyPI, pinned in pyproject.toml) against the
strict JSON schemas it ships for KUBERNETES_VERSION. KEDA's ScaledObject and TriggerAuthentication
are validated against KEDA_SCHEMAS below: written here from KEDA 2.16's documented spec
(keda.sh/docs/2.16: "ScaledObject specification", the "Redis Lists Or Strings" scaler and its Sentinel
variant, the "RabbitMQ Queue" scaler, "Authentication"), limited to the fields of those scalers and refusing
any other; KEDA's own CRD is not vendored or fetched. Every test runs on a bake of each broker.

checkov (PyPI, the test group) runs its Kubernetes policies over the rendered overlay offline; every check
it fails must be in the table of docs/deploy-kubernetes.md, "checkov", with its reason, and every check in
that table must still fail, so the two cannot drift.

The overlay is built with `kubectl kustomize` when kubectl is on PATH (this machine: v1.32, Kustomize
v5.5.0). Without it, `assemble` applies the few Kustomize features the overlay uses (resources,
namespace, labels, images, strategic-merge patches of maps); where kubectl exists, a test holds the
two outputs equal, so the fallback cannot drift from the real build.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from bakery import run_cookiecutter
from test_generated_project import COMBINATIONS, KUBERNETES, KUBERNETES_RABBITMQ

KUBERNETES_VERSION = "1.33.0"
OVERLAY = "deploy/kubernetes/overlays/production"
WORKERS = {"worker": "default", "worker-io": "io", "worker-cpu": "cpu"}
CLUSTER_SCOPED = {"Namespace"}
PINNED_UPSTREAM = re.compile(r"^[\w./-]+(:[\w.-]+)?@sha256:[0-9a-f]{64}$|^[\w./-]+:(?!latest$)[\w.-]+$")

_STRING = {"type": "string"}
_INT = {"type": "integer", "minimum": 0}
# The list fields of the redis and redis-sentinel triggers (KEDA 2.16; sentinelMaster is the Sentinel one's).
REDIS_TRIGGER_FIELDS = (
    "databaseIndex", "listName", "listLength", "activationListLength", "enableTLS", "unsafeSsl", "sentinelMaster",
)  # fmt: skip
# What the two scalers read from a TriggerAuthentication (KEDA 2.16, their "Authentication Parameters").
REDIS_AUTH_PARAMETERS = (
    "address", "host", "port", "username", "password", "tls", "ca", "cert", "key", "keyPassword",
    "addresses", "hosts", "ports", "sentinelMaster", "sentinelUsername", "sentinelPassword",
)  # fmt: skip
# The rabbitmq trigger's fields (KEDA 2.16, "RabbitMQ Queue"; host, username and password only from a Secret here).
RABBITMQ_TRIGGER_FIELDS = (
    "protocol", "mode", "value", "activationValue", "queueName", "vhostName", "useRegex", "excludeUnacknowledged",
    "pageSize", "operation", "timeout", "unsafeSsl",
)  # fmt: skip
RABBITMQ_AUTH_PARAMETERS = ("host", "username", "password", "tls", "ca", "cert", "key", "keyPassword")
_AUTHENTICATION_REF = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": _STRING},
}
TRIGGER_SCHEMAS = [
    {
        "type": "object",
        "required": ["type", "metadata"],
        "additionalProperties": False,
        "properties": {
            "type": {"enum": ["redis", "redis-sentinel"]},
            "metadata": {
                "type": "object",
                "required": ["listName", "listLength"],
                "additionalProperties": False,
                # KEDA reads trigger metadata as strings.
                "properties": dict.fromkeys(REDIS_TRIGGER_FIELDS, _STRING),
            },
            "authenticationRef": _AUTHENTICATION_REF,
        },
    },
    {
        "type": "object",
        "required": ["type", "metadata"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": "rabbitmq"},
            "metadata": {
                "type": "object",
                "required": ["queueName", "mode", "value"],
                "additionalProperties": False,
                "properties": {
                    **dict.fromkeys(RABBITMQ_TRIGGER_FIELDS, _STRING),
                    "protocol": {"enum": ["amqp", "http", "auto"]},
                    "mode": {"enum": ["QueueLength", "MessageRate"]},
                },
            },
            "authenticationRef": _AUTHENTICATION_REF,
        },
    },
]
KEDA_SCHEMAS = {
    "ScaledObject": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": "ScaledObject"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "triggers"],
                "additionalProperties": False,
                "properties": {
                    "scaleTargetRef": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {"name": _STRING, "kind": _STRING, "apiVersion": _STRING},
                    },
                    "pollingInterval": _INT,
                    "cooldownPeriod": _INT,
                    "minReplicaCount": _INT,
                    "maxReplicaCount": _INT,
                    "triggers": {"type": "array", "minItems": 1, "items": {"oneOf": TRIGGER_SCHEMAS}},
                },
            },
        },
    },
    "TriggerAuthentication": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": "TriggerAuthentication"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["secretTargetRef"],
                "additionalProperties": False,
                "properties": {
                    "secretTargetRef": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["parameter", "name", "key"],
                            "additionalProperties": False,
                            "properties": {
                                "parameter": {"enum": sorted({*REDIS_AUTH_PARAMETERS, *RABBITMQ_AUTH_PARAMETERS})},
                                "name": _STRING,
                                "key": _STRING,
                            },
                        },
                    }
                },
            },
        },
    },
}


BROKERS = {KUBERNETES: "redis", KUBERNETES_RABBITMQ: "rabbitmq"}
# The field in which each broker's trigger names its queue.
QUEUE_FIELD = {"redis": "listName", "rabbitmq": "queueName"}


@pytest.fixture(scope="module", params=list(BROKERS), ids=list(BROKERS.values()))
def project(request, bake_once) -> Path:
    return bake_once(request.param, **COMBINATIONS[request.param])


@pytest.fixture(scope="module")
def broker(project) -> str:
    return "rabbitmq" if (project / "config/broker_rabbitmq.py").exists() else "redis"


def render(project: Path) -> list[dict]:
    if shutil.which("kubectl"):
        return kubectl_kustomize(project / OVERLAY)
    return assemble(project / OVERLAY)


@pytest.fixture(scope="module")
def rendered(project) -> list[dict]:
    return render(project)


@pytest.fixture(scope="module")
def redis_rendered(bake_once) -> list[dict]:
    """The Redis bake only, for what only a Redis broker has (Sentinel)."""
    return render(bake_once(KUBERNETES, **COMBINATIONS[KUBERNETES]))


def kubectl_kustomize(directory: Path) -> list[dict]:
    output = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return [document for document in yaml.safe_load_all(output) if document]


def _merge(base: dict, patch: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def assemble(directory: Path) -> list[dict]:
    """The Kustomize features the overlay and base use, applied as `kustomize build` applies them."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    documents: list[dict] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            documents.extend(assemble(path))
        else:
            documents.extend(document for document in yaml.safe_load_all(path.read_text()) if document)
    for patch in kustomization.get("patches", []):
        for change in yaml.safe_load_all((directory / patch["path"]).read_text()):
            for index, document in enumerate(documents):
                same = (document["kind"], document["metadata"]["name"]) == (change["kind"], change["metadata"]["name"])
                if same:
                    documents[index] = _merge(document, change)
    for label in kustomization.get("labels", []):
        for document in documents:
            document["metadata"].setdefault("labels", {}).update(label["pairs"])
    if "namespace" in kustomization:
        for document in documents:
            if document["kind"] not in CLUSTER_SCOPED:
                document["metadata"]["namespace"] = kustomization["namespace"]
    images = {image["name"]: image for image in kustomization.get("images", [])}
    for container in _containers(documents):
        image = images.get(container["image"])
        if image:
            container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    return documents


def _pod_specs(documents: list[dict]) -> list[tuple[str, dict]]:
    return [
        (document["metadata"]["name"], document["spec"]["template"]["spec"])
        for document in documents
        if document["kind"] in ("Deployment", "Job")
    ]


def _containers(documents: list[dict]) -> list[dict]:
    return [
        container
        for _, pod in _pod_specs(documents)
        for container in pod.get("initContainers", []) + pod["containers"]
    ]


def _by_kind(documents: list[dict], kind: str) -> dict[str, dict]:
    return {document["metadata"]["name"]: document for document in documents if document["kind"] == kind}


def test_a_use_kubernetes_answer_other_than_y_or_n_is_refused_before_anything_is_written(tmp_path):
    result = run_cookiecutter(tmp_path, use_kubernetes="yes")
    assert result.returncode != 0
    assert "use_kubernetes: 'yes'" in result.stderr
    assert "not one of y, n" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_without_the_option_there_are_no_manifests(bake_once):
    project = bake_once("defaults")
    assert not (project / "deploy").exists()
    assert not (project / "docs/deploy-kubernetes.md").exists()
    assert not (project / "tests/test_kubernetes_manifests.py").exists()


def test_the_overlay_renders_every_manifest(rendered, project):
    kinds = sorted({document["kind"] for document in rendered})
    assert kinds == sorted(
        [
            "ConfigMap", "Deployment", "Job", "Namespace", "NetworkPolicy", "PodDisruptionBudget",
            "ScaledObject", "Service", "TriggerAuthentication",
        ]
    )  # fmt: skip
    assert set(_by_kind(rendered, "Deployment")) == {"web", "beat", "flower", *WORKERS}
    slug = project.name.replace("_", "-")
    assert {document["metadata"].get("namespace") for document in rendered if document["kind"] != "Namespace"} == {
        slug
    }


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl absent: only the fallback assembly runs")
def test_the_fallback_assembly_equals_kubectl_kustomize(project, rendered):
    def key(document):
        return (document["kind"], document["metadata"]["name"])

    assert sorted(assemble(project / OVERLAY), key=key) == sorted(rendered, key=key)


def test_every_kubernetes_object_validates_against_the_api_schemas(rendered):
    for document in rendered:
        if document["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_every_keda_object_validates_against_the_keda_spec(rendered):
    keda = [document for document in rendered if document["apiVersion"].startswith("keda.sh/")]
    assert {document["kind"] for document in keda} == set(KEDA_SCHEMAS)
    for document in keda:
        jsonschema.validate(document, KEDA_SCHEMAS[document["kind"]])


def test_a_keda_field_outside_the_spec_is_refused(rendered):
    scaled = copy.deepcopy(next(iter(_by_kind(rendered, "ScaledObject").values())))
    scaled["spec"]["minReplicas"] = 1  # the HPA's name, not KEDA's minReplicaCount
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, KEDA_SCHEMAS["ScaledObject"])


def test_every_declared_queue_has_exactly_one_autoscaled_worker_deployment(rendered, project, broker):
    settings = (project / "config/settings/base.py").read_text()
    # Queue("io") with a Redis broker, broker_rabbitmq.task_queue("io", ...) with RabbitMQ.
    queues = settings.split("CELERY_TASK_QUEUES = (", 1)[1].split("\n)\n", 1)[0]
    declared = re.findall(r'(?:Queue|task_queue)\("(\w+)"', queues)
    assert sorted(declared) == sorted(WORKERS.values())
    deployments = _by_kind(rendered, "Deployment")
    consumers = {}
    for name, deployment in deployments.items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            script = project / container["command"][0]
            queues = re.findall(r"\s-Q\s+(\S+)", script.read_text()) if script.is_file() else []
            for queue in queues:
                consumers.setdefault(queue, []).append(name)
    assert consumers == {queue: [name] for name, queue in WORKERS.items()}
    scaled = _by_kind(rendered, "ScaledObject")
    queue_field = QUEUE_FIELD[broker]
    assert {name: so["spec"]["triggers"][0]["metadata"][queue_field] for name, so in scaled.items()} == WORKERS
    assert {trigger["type"] for so in scaled.values() for trigger in so["spec"]["triggers"]} == {broker}
    for name in WORKERS:
        assert scaled[name]["spec"]["scaleTargetRef"]["name"] == name
        assert "replicas" not in deployments[name]["spec"], "the ScaledObject owns the replica count"
    assert scaled["worker-cpu"]["spec"]["minReplicaCount"] == 0


def test_no_container_runs_as_root(rendered):
    for name, pod in _pod_specs(rendered):
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["runAsUser"] != 0, name
        for container in pod.get("initContainers", []) + pod["containers"]:
            own = container["securityContext"]
            assert own.get("runAsUser", context["runAsUser"]) != 0, (name, container["name"])
            assert own["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert own["capabilities"]["drop"] == ["ALL"], (name, container["name"])


def test_every_image_is_the_projects_or_a_pinned_upstream_one(rendered, project):
    overlay = yaml.safe_load((project / OVERLAY / "kustomization.yaml").read_text())
    (image,) = overlay["images"]
    ours = f"{image['newName']}:{image['newTag']}"
    for container in _containers(rendered):
        assert container["image"] == ours or PINNED_UPSTREAM.match(container["image"]), container["image"]


def test_every_container_has_requests_and_limits(rendered):
    for container in _containers(rendered):
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}, container["name"]
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}, container["name"]


def test_probes_beat_and_grace_periods(rendered):
    deployments = _by_kind(rendered, "Deployment")
    web = deployments["web"]["spec"]["template"]["spec"]["containers"][0]
    # /healthz/?ready: the database only, so a Redis blip does not drain every web pod at once.
    assert web["readinessProbe"]["exec"]["command"] == ["compose/healthcheck-web", "ready"]
    assert "tcpSocket" in web["livenessProbe"], "a database blip must not restart every web pod"
    beat = deployments["beat"]["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"] == {"type": "Recreate"}
    for name, queue in WORKERS.items():
        pod = deployments[name]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["exec"]["command"] == ["compose/healthcheck-worker", queue], (name, probe)
        assert pod["terminationGracePeriodSeconds"] >= 360 + 30, name
    beat_container = beat["template"]["spec"]["containers"][0]
    assert beat_container["readinessProbe"]["exec"]["command"] == ["compose/healthcheck-beat"]


def test_keda_reads_the_brokers_address_credentials_and_tls_from_a_secret(rendered, broker):
    (auth,) = [doc for doc in rendered if doc["kind"] == "TriggerAuthentication"]
    secret = f"{broker}-auth"
    # Redis: the URL taken apart (KEDA's redis scaler has no URL parameter); RabbitMQ: the amqp(s):// URL whole.
    parameters = ("address", "username", "password", "tls", "ca") if broker == "redis" else ("host",)
    assert auth["metadata"]["name"] == secret
    assert {ref["parameter"]: (ref["name"], ref["key"]) for ref in auth["spec"]["secretTargetRef"]} == {
        parameter: (secret, parameter) for parameter in parameters
    }
    for scaled in (doc for doc in rendered if doc["kind"] == "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            assert not {"address", "host"} & set(trigger["metadata"]), "the address comes from the Secret"
            # KEDA refuses enableTLS/unsafeSsl next to the TriggerAuthentication's tls parameter.
            assert not {"enableTLS", "unsafeSsl"} & set(trigger["metadata"]), scaled["metadata"]["name"]
            assert trigger["authenticationRef"]["name"] == secret
            if broker == "rabbitmq":
                # amqp: a passive declare's ready count, the backlog (http would add the unacked, the running tasks).
                assert (trigger["metadata"]["protocol"], trigger["metadata"]["mode"]) == ("amqp", "QueueLength")


def test_the_documented_sentinel_variant_validates_against_the_keda_spec(redis_rendered):
    """docs/deploy-kubernetes.md, "A managed Redis": the trigger type and two parameters change, nothing else."""
    rendered = redis_rendered
    scaled = copy.deepcopy(_by_kind(rendered, "ScaledObject")["worker"])
    scaled["spec"]["triggers"][0]["type"] = "redis-sentinel"
    jsonschema.validate(scaled, KEDA_SCHEMAS["ScaledObject"])
    auth = copy.deepcopy(_by_kind(rendered, "TriggerAuthentication")["redis-auth"])
    for ref in auth["spec"]["secretTargetRef"]:
        if ref["parameter"] == "address":
            ref["parameter"] = "addresses"
    auth["spec"]["secretTargetRef"].append(
        {"parameter": "sentinelMaster", "name": "redis-auth", "key": "sentinelMaster"}
    )
    jsonschema.validate(auth, KEDA_SCHEMAS["TriggerAuthentication"])


def test_web_and_workers_wait_for_the_migrate_job(rendered):
    job = _by_kind(rendered, "Job")["migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["compose/migrate"]
    for name in ("web", "beat", *WORKERS):
        pod = _by_kind(rendered, "Deployment")[name]["spec"]["template"]["spec"]
        assert "migrate --check" in " ".join(pod["initContainers"][0]["command"]), name


def _secrets_read(pod: dict) -> set[str]:
    containers = pod.get("initContainers", []) + pod["containers"]
    names = {
        source["secretRef"]["name"] for c in containers for source in c.get("envFrom", []) if "secretRef" in source
    }
    names |= {
        env["valueFrom"]["secretKeyRef"]["name"]
        for c in containers
        for env in c.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    return names | {volume["secret"]["secretName"] for volume in pod.get("volumes", []) if "secret" in volume}


def test_each_workload_reads_only_its_own_secret(rendered):
    secrets = {name: _secrets_read(pod) for name, pod in _pod_specs(rendered)}
    assert secrets == {
        **{name: {"django-env"} for name in ["web", "migrate", "beat", *WORKERS]},
        "flower": {"flower-env"},
    }


def test_flower_holds_no_value_of_the_django_secret(rendered, project):
    env_file = dict(
        line.split("=", 1) for line in (project / ".envs/.production/.django").read_text().splitlines() if line
    )
    flower = _by_kind(rendered, "Deployment")["flower"]["spec"]["template"]["spec"]["containers"][0]
    literals = {env["name"]: env["value"] for env in flower["env"] if "value" in env}
    # The settings require these at import; Flower gets stand-ins (the generated suite starts it with them).
    assert set(literals) == {"DJANGO_SECRET_KEY", "DATABASE_URL", "DJANGO_EMAIL_HOST", "METRICS_TOKEN"}
    assert not set(literals.values()) & set(env_file.values())
    assert {env["name"]: env["valueFrom"]["secretKeyRef"] for env in flower["env"] if "valueFrom" in env} == {
        "FLOWER_USER": {"name": "flower-env", "key": "FLOWER_USER"},
        "FLOWER_PASSWORD": {"name": "flower-env", "key": "FLOWER_PASSWORD"},
    }


def test_the_secrets_script_writes_every_secret_the_manifests_read(rendered, project, broker):
    script = (project / "deploy/kubernetes/secrets").read_text()
    written = set(re.findall(r"^apply_secret ([\w-]+) ", script, re.MULTILINE))
    read = set().union(*(_secrets_read(pod) for _, pod in _pod_specs(rendered)))
    read |= {
        ref["name"]
        for auth in _by_kind(rendered, "TriggerAuthentication").values()
        for ref in auth["spec"]["secretTargetRef"]
    }
    assert written == read == {"django-env", "flower-env", f"{broker}-auth"}


@pytest.mark.parametrize("script", ["deploy", "secrets"])
def test_the_deploy_scripts_parse(project, script):
    path = project / "deploy/kubernetes" / script
    assert path.stat().st_mode & 0o111, "executable"
    subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)


def test_without_flower_no_pod_or_script_mentions_its_secret(bake_once):
    project = bake_once("kubernetes-no-flower", use_kubernetes="y", use_flower="n")
    documents = assemble(project / OVERLAY)
    for document in documents:
        if document["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(document, KEDA_SCHEMAS[document["kind"]])
        else:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    assert "flower" not in _by_kind(documents, "Deployment")
    assert {name for _, pod in _pod_specs(documents) for name in _secrets_read(pod)} == {"django-env"}
    script = project / "deploy/kubernetes/secrets"
    assert "flower" not in script.read_text().lower(), "no Flower, no word of it"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)


def test_every_worker_and_web_has_a_disruption_budget(rendered):
    budgets = _by_kind(rendered, "PodDisruptionBudget")
    assert set(budgets) == {"web", *WORKERS}
    for name, budget in budgets.items():
        assert budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == name


def test_only_the_projects_pods_reach_the_datastores(rendered, project, broker):
    policy = _by_kind(rendered, "NetworkPolicy")["datastores-from-project-only"]
    project_pods = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": project.name.replace("_", "-")}}}
    project_rule, keda_rule = policy["spec"]["ingress"]
    assert project_rule["from"] == [project_pods]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (components,) = policy["spec"]["podSelector"]["matchExpressions"]
    # KEDA reads the broker only: Redis's port with a Redis broker, AMQP's (and AMQPS's) with RabbitMQ.
    broker_ports = [6379] if broker == "redis" else [5672, 5671]
    if broker == "rabbitmq":
        assert components["values"] == ["postgresql", "redis", "rabbitmq"]
        assert [port["port"] for port in project_rule["ports"]] == [5432, 6379, *broker_ports]
    else:
        assert components["values"] == ["postgresql", "redis"]
        assert [port["port"] for port in project_rule["ports"]] == [5432, 6379]
    assert keda_rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}]
    assert [port["port"] for port in keda_rule["ports"]] == broker_ports


def _documented_checkov_skips(project: Path) -> dict[str, str]:
    doc = (project / "docs/deploy-kubernetes.md").read_text().split("\n## checkov\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(CKV\w+)` \| ([^|]+) \| ([^|]+) \|$", doc, re.MULTILINE)
    return {check: reason.strip() for check, _, reason in rows}


def test_checkov_fails_only_the_checks_the_docs_justify(rendered, project, tmp_path):
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump_all(rendered))
    # Offline: no download of external checks, no Bridgecrew mapping or API key.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    env.pop("BC_API_KEY", None)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "checkov"), "--directory", str(tmp_path), "--framework", "kubernetes",
         "--skip-download", "--output", "json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert report["summary"]["parsing_errors"] == 0
    results = report["results"]["passed_checks"] + report["results"]["failed_checks"]
    checked = {check["resource"] for check in results}
    for document in rendered:
        if document["kind"] in ("Deployment", "Job"):
            assert f"{document['kind']}.{document['metadata']['namespace']}.{document['metadata']['name']}" in checked
    failed = {check["check_id"] for check in report["results"]["failed_checks"]}
    documented = _documented_checkov_skips(project)
    assert all(documented.values()), "each skipped check has its reason"
    assert failed == set(documented)
