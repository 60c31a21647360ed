"""A live check of the services a deploy is about to run against (``manage.py celery_doctor``).

The system checks (checks.py) read settings and process files; they cannot see the {% if cookiecutter.broker == "rabbitmq" %}RabbitMQ, Redis and
PostgreSQL{% else %}Redis and
PostgreSQL{% endif %} a deploy talks to. These functions connect to them with exactly the settings the workers
use and return one Finding per thing checked: what was seen and, when it is wrong, what to change.
"""

import time
import uuid
from collections.abc import Callable, Iterator
{% if cookiecutter.broker == "rabbitmq" -%}
from contextlib import suppress
{%- else -%}
from contextlib import contextmanager, suppress
{%- endif %}
from dataclasses import dataclass
from pathlib import Path

import yaml
from django.conf import settings
from django.db import connection
from redis import Redis
from redis.exceptions import NoPermissionError, RedisError, ResponseError

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue import checks, connection_budget, process_definitions

OK, WARNING, ERROR = "ok", "warning", "error"
# The scripts the compose files and Kubernetes probe workers and beat with: each reads a heartbeat file its
# process writes, and opens no broker connection of its own that could disagree with the process's settings.
HEARTBEAT_PROBES = {"worker": "compose/healthcheck-worker", "beat": "compose/healthcheck-beat"}


@dataclass(frozen=True)
class Finding:
    level: str  # OK, WARNING or ERROR
    subject: str  # broker, cache, database, shutdown, probes, workers
    text: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.level:<7} {self.subject}: {self.text}" + (f" Fix: {self.fix}" if self.fix else "")


def unreachable(subject: str, service: str, exc: BaseException, fix: str, cost: str = "") -> Finding:
    """The error for a service that did not answer: what failed, how (the exception), what that costs, the fix."""
    text = f"cannot reach {service} ({type(exc).__name__}: {exc})" + (f": {cost}." if cost else ".")
    return Finding(ERROR, subject, text, fix)


# --- Redis -----------------------------------------------------------------------------------------


def _probe_commands(prefix: str) -> list[tuple[str, str, Callable[[Redis], object]]]:
    """(command, what needs it, a harmless call of it on keys under ``prefix``) for every command used."""
    queue, claim, zset, hash_, set_ = (f"{prefix}:{name}" for name in ("queue", "claim", "zset", "hash", "set"))

    def subscribe(client: Redis) -> None:
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(f"{prefix}:channel")
            pubsub.psubscribe(f"{prefix}:pattern.*")
            pubsub.get_message(timeout=0.1)
        finally:
            pubsub.close()

    def transaction(client: Redis) -> None:
        with client.pipeline(transaction=True) as pipe:
            pipe.set(f"{prefix}:multi", 1, px=10_000)
            pipe.execute()

    def evalsha(client: Redis) -> None:
        client.evalsha(client.script_load("return 1"), 0)

    return [
        ("LPUSH", "sending a task", lambda c: c.lpush(queue, "probe")),
        ("BLMOVE", "the transport's claim of a message", lambda c: c.blmove(queue, claim, 0.01, "RIGHT", "LEFT")),
        ("LMOVE", "the transport's return of a claim", lambda c: c.lmove(claim, queue, "LEFT", "RIGHT")),
        ("RPOP", "the transport's claim script", lambda c: c.rpop(queue)),
        ("BRPOP", "waiting on a queue", lambda c: c.brpop([queue], timeout=0.01)),
        ("LLEN", "the queue metrics", lambda c: c.llen(queue)),
        ("LINDEX", "the queue metrics", lambda c: c.lindex(queue, 0)),
        ("ZADD", "the claim registry", lambda c: c.zadd(zset, {"probe": 1})),
        ("ZRANGE", "the claim sweep", lambda c: c.zrange(zset, "-inf", "+inf", byscore=True)),
        ("ZREM", "the claim sweep", lambda c: c.zrem(zset, "probe")),
        ("HSET", "unacked messages", lambda c: c.hset(hash_, "probe", "1")),
        ("HGET", "unacked messages", lambda c: c.hget(hash_, "probe")),
        ("HINCRBY", "the task metrics", lambda c: c.hincrby(hash_, "count", 1)),
        ("HDEL", "acknowledging a message", lambda c: c.hdel(hash_, "probe")),
        ("SADD", "queue bindings", lambda c: c.sadd(set_, "probe")),
        ("SMEMBERS", "queue bindings", lambda c: c.smembers(set_)),
        ("SREM", "queue bindings", lambda c: c.srem(set_, "probe")),
        ("PUBLISH", "broadcast commands (ping, revoke)", lambda c: c.publish(f"{prefix}:channel", "probe")),
        ("SUBSCRIBE", "broadcast commands (ping, revoke)", subscribe),
        ("EVAL", "the claim script and locks", lambda c: c.eval("return 1", 0)),
        ("EVALSHA", "the claim script and the locks, beat's too", evalsha),
        ("SET", "locks (SET NX PX)", lambda c: c.set(f"{prefix}:lock", "1", nx=True, px=10_000)),
        ("MULTI", "transactions (metrics, deliveries)", transaction),
        ("INCR", "delivery counts", lambda c: c.incr(f"{prefix}:count")),
        ("SCAN", "cache.clear() and the metrics", lambda c: c.scan(0, match=f"{prefix}:*", count=10)),
        ("UNLINK", "cache.clear()", lambda c: c.unlink(f"{prefix}:none")),
    ]


def _refused(exc: Exception) -> bool:
    return isinstance(exc, NoPermissionError) or "NOPERM" in str(exc)


{% if cookiecutter.broker == "rabbitmq" -%}
# What only a Redis broker runs (the queues, the transport's claims, broadcasts): RabbitMQ carries those here.
BROKER_ONLY_COMMANDS = {
    "LPUSH", "BLMOVE", "LMOVE", "RPOP", "BRPOP", "LLEN", "LINDEX", "ZADD", "ZRANGE", "ZREM",
    "HSET", "HGET", "HDEL", "SADD", "SMEMBERS", "SREM", "PUBLISH", "SUBSCRIBE",
}  # fmt: skip


def _needed_commands(prefix: str) -> list[tuple[str, str, Callable[[Redis], object]]]:
    return [probe for probe in _probe_commands(prefix) if probe[0] not in BROKER_ONLY_COMMANDS]
{%- else -%}
def _needed_commands(prefix: str) -> list[tuple[str, str, Callable[[Redis], object]]]:
    return _probe_commands(prefix)
{%- endif %}


def command_findings(subject: str, client: Redis) -> list[Finding]:
    """Run every command the project needs on throwaway keys; the ACL user must be allowed each."""
    prefix = f"celery-doctor:{uuid.uuid4().hex}"
    refused: dict[str, str] = {}
    try:
        for command, needed_by, call in _needed_commands(prefix):
            try:
                call(client)
            except RedisError as exc:
                if not _refused(exc):
                    raise
                if "key" in str(exc).lower() or "channel" in str(exc).lower():
                    return [
                        Finding(
                            WARNING,
                            subject,
                            f"the Redis user may not touch the doctor's keys ({prefix}:*): {exc}; its commands "
                            "were not checked.",
                            "allow the user every key (~*) and channel (&*), as the transport needs.",
                        )
                    ]
                refused[command] = needed_by
    finally:
        with suppress(RedisError):
            client.unlink(
                *(f"{prefix}:{name}" for name in ("queue", "claim", "zset", "hash", "set", "lock", "multi", "count"))
            )
    if refused:
        listed = "; ".join(f"{command} ({needed_by})" for command, needed_by in refused.items())
        return [
            Finding(
                ERROR,
                subject,
                f"the Redis user may not run {listed}.",
                "grant them to the user's ACL, e.g. `+@all -@dangerous` as managed services do "
                "(@scripting for EVAL/EVALSHA, @pubsub for SUBSCRIBE/PUBLISH).",
            )
        ]
    return [
        Finding(
            OK, subject, f"the Redis user may run every command the project uses ({len(_needed_commands(prefix))})."
        )
    ]


def _info(client: Redis, section: str) -> dict | None:
    try:
        return client.info(section)
    except ResponseError as exc:
        if _refused(exc) or "unknown command" in str(exc).lower():
            return None
        raise


def server_findings(subject: str, client: Redis) -> list[Finding]:
    """A broker Redis must never evict a key (a queued task) and must keep its data across a restart."""
    findings = []
    memory = _info(client, "memory")
    persistence = _info(client, "persistence")
    if memory is None or persistence is None:
        return [
            Finding(
                WARNING,
                subject,
                "the server refuses INFO (a managed Redis's ACL user): its eviction policy and persistence cannot "
                "be read from here.",
                "check in the provider's console that maxmemory-policy is noeviction and persistence (AOF or "
                "snapshots) is on.",
            )
        ]
    policy = memory.get("maxmemory_policy", "")
    if policy != "noeviction":
        findings.append(
            Finding(
                ERROR,
                subject,
                f"maxmemory-policy is {policy}: under memory pressure Redis deletes keys, queued tasks among them, "
                "without a trace.",
                "set maxmemory-policy noeviction (a full Redis then refuses new tasks, and senders get an error).",
            )
        )
    else:
        findings.append(Finding(OK, subject, "maxmemory-policy is noeviction."))
    aof = str(persistence.get("aof_enabled", "0")) == "1"
    try:
        save = (client.config_get("save") or {}).get("save", "")
    except ResponseError:
        save = None  # CONFIG refused: snapshots cannot be seen
    if aof:
        findings.append(Finding(OK, subject, "persistence: AOF is on."))
    elif save:
        findings.append(
            Finding(
                WARNING,
                subject,
                f"persistence: snapshots only (save {save}): a crash loses the tasks sent since the last one.",
                "turn on appendonly yes (appendfsync everysec) as the compose files do.",
            )
        )
    elif save is None:
        findings.append(
            Finding(
                WARNING,
                subject,
                "persistence: AOF is off and CONFIG is refused, so snapshots cannot be seen.",
                "turn on appendonly yes, or check the provider's persistence setting.",
            )
        )
    else:
        findings.append(
            Finding(
                ERROR,
                subject,
                "persistence is off (no AOF, no snapshots): a Redis restart loses every queued task.",
                "turn on appendonly yes (appendfsync everysec) as the compose files do.",
            )
        )
    return findings


{% if cookiecutter.broker == "rabbitmq" -%}
# At-least-once dead-lettering (x-dead-letter-strategy) came with RabbitMQ 3.10; quorum queues and x-delivery-limit
# with 3.8. An older server refuses the queues' arguments: say so before anything is declared.
RABBITMQ_MIN_VERSION = (3, 10)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("+")[0].split("-")[0].split(".") if part.isdigit())


def queue_findings(connection) -> list[Finding]:
    """Each task queue and the dead-letter queue exists as the settings declare it, or is declared now.

    Declaring with the settings' arguments is idempotent; RabbitMQ refuses it (PRECONDITION_FAILED) for a queue that
    exists with other arguments, such as a classic queue of the same name left by another configuration.
    """
    from config import broker_rabbitmq

    findings = []
    for queue in (*settings.CELERY_TASK_QUEUES, broker_rabbitmq.DEAD_LETTER_QUEUE):
        with connection.channel() as channel:
            try:
                queue.bind(channel).declare()
            except connection.channel_errors as exc:
                findings.append(
                    Finding(
                        ERROR,
                        "broker",
                        f"queue {queue.name!r} exists with other arguments than the settings declare ({exc}).",
                        "drain it, delete it (rabbitmqctl delete_queue) and run `manage.py declare_queues`.",
                    )
                )
    if not findings:
        findings.append(
            Finding(
                OK,
                "broker",
                f"{len(settings.CELERY_TASK_QUEUES)} task queues and the dead-letter queue are quorum queues with "
                f"delivery limit {settings.TASK_DELIVERY_LIMIT}.",
            )
        )
    return findings


def broker_findings() -> list[Finding]:
    started = time.monotonic()
    try:
        with celery_app.connection_for_write() as conn:
            conn.connect()  # one attempt: a missing server is an error in seconds, not a retry loop
            answered = (time.monotonic() - started) * 1000
            properties = getattr(conn.connection, "server_properties", {}) or {}
            raw_version = properties.get("version", b"")
            server_version = raw_version.decode() if isinstance(raw_version, bytes) else str(raw_version)
            findings = [
                Finding(OK, "broker", f"{conn.as_uri()} (RabbitMQ {server_version}) answered in {answered:.0f} ms.")
            ]
            if _version(server_version) < RABBITMQ_MIN_VERSION:
                return [
                    *findings,
                    Finding(
                        ERROR,
                        "broker",
                        f"RabbitMQ {server_version} is older than 3.10: it has no at-least-once dead-lettering for "
                        "the quorum queues' poison messages.",
                        "upgrade RabbitMQ to 3.13 or later (the compose files' image).",
                    ),
                ]
            return findings + queue_findings(conn)
    except Exception as exc:  # any failure to reach the broker is the finding
        fix = "check CELERY_BROKER_URL (user, password, virtual host) and the network path from this process."
        return [unreachable("broker", "the broker", exc, fix)]


def state_findings() -> list[Finding]:
    """The state Redis keeps the task metrics and beat's tick: it must answer, keep its data and allow the commands."""
    from {{ cookiecutter.project_slug }}.taskqueue import state_redis

    try:
        client = state_redis.client()
        client.ping()
        return server_findings("redis", client) + command_findings("redis", client)
    except Exception as exc:
        fix = "check REDIS_STATE_URL / REDIS_URL."
        return [unreachable("redis", "the state Redis", exc, fix, "no task metrics, no beat tick")]
{%- else -%}
@contextmanager
def broker_client() -> Iterator[tuple[Redis, str]]:
    """A client of the broker, made by the Celery app as the workers make theirs (TLS, ACL, Sentinel)."""
    with celery_app.connection_for_write() as conn:
        conn.connect()  # one attempt: a missing server is an error in seconds, not a retry loop
        with conn.default_channel.conn_or_acquire() as client:
            yield client, conn.as_uri()


def broker_findings() -> list[Finding]:
    started = time.monotonic()
    try:
        with broker_client() as (client, uri):
            client.ping()
            answered = (time.monotonic() - started) * 1000
            findings = [Finding(OK, "broker", f"{uri} answered in {answered:.0f} ms.")]
            findings += server_findings("broker", client)
            findings += command_findings("broker", client)
            return findings
    except Exception as exc:  # any failure to reach the broker is the finding
        fix = "check CELERY_BROKER_URL / REDIS_URL, REDIS_CA_CERTS and the network path from this process."
        return [unreachable("broker", "the broker", exc, fix)]
{%- endif %}


def cache_findings() -> list[Finding]:
    """The cache holds the beat lock and the task locks: its user needs SET NX PX and the lock scripts."""
    if "django_redis" not in settings.CACHES["default"]["BACKEND"]:
        return []
    from django_redis import get_redis_connection

    try:
        client = get_redis_connection("default")
        client.ping()
        return command_findings("cache", client)
    except Exception as exc:
        fix = "check REDIS_CACHE_URL / REDIS_URL."
        return [unreachable("cache", "the cache Redis", exc, fix, "beat cannot take its lock")]


# --- PostgreSQL --------------------------------------------------------------------------------------


def database_limit() -> tuple[int | None, str]:
    """How many connections the project may open, and where that figure comes from."""
    configured = getattr(settings, "DATABASE_CONNECTION_LIMIT", None)
    if configured:
        return int(configured), "DATABASE_CONNECTION_LIMIT"
    if connection.vendor != "postgresql":
        return None, connection.vendor
    # pg_settings, not SHOW: a server without reserved_connections (before PostgreSQL 16) logs no error for it.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('max_connections', 'superuser_reserved_connections', 'reserved_connections')"
        )
        found = {name: int(value) for name, value in cursor.fetchall()}
    maximum = found["max_connections"]
    reserved = found.get("superuser_reserved_connections", 0) + found.get("reserved_connections", 0)
    return maximum - reserved, f"max_connections {maximum} - {reserved} reserved"


def database_findings(base_dir: Path) -> list[Finding]:
    try:
        limit, origin = database_limit()
    except Exception as exc:
        return [unreachable("database", "the database", exc, "check DATABASE_URL.")]
    if limit is None:
        return [Finding(OK, "database", f"{origin}: no server connection limit to check.")]
    findings = []
    for source, shares in connection_budget.budgets(base_dir).items():
        total = sum(share.connections for share in shares)
        detail = connection_budget.describe(shares)
        if total > limit:
            findings.append(
                Finding(
                    ERROR,
                    "database",
                    f"{source} can open {total} connections ({detail}), more than the server allows "
                    f"({limit}: {origin}): at peak, processes fail with 'too many clients'.",
                    "lower the concurrency or the maximum replicas, raise max_connections, or put a pooler "
                    "(PgBouncer) in front and set DATABASE_CONNECTION_LIMIT to what it accepts.",
                )
            )
        else:
            findings.append(
                Finding(OK, "database", f"{source}: at most {total} connections of {limit} ({origin}); {detail}.")
            )
    return findings


# --- Process definitions ---------------------------------------------------------------------------------


def shutdown_findings() -> list[Finding]:
    """Each worker's grace period against its tasks' bounds, and the io soft window against the io_timeouts."""
    errors = checks.check_worker_grace_period() + checks.check_soft_shutdown_covers_io_timeouts()
    if errors:
        return [Finding(ERROR, "shutdown", f"{error.msg} ({error.id})", error.hint or "") for error in errors]
    soft = float(celery_app.conf.get("worker_soft_shutdown_timeout") or 0)
    longest = max(
        (checks.longest_run({queue}, enforced=False)[0] for queue in checks.unenforcing_queues()), default=0.0
    )
    return [
        Finding(
            OK,
            "shutdown",
            f"every worker's grace period covers its tasks; the soft-shutdown window ({soft:g} s) covers the "
            f"longest io_timeout ({longest:g} s).",
        )
    ]


def _probe_commands_of(base_dir: Path) -> Iterator[tuple[str, str, str]]:
    """(where, process, probe command) for every worker and beat health check in compose and Kubernetes."""
    for compose_file in process_definitions.COMPOSE_FILES:
        path = base_dir / compose_file
        if not path.is_file():
            continue
        for name, service in ((yaml.safe_load(path.read_text()) or {}).get("services") or {}).items():
            test = (service.get("healthcheck") or {}).get("test")
            if test:
                yield compose_file, name, " ".join(test[1:]) if isinstance(test, list) else str(test)
    kubernetes = base_dir / process_definitions.KUBERNETES_DIR
    for manifest in sorted(kubernetes.rglob("*.yaml")) if kubernetes.is_dir() else ():
        for document in yaml.safe_load_all(manifest.read_text()):
            if not isinstance(document, dict) or document.get("kind") != "Deployment":
                continue
            pod = ((document.get("spec") or {}).get("template") or {}).get("spec") or {}
            for container in pod.get("containers") or ():
                probe = (container.get("livenessProbe") or {}).get("exec") or {}
                if probe.get("command"):
                    yield process_definitions.KUBERNETES_DIR, document["metadata"]["name"], " ".join(probe["command"])


def probe_findings(base_dir: Path) -> list[Finding]:
    """Worker and beat probes must read what the process itself writes, not open their own broker connection."""
    findings = []
    checked = 0
    for where, name, command in _probe_commands_of(base_dir):
        kind = "beat" if name == "beat" else "worker" if name.startswith("worker") else None
        if kind is None:
            continue
        checked += 1
        if HEARTBEAT_PROBES[kind] not in command:
            findings.append(
                Finding(
                    ERROR,
                    "probes",
                    f"{name} in {where} is probed with `{command}`, which does not read the {kind}'s heartbeat: a "
                    "probe that opens its own broker connection can use other settings than the process "
                    "(TLS, ACL, Sentinel) and fail while the process is fine.",
                    f"probe it with {HEARTBEAT_PROBES[kind]}.",
                )
            )
    if not findings:
        findings.append(
            Finding(
                OK,
                "probes",
                f"{checked} worker and beat probes read the heartbeat their process writes (no broker connection "
                "of their own).",
            )
        )
    return findings


# --- Live workers ------------------------------------------------------------------------------------------


def declared_queues() -> set[str]:
    return {queue.name for queue in celery_app.conf.task_queues or ()}


def worker_findings(wait: float, interval: float = 2.0) -> list[Finding]:
    """Every declared queue has a live worker consuming it, within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    consumed: dict[str, set[str]] = {}
    while True:
        replies = celery_app.control.inspect(timeout=min(interval, 5.0)).active_queues() or {}
        consumed = {}
        for node, queues in replies.items():
            for queue in queues:
                consumed.setdefault(queue["name"], set()).add(node)
        missing = declared_queues() - set(consumed)
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(interval)
    findings = [
        Finding(
            ERROR,
            "workers",
            f"no live worker consumes queue {queue!r} (waited {wait:g} s; {len(replies)} workers answered): its tasks "
            "wait for ever.",
            "start the worker of that queue (see the Procfile) and check its logs.",
        )
        for queue in sorted(missing)
    ]
    findings += [
        Finding(OK, "workers", f"queue {queue!r} is consumed by {', '.join(sorted(nodes))}.")
        for queue, nodes in sorted(consumed.items())
        if queue in declared_queues()
    ]
    return findings


def run(base_dir: Path, workers: bool = False, wait: float = 0.0) -> list[Finding]:
{%- if cookiecutter.broker == "rabbitmq" %}
    findings = broker_findings() + state_findings() + cache_findings() + database_findings(base_dir)
{%- else %}
    findings = broker_findings() + cache_findings() + database_findings(base_dir)
{%- endif %}
    findings += shutdown_findings() + probe_findings(base_dir)
    if workers:
        findings += worker_findings(wait)
    return findings
