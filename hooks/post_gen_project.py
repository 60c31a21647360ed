"""Finish the generated project: per-project secrets, unchosen options removed, next steps."""

from __future__ import annotations

import os
import secrets
import shutil
import string
import subprocess
from pathlib import Path

SLUG = "{{ cookiecutter.project_slug }}"
DOMAIN = "{{ cookiecutter.domain_name }}"
INCLUDE_EXAMPLES = "{{ cookiecutter.include_examples }}" == "y"
USE_FLOWER = "{{ cookiecutter.use_flower }}" == "y"
USE_KUBERNETES = "{{ cookiecutter.use_kubernetes }}" == "y"
USE_SENTRY = "{{ cookiecutter.use_sentry }}" == "y"
CI_TOOL = "{{ cookiecutter.ci_tool }}"
RESULT_BACKEND = "{{ cookiecutter.result_backend }}"
BROKER = "{{ cookiecutter.broker }}"

# Files and folders that belong to one option, removed when the option is not chosen.
OPTION_PATHS = {
    "examples": [f"{SLUG}/examples", "tests/examples"],
    "flower": [
        "compose/start-flower",
        "compose/healthcheck-flower",
        "config/flower.py",
        "deploy/kubernetes/base/flower.yaml",
    ],
    "github": [".github"],
    "gitlab": [".gitlab-ci.yml", "renovate.json"],
    "kubernetes": ["deploy", "docs/deploy-kubernetes.md", "tests/test_kubernetes_manifests.py"],
    "django-db": [f"{SLUG}/taskqueue/patches/django_celery_results.py", "tests/taskqueue/test_result_backend.py"],
    # Redis as the broker: its patched transport, the client of the broker's Redis and what tests them.
    "redis-broker": [
        f"{SLUG}/taskqueue/patches/kombu.py",
        f"{SLUG}/taskqueue/broker_redis.py",
        "tests/taskqueue/test_broker_transport.py",
        "tests/contracts/test_broker_held.py",
        "tests/taskqueue/test_checks_redis.py",
        # Redis-shaped brokers (ACL users, TLS, Sentinel, stalls, the visibility timeout): RabbitMQ has none of them.
        "tests/taskqueue/test_redis_acl.py",
        "tests/taskqueue/test_redis_tls.py",
        "tests/support/redis_shapes.py",
        "tests/reliability/sentinel.py",
        "tests/reliability/test_sentinel.py",
        "tests/reliability/test_redis_shapes.py",
        "tests/reliability/test_redis_stall.py",
        "tests/reliability/test_eta_trap.py",
        # Raw bytes pushed onto a Redis list, and a cache sharing the queues' Redis: Redis-broker scenarios.
        "tests/reliability/test_bad_messages.py",
        "tests/reliability/test_cache_clear.py",
        "tests/reliability/enqueue_urls.py",
        # The benchmark's herd mode counts the Redis commands of the project's transport against kombu's own.
        "tools/bench/herd.py",
        "tools/bench/stock_transport.py",
    ],
    "rabbitmq": [
        "config/broker_rabbitmq.py",
        f"{SLUG}/taskqueue/state_redis.py",
        "tools/rabbitmq_server.py",
        f"{SLUG}/taskqueue/management/commands/declare_queues.py",
        "tests/taskqueue/test_checks_rabbitmq.py",
        "docs/brokers.md",
        "tests/support/dead_letter_queue.py",
        "tests/test_rabbitmq_server.py",
        "compose/rabbitmq.conf",
        "tests/reliability/test_long_runs.py",
        "tests/reliability/test_bad_amqp_messages.py",
        "tools/bench/scratch_rabbitmq.py",
        "tests/bench/test_bench_on_rabbitmq.py",
    ],
}

# Modules with a second implementation for result_backend=none: (alternative, the file it replaces).
# Without a result backend there is no chord, so the report's fan-in counts pages in Redis instead.
NO_RESULT_BACKEND_FILES = [
    (f"{SLUG}/examples/reports/fan_in_without_results.py", f"{SLUG}/examples/reports/fan_in.py"),
    ("tests/examples/reports/test_fan_in_without_results.py", "tests/examples/reports/test_fan_in.py"),
]


# Modules with a second implementation for broker=rabbitmq: (alternative, the file it replaces).
RABBITMQ_FILES = [
    (f"{SLUG}/health/views_rabbitmq.py", f"{SLUG}/health/views.py"),
    ("tests/health/test_healthz_rabbitmq.py", "tests/health/test_healthz.py"),
    ("docs/reliability_rabbitmq.md", "docs/reliability.md"),
]


def random_string(length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def secret_key() -> str:
    # Django wants 50+ characters with enough variety; avoid `$` and quotes, which env files mangle.
    return random_string(64, string.ascii_letters + string.digits + "!#%&()*+,-./:;<=>?@[]^_{|}~")


def write_env(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    path.chmod(0o600)


def write_env_files(root: Path) -> None:
    flower_user, flower_password = random_string(12), random_string(32)
    local_pg_password, prod_pg_password = random_string(32), random_string(32)
    prod_redis_password = random_string(40)
    local_rabbitmq_password, prod_rabbitmq_password = random_string(32), random_string(40)
    flower = {"FLOWER_USER": flower_user, "FLOWER_PASSWORD": flower_password} if USE_FLOWER else {}

    # Running without Docker (make dev / honcho): SQLite and a Redis on localhost.
    write_env(
        root / ".env",
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DJANGO_SECRET_KEY": secret_key(),
            "REDIS_URL": "redis://localhost:6379/0",
            **({"CELERY_BROKER_URL": "amqp://guest:guest@localhost:5672//"} if BROKER == "rabbitmq" else {}),
            **flower,
        },
    )
    write_env(
        root / ".envs/.local/.django",
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DJANGO_SECRET_KEY": secret_key(),
            "DATABASE_URL": f"postgres://{SLUG}:{local_pg_password}@postgres:5432/{SLUG}",
            "REDIS_URL": "redis://redis:6379/0",
            **(
                {"CELERY_BROKER_URL": f"amqp://{SLUG}:{local_rabbitmq_password}@rabbitmq:5672/{SLUG}"}
                if BROKER == "rabbitmq"
                else {}
            ),
            "EMAIL_HOST": "mailpit",
            "EMAIL_PORT": "1025",
            "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            **flower,
        },
    )
    write_env(
        root / ".envs/.local/.postgres",
        {"POSTGRES_DB": SLUG, "POSTGRES_USER": SLUG, "POSTGRES_PASSWORD": local_pg_password},
    )
    production = {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secret_key(),
        "DJANGO_ALLOWED_HOSTS": DOMAIN,
        # An admin URL nobody guesses keeps password-spraying bots away from the login page.
        "DJANGO_ADMIN_URL": f"{random_string(24)}/",
        "DATABASE_URL": f"postgres://{SLUG}:{prod_pg_password}@postgres:5432/{SLUG}",
        "REDIS_URL": f"redis://:{prod_redis_password}@redis:6379/0",
        **(
            {"CELERY_BROKER_URL": f"amqp://{SLUG}:{prod_rabbitmq_password}@rabbitmq:5672/{SLUG}"}
            if BROKER == "rabbitmq"
            else {}
        ),
        "DJANGO_EMAIL_HOST": f"smtp.{DOMAIN}",
        # /metrics answers only `Authorization: Bearer <this>`: give it to Prometheus (docs/monitoring.md).
        "METRICS_TOKEN": random_string(40),
        **flower,
    }
    if USE_SENTRY:
        production["SENTRY_DSN"] = "https://public-key@sentry.invalid/1  # replace with your project's DSN"
    write_env(root / ".envs/.production/.django", production)
    write_env(
        root / ".envs/.production/.postgres",
        {"POSTGRES_DB": SLUG, "POSTGRES_USER": SLUG, "POSTGRES_PASSWORD": prod_pg_password},
    )
    write_env(root / ".envs/.production/.redis", {"REDIS_PASSWORD": prod_redis_password})
    if BROKER == "rabbitmq":
        # The compose rabbitmq service creates this user and virtual host at its first start.
        for environment, password in (("local", local_rabbitmq_password), ("production", prod_rabbitmq_password)):
            write_env(
                root / f".envs/.{environment}/.rabbitmq",
                {"RABBITMQ_DEFAULT_USER": SLUG, "RABBITMQ_DEFAULT_PASS": password, "RABBITMQ_DEFAULT_VHOST": SLUG},
            )


def remove_unchosen_options(root: Path) -> None:
    unchosen = {
        "examples": not INCLUDE_EXAMPLES,
        "flower": not USE_FLOWER,
        "kubernetes": not USE_KUBERNETES,
        "github": CI_TOOL != "github",
        "gitlab": CI_TOOL != "gitlab",
        "django-db": RESULT_BACKEND != "django-db",
        "redis-broker": BROKER != "redis",
        "rabbitmq": BROKER != "rabbitmq",
    }
    for option, paths in OPTION_PATHS.items():
        if not unchosen[option]:
            continue
        for relative in paths:
            path = root / relative
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def choose_alternative_files(root: Path) -> None:
    for alternative, replaced in RABBITMQ_FILES:
        if BROKER == "rabbitmq":
            (root / alternative).replace(root / replaced)
        else:
            (root / alternative).unlink()
    if not INCLUDE_EXAMPLES:
        return  # removed with the examples
    for alternative, replaced in NO_RESULT_BACKEND_FILES:
        if RESULT_BACKEND == "none":
            (root / alternative).replace(root / replaced)
        else:
            (root / alternative).unlink()


def lock_dependencies(root: Path) -> str:
    """Write uv.lock so that image builds install exactly these versions (the Dockerfile's `uv sync --locked`).

    From uv's cache first (no network), else from the package index; without either the project is left
    unlocked and the next steps say how to lock it. SKIP_UV_LOCK=1 skips this (the template's own tests
    set it where a lock would not be used). Returns what happened, for the next steps.
    """
    if os.environ.get("SKIP_UV_LOCK") == "1":
        return "uv.lock not written (SKIP_UV_LOCK=1): run `uv lock` and commit uv.lock."
    uv = shutil.which("uv")
    if uv is None:
        return "uv.lock not written (no uv on PATH): install uv, run `uv lock` and commit uv.lock."
    for extra in (["--offline"], []):
        try:
            result = subprocess.run(
                [uv, "lock", "--quiet", *extra], cwd=root, capture_output=True, text=True, timeout=180, check=False
            )
        except subprocess.TimeoutExpired:
            continue
        if result.returncode == 0:
            return "uv.lock written: commit it; `uv lock --upgrade` moves every dependency to its newest version."
    return (
        "uv.lock not written (no package index reachable): run `uv lock` once online and commit uv.lock;\n"
        "until then each image build resolves the newest versions."
    )


def print_next_steps(lock_note: str) -> None:
    print(
        f"""
Generated {SLUG}. Its secrets are in .env and .envs/.production/ (git-ignored); .envs/.local/ holds the local
containers' values and is committed, so a teammate's clone runs `docker compose up` as it is.
{lock_note}

With Docker:
    cd {SLUG} && docker compose up

Without Docker (needs redis-server{", rabbitmq-server" if BROKER == "rabbitmq" else ""} and uv):
    cd {SLUG} && make dev

Tests (start their own Redis{" and RabbitMQ" if BROKER == "rabbitmq" else ""}):
    cd {SLUG} && uv run pytest
"""
    )


if __name__ == "__main__":
    project = Path.cwd()
    write_env_files(project)
    remove_unchosen_options(project)
    choose_alternative_files(project)
    print_next_steps(lock_dependencies(project))
