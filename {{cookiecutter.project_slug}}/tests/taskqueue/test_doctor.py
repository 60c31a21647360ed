{% if cookiecutter.broker == "rabbitmq" -%}
"""manage.py celery_doctor against real RabbitMQ and misconfigured Redis servers, and its connection budget.
{%- else -%}
"""manage.py celery_doctor against real, misconfigured Redis servers, and its connection budget.
{%- endif %}

Each Redis case runs the command in a fresh process pointed at a redis-server of that shape, as the
migrate step runs it. PostgreSQL's own limit (SHOW max_connections) is read against a real server
started with max_connections=20 by the template's tests; here the limit comes from
DATABASE_CONNECTION_LIMIT, which takes the server's place.
"""

import os
import subprocess
import sys
import time

import pytest
{%- if cookiecutter.broker == "rabbitmq" %}
from django.conf import settings
{%- endif %}
from django.core.management import CommandError, call_command
{%- if cookiecutter.broker == "rabbitmq" %}
from kombu import Connection, Queue
{%- endif %}

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue import connection_budget, doctor
from tools.procfile import PROJECT_DIR
from tools.redis_server import MANAGED_ACL_RULES, AclUser, RedisServer, free_port

# PostgreSQL's default max_connections (100) less its superuser_reserved_connections (3).
POSTGRESQL_DEFAULT_LIMIT = 97
{%- if cookiecutter.broker == "rabbitmq" %}
# The subject of the Redis that keeps the task state (RabbitMQ is the broker).
REDIS = "redis"
{%- else %}
# The subject of the broker's Redis.
REDIS = "broker"
{%- endif %}


def run_doctor(redis_url: str, *args: str{% if cookiecutter.broker == "rabbitmq" %}, broker_url: str = ""{% endif %}) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("REDIS_", "CELERY_"))}
{%- if cookiecutter.broker == "rabbitmq" %}
    # The session's RabbitMQ virtual host unless the test gives another.
    clean["CELERY_BROKER_URL"] = broker_url or settings.CELERY_BROKER_URL
{%- endif %}
    return subprocess.run(
        [sys.executable, "manage.py", "celery_doctor", *args],
        cwd=PROJECT_DIR,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings.test", "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def redis_of_shape():
    started = []

    def start(**shape) -> RedisServer:
        server = RedisServer(**shape).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(remove_data=True)


def lines(result: subprocess.CompletedProcess, level: str) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith(level)]


def test_a_well_configured_redis_passes_and_the_doctor_says_what_it_checked(redis_of_shape):
    result = run_doctor(redis_of_shape().url)
    assert result.returncode == 0, result.stdout + result.stderr
    checked = " ".join(lines(result, "ok"))
    for seen in ("maxmemory-policy is noeviction", "AOF is on", "may run every command", "grace period"):
        assert seen in checked
    assert "0 errors" in result.stdout


def test_an_evicting_redis_is_an_error(redis_of_shape):
    result = run_doctor(redis_of_shape(config=("--maxmemory-policy", "allkeys-lru")).url)
    assert result.returncode == 1
    (error,) = lines(result, "error")
    assert f"{REDIS}: maxmemory-policy is allkeys-lru" in error
    assert "Fix: set maxmemory-policy noeviction" in error


def test_a_redis_without_persistence_is_an_error(redis_of_shape):
    result = run_doctor(redis_of_shape(config=("--appendonly", "no")).url)
    assert result.returncode == 1
    (error,) = lines(result, "error")
    assert "persistence is off" in error


def test_an_acl_user_without_scripting_is_an_error_for_each_redis_role(redis_of_shape):
    server = redis_of_shape(acl_user=AclUser(rules=(*MANAGED_ACL_RULES, "-@scripting")))
    result = run_doctor(server.url)
    assert result.returncode == 1
    errors = lines(result, "error")
    assert {error.split(":")[0] for error in errors} == {f"error   {REDIS}", "error   cache"}
    assert all("may not run EVAL" in error and "EVALSHA" in error for error in errors)
    # The managed shape refuses INFO: the eviction policy cannot be seen, which is a warning, not a pass.
    assert any("refuses INFO" in warning for warning in lines(result, "warning"))


def test_a_managed_acl_user_passes_with_a_warning_about_what_it_cannot_see(redis_of_shape):
    result = run_doctor(redis_of_shape(acl_user=AclUser()).url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert any("refuses INFO" in warning for warning in lines(result, "warning"))


def test_an_unreachable_broker_is_an_error_within_seconds({% if cookiecutter.broker == "rabbitmq" %}redis_url{% endif %}):
    started = time.monotonic()
{%- if cookiecutter.broker == "rabbitmq" %}
    result = run_doctor(redis_url, broker_url=f"amqp://guest:guest@127.0.0.1:{free_port()}//")
{%- else %}
    result = run_doctor(f"redis://127.0.0.1:{free_port()}/0")
{%- endif %}
    took = time.monotonic() - started
    assert result.returncode == 1
    assert any("cannot reach the broker" in error for error in lines(result, "error"))
    assert took < 30, f"the doctor took {took:.0f} s to report a missing broker"


def test_the_connection_budget_over_the_servers_limit_is_an_error(settings):
    settings.DATABASE_CONNECTION_LIMIT = 20
    findings = doctor.database_findings(PROJECT_DIR)
    over = [finding for finding in findings if finding.level == doctor.ERROR]
    # Every definition holds more than 20: the io worker alone holds 33 (32 threads + its main process).
    assert len(over) == len(findings)
    assert any("Procfile can open 42 connections" in finding.text for finding in over)
    assert all("(20: DATABASE_CONNECTION_LIMIT)" in finding.text for finding in over)


def test_every_shipped_process_definition_fits_in_postgresqls_default_limit():
    for source, shares in connection_budget.budgets(PROJECT_DIR, {}).items():
        total = sum(share.connections for share in shares)
        assert total <= POSTGRESQL_DEFAULT_LIMIT, f"{source}: {connection_budget.describe(shares)}"


def test_the_budget_counts_threads_children_main_processes_and_replicas(tmp_path):
    (tmp_path / "Procfile").write_text(
        "web: gunicorn config.wsgi --workers ${WEB_CONCURRENCY:-3} --threads 4\n"
        "worker: celery -A config.celery_app worker -Q default -P prefork -c ${CELERY_DEFAULT_CONCURRENCY:-2}\n"
        "worker-io: env REMAP_SIGTERM=SIGQUIT celery -A config.celery_app worker -Q io -P threads -c 8\n"
        "beat: celery -A config.celery_app beat\n"
        "flower: celery -A config.celery_app flower\n"
    )
    (shares,) = connection_budget.budgets(tmp_path, {"CELERY_DEFAULT_CONCURRENCY": "5"}).values()
    assert {share.name: share.connections for share in shares} == {"web": 12, "worker": 6, "worker-io": 9, "beat": 1}


def test_a_grace_period_too_short_for_the_io_window_is_an_error(monkeypatch):
    monkeypatch.setitem(celery_app.conf, "worker_soft_shutdown_timeout", 30)
    (finding,) = doctor.shutdown_findings()
    assert finding.level == doctor.ERROR
    assert "(celery.E012)" in finding.text


@pytest.mark.django_db(transaction=True)
def test_with_workers_each_declared_queue_must_have_a_live_consumer(celery_workers, monkeypatch):
    findings = doctor.worker_findings(wait=0)
    assert [finding.level for finding in findings] == [doctor.OK] * len(doctor.declared_queues())
    monkeypatch.setattr(doctor, "declared_queues", lambda: {"default", "io", "cpu", "reports"})
    (missing,) = [finding for finding in doctor.worker_findings(wait=0) if finding.level == doctor.ERROR]
    assert "no live worker consumes queue 'reports'" in missing.text


def test_errors_make_the_command_fail(monkeypatch):
    monkeypatch.setattr(
        doctor, "run", lambda base_dir, workers, wait: [doctor.Finding(doctor.ERROR, "broker", "bad.", "fix it.")]
    )
    with pytest.raises(CommandError, match="1 errors"):
        call_command("celery_doctor")


def test_the_migrate_step_runs_the_doctor_before_migrating():
    steps = [line for line in (PROJECT_DIR / "compose/migrate").read_text().splitlines() if "manage.py" in line]
    assert "celery_doctor" in steps[0], steps
{%- if cookiecutter.broker == "rabbitmq" %}
    assert "declare_queues" in steps[1], steps
    assert "migrate" in steps[2], steps
{%- else %}
    assert "migrate" in steps[1], steps
{%- endif %}


def test_probes_that_open_their_own_broker_connection_are_an_error(tmp_path):
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  worker-io:\n    healthcheck:\n"
        '      test: ["CMD", "celery", "-A", "config.celery_app", "inspect", "ping"]\n'
    )
    (finding,) = doctor.probe_findings(tmp_path)
    assert finding.level == doctor.ERROR
    assert "worker-io in docker-compose.yml" in finding.text
    assert doctor.probe_findings(PROJECT_DIR)[0].level == doctor.OK
{%- if cookiecutter.broker == "rabbitmq" %}


@pytest.fixture
def fresh_vhost(rabbitmq_node):
    """An empty virtual host on the session's node (not with TEST_RABBITMQ_URL: vhosts are the node's to make)."""
    if rabbitmq_node is None:
        pytest.skip("needs the RabbitMQ node the tests start (TEST_RABBITMQ_URL is set)")
    name = f"doctor-{time.monotonic_ns()}"
    url = rabbitmq_node.add_vhost(name)
    yield url
    rabbitmq_node.delete_vhost(name)


def test_on_rabbitmq_the_doctor_declares_the_quorum_queues_and_names_the_server(fresh_vhost, redis_url):
    result = run_doctor(redis_url, broker_url=fresh_vhost)
    assert result.returncode == 0, result.stdout + result.stderr
    checked = " ".join(lines(result, "ok"))
    assert "(RabbitMQ 3." in checked
    assert "3 task queues and the dead-letter queue are quorum queues with delivery limit 10" in checked
    with Connection(fresh_vhost) as connection, connection.channel() as channel:
        for name in ("default", "io", "cpu", "dead-letters"):
            channel.queue_declare(queue=name, passive=True)  # raises NotFound unless the doctor declared it


def test_a_queue_declared_otherwise_is_an_error_that_names_it(fresh_vhost, redis_url):
    with Connection(fresh_vhost) as connection, connection.channel() as channel:
        Queue("io", durable=True).bind(channel).declare()  # a classic queue, as a Redis-era configuration left it
    result = run_doctor(redis_url, broker_url=fresh_vhost)
    assert result.returncode == 1
    (error,) = lines(result, "error")
    assert "broker: queue 'io' exists with other arguments" in error
    assert "PRECONDITION_FAILED" in error


def test_an_unreachable_state_redis_is_an_error_within_seconds():
    started = time.monotonic()
    result = run_doctor(f"redis://127.0.0.1:{free_port()}/0")
    took = time.monotonic() - started
    assert result.returncode == 1
    assert any("cannot reach the state Redis" in error for error in lines(result, "error"))
    assert took < 30, f"the doctor took {took:.0f} s to report a missing Redis"
{%- endif %}
