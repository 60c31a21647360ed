"""Settings shared by every environment. Environment files state only what differs."""

import tempfile
from pathlib import Path

import environ
{%- if cookiecutter.broker == "rabbitmq" %}

from config import broker_rabbitmq, redis_roles
{%- else %}
from kombu import Queue

from config import redis_roles
{%- endif %}

BASE_DIR = Path(__file__).resolve().parent.parent.parent
APPS_DIR = BASE_DIR / "{{ cookiecutter.project_slug }}"

env = environ.Env()

# GENERAL
# ------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
TIME_ZONE = "{{ cookiecutter.timezone }}"
LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True

# DATABASES
# ------------------------------------------------------------------------------
# SQLite is only the default for running locally without Docker; production requires DATABASE_URL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite has no row locks (select_for_update is a no-op): take the write lock when a transaction
    # begins, so concurrent tasks wait their turn (for up to `timeout` s) instead of racing.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The connections the processes may hold at once, all together. Unset: the server's max_connections less its
# reserved ones, which `manage.py celery_doctor` reads and compares with every process definition's worst case.
# Behind a pooler (PgBouncer), set it to what the pooler accepts (max_client_conn).
DATABASE_CONNECTION_LIMIT = env.int("DATABASE_CONNECTION_LIMIT", default=0)

# URLS
# ------------------------------------------------------------------------------
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ADMIN_URL = env("DJANGO_ADMIN_URL", default="admin/")

# APPS
# ------------------------------------------------------------------------------
DJANGO_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.admin",
]
THIRD_PARTY_APPS = [
    "django_celery_beat",
    # Django's tasks API on 5.2 (its checks and signals); Django 6 has it built in as django.tasks.
    "django_tasks",
{%- if cookiecutter.result_backend == "django-db" %}
    "django_celery_results",
{%- endif %}
]
LOCAL_APPS = [
    "{{ cookiecutter.project_slug }}.taskqueue",
    "{{ cookiecutter.project_slug }}.health",
    "{{ cookiecutter.project_slug }}.error_emails",
    "{{ cookiecutter.project_slug }}.users",
]
{%- if cookiecutter.include_examples == "y" %}
# Example apps: remove them with their settings, URLs and tests (README "Remove the examples").
EXAMPLE_APPS = [
    "{{ cookiecutter.project_slug }}.examples.notifications",
    "{{ cookiecutter.project_slug }}.examples.reports",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS + EXAMPLE_APPS
{%- else %}
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS
{%- endif %}

# AUTHENTICATION
# ------------------------------------------------------------------------------
AUTH_USER_MODEL = "users.User"

# MIDDLEWARE
# ------------------------------------------------------------------------------
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A request that cannot enqueue (Redis down) answers 503 with the reason, in seconds (taskqueue/middleware.py).
    "{{ cookiecutter.project_slug }}.taskqueue.middleware.BrokerUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# STATIC
# ------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "/media/"
MEDIA_ROOT = BASE_DIR / "media"

# TEMPLATES
# ------------------------------------------------------------------------------
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [APPS_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SECURITY
# ------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# EMAIL
# ------------------------------------------------------------------------------
EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_TIMEOUT = 10
# The longest one message can take to send: EMAIL_TIMEOUT per socket operation, and a message is about six of them
# (connect, EHLO, STARTTLS, AUTH, MAIL/RCPT, DATA). The io_timeout of the tasks that send email.
EMAIL_SEND_TIMEOUT = 6 * EMAIL_TIMEOUT
DEFAULT_FROM_EMAIL = env(
    "DJANGO_DEFAULT_FROM_EMAIL",
    default="{{ cookiecutter.project_name }} <noreply@{{ cookiecutter.domain_name }}>",
)
SERVER_EMAIL = DEFAULT_FROM_EMAIL
ADMINS = [("{{ cookiecutter.author_name }}", "{{ cookiecutter.email }}")]
MANAGERS = ADMINS

# LOGGING
# ------------------------------------------------------------------------------
# One configuration for web and workers: Celery is told not to touch logging (config/celery_app.py).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "verbose": {"format": "%(levelname)s %(asctime)s %(name)s %(process)d %(message)s"},
    },
    "filters": {
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "verbose"},
        # Server errors email the admins through a Celery task: a slow SMTP server never slows the request.
        "mail_admins": {
            "level": "ERROR",
            "filters": ["require_debug_false"],
            "class": "{{ cookiecutter.project_slug }}.error_emails.handler.EnqueuingAdminEmailHandler",
        },
    },
    "root": {"level": env("DJANGO_LOG_LEVEL", default="INFO"), "handlers": ["console"]},
    "loggers": {
        # Replaces Django's default handlers for "django", whose mail_admins talks to SMTP in the request.
        "django": {"handlers": [], "propagate": True},
        "django.request": {"handlers": ["mail_admins"], "level": "ERROR", "propagate": True},
    },
}

{% if cookiecutter.broker == "rabbitmq" -%}
# RABBITMQ (the broker) and REDIS (task state, results and cache: config/redis_roles.py)
# ------------------------------------------------------------------------------
# RabbitMQ holds the queues; Redis holds what the project reads and writes itself: the task metrics and beat's tick
# (the "state" role), results when they go to Redis, the cache with its locks and the beat lock. REDIS_URL is the
# single Redis knob: state uses its database, results the next one, the cache the one after.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="amqp://guest:guest@localhost:5672//")  # pragma: allowlist secret
REDIS_URL = env("REDIS_URL", default="redis://localhost:6379/0")
REDIS_STATE_URL = env("REDIS_STATE_URL", default=redis_roles.role_url(REDIS_URL, "state"))
redis_roles.require_plain("REDIS_STATE_URL", REDIS_STATE_URL)
REDIS_CACHE_URL = env("REDIS_CACHE_URL", default=redis_roles.role_url(REDIS_URL, "cache"))
redis_roles.require_plain("REDIS_CACHE_URL", REDIS_CACHE_URL)
# cache.clear() must not delete the metrics and beat's tick.
redis_roles.require_apart(REDIS_CACHE_URL, REDIS_STATE_URL)
# A rediss:// URL verifies the server's certificate: against this CA bundle (a file path), else the system's.
REDIS_CA_CERTS = env("REDIS_CA_CERTS", default="")
{%- else -%}
# REDIS (broker, results and cache: config/redis_roles.py)
# ------------------------------------------------------------------------------
# The single knob: the broker uses its database, results the next one, the cache the one after, so clearing
# the cache never touches a queue. Each role's own URL (below) moves it elsewhere, e.g. to its own server.
REDIS_URL = env("REDIS_URL", default="redis://localhost:6379/0")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
REDIS_CACHE_URL = env("REDIS_CACHE_URL", default=redis_roles.role_url(REDIS_URL, "cache"))
redis_roles.require_plain("REDIS_CACHE_URL", REDIS_CACHE_URL)
redis_roles.require_apart(REDIS_CACHE_URL, CELERY_BROKER_URL)
# A rediss:// URL verifies the server's certificate: against this CA bundle (a file path), else the system's.
REDIS_CA_CERTS = env("REDIS_CA_CERTS", default="")
{%- endif %}

# Redis cache: locks (cache.lock), the beat lock and short-lived task outputs live here.
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_CACHE_URL,
        "OPTIONS": {
            # clear() deletes this cache's keys only, with commands a managed Redis's ACL user may run.
            "CLIENT_CLASS": "{{ cookiecutter.project_slug }}.taskqueue.cache_client.PrefixScopedClient",
            # JSON, never pickle: a value read back from Redis cannot run code in web or a worker.
            "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
            # A cache outage must surface, not silently turn locks into no-ops...
            "IGNORE_EXCEPTIONS": False,
            # ...and within seconds: a Redis that accepts connections but never answers must not hang a request.
            "SOCKET_CONNECT_TIMEOUT": 1,
            "SOCKET_TIMEOUT": 1.5,
            # rediss://: the certificate checked as for the broker (empty for redis://).
            "CONNECTION_POOL_KWARGS": redis_roles.tls_options(REDIS_CACHE_URL, REDIS_CA_CERTS) or {},
        },
        "KEY_PREFIX": "{{ cookiecutter.project_slug }}",
    }
}

# CELERY
# ------------------------------------------------------------------------------
# Every value here is a decision: docs/practices.md gives each one's reason and the test that pins it,
# and {{ cookiecutter.project_slug }}/taskqueue/checks.py verifies they stay consistent (`manage.py check`).
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
{% if cookiecutter.broker == "rabbitmq" -%}
# CELERY_BROKER_URL is set with the Redis URLs above (amqps:// for TLS).
{%- else -%}
# CELERY_BROKER_URL is set with the other Redis URLs above. For rediss://, verify the broker's certificate.
CELERY_BROKER_USE_SSL = redis_roles.tls_options(CELERY_BROKER_URL, REDIS_CA_CERTS)
{%- endif %}
CELERY_TIMEZONE = TIME_ZONE
# Retry the first broker connection too, so a worker started before the broker waits for it.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# After a broker reconnect, unacked tasks are redelivered: cancel our copy so they don't run twice.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True

# JSON only: pickle would let anyone who can write to the broker run code in the worker.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_ACCEPT_CONTENT = ["json"]

# Ack after the task ran, so a task whose worker dies mid-run is delivered again...
CELERY_TASK_ACKS_LATE = True
# ...including when the pool child is killed (OOM, segfault); tasks are idempotent because of this.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One reserved message per pool slot, so a busy worker does not hoard long tasks; with late acks this costs
# nothing measurable on prefork and on the io thread pool, unlike gevent (docs/performance.md{% if cookiecutter.broker == "rabbitmq" %}, measured on Redis{% endif %}).
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

# Every task gets a soft limit (raises SoftTimeLimitExceeded to clean up) and a hard kill.
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
{% if cookiecutter.broker == "rabbitmq" -%}
# The longest countdown/ETA any send accepts (taskqueue/message_limits.py): a longer wait is a periodic task's job.
{%- else -%}
# The longest countdown/ETA any send accepts (taskqueue/message_limits.py); Redis would deliver later ones early.
{%- endif %}
TASK_MAX_COUNTDOWN = env.int("TASK_MAX_COUNTDOWN", default=1800)
{% if cookiecutter.broker == "rabbitmq" -%}
# Messages carry IDs and small values: a bigger one is refused when sent (taskqueue/message_limits.py), not left
# to fill the broker's memory (RabbitMQ blocks every publisher at its memory alarm).
{%- else -%}
# Messages carry IDs and small values: a bigger one is refused when sent (taskqueue/message_limits.py), not left
# to fill Redis, which runs with noeviction and would then refuse every write.
{%- endif %}
TASK_MAX_MESSAGE_BYTES = env.int("TASK_MAX_MESSAGE_BYTES", default=1024 * 1024)
{% if cookiecutter.broker == "rabbitmq" -%}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Publisher confirms: a send returns once RabbitMQ has taken the message (a majority of a quorum queue's replicas)
    # and raises if it refused it (a full queue: x-overflow reject-publish), so no task is lost silently on its way.
    "confirm_publish": True,
}
# A send to a RabbitMQ that is down or does not answer fails within seconds instead of hanging the request (with the
# pool and retry bounds below); Celery's default connect timeout is 4 s.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# Each side of a connection sends a heartbeat every 30 s (RabbitMQ's offer is 60): a broker gone without closing the
# connection (a crashed VM, a dropped route) is noticed within two missed beats and the worker reconnects.
CELERY_BROKER_HEARTBEAT = 30
# RabbitMQ closes the channel of a consumer that keeps a message unacked longer than its consumer_timeout (30 min by
# default, rabbitmq.conf): with late acks that is a task's whole run. State the server's value here (seconds) and
# check celery.E021 keeps every task's run bound (its hard time limit; on the io queue its io_timeout) under it.
RABBITMQ_CONSUMER_TIMEOUT = env.int("RABBITMQ_CONSUMER_TIMEOUT", default=1800)
# A message whose body no worker can decode is rejected into the dead-letter queue, where Celery would ack it and
# lose it (taskqueue/patches/celery_worker.py).
CELERY_WORKER_CONSUMER = "{{ cookiecutter.project_slug }}.taskqueue.patches.celery_worker:DeadLetteringConsumer"
{%- else -%}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis redelivers an unacked message after this many seconds: it must exceed the hard limit
    # plus the longest countdown, or a running/scheduled task is run a second time (check celery.E001).
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    # One Redis list per queue (no priority lists), so a worker can take a message and record it as
    # unacked in one atomic step and a SIGKILL between the two cannot lose it (taskqueue/patches/kombu.py).
    "priority_steps": [0],
    # kombu's restore sweep (which gives the unacked messages of dead workers back) runs under a Redis lock that
    # expires after 300 s by default: a worker SIGKILLed inside a sweep stopped every redelivery for 5 minutes
    # (the reliability suite's chaos run, under load). A sweep that outlasts 10 s is still safe: a second one
    # overlapping it moves no message twice, since each moves in its own WATCH transaction (QoS.restore_by_tag).
    "unacked_mutex_expire": 10,
    # A send to a Redis that is down or does not answer fails within seconds instead of hanging the request
    # (with the pool and retry bounds below: within 5 s, held by tests/taskqueue/test_enqueue_timeouts.py against a
    # Redis that never answers; 2-3 s during a 4 s stall in tests/reliability/test_redis_stall.py).
    "socket_connect_timeout": 1,
    "socket_timeout": 1.5,
    # CELERY_BROKER_URL=sentinel://host:26379/0[;sentinel://...]: kombu asks the sentinels for the primary named
    # REDIS_SENTINEL_MASTER, and finds the new one after a failover (docs/reliability.md); refused without it.
    **redis_roles.sentinel_options(CELERY_BROKER_URL, env("REDIS_SENTINEL_MASTER", default="")),
}
{%- endif %}
# A sender waits at most this long for a free broker connection from the pool (default: forever).
CELERY_BROKER_POOL_ACQUIRE_TIMEOUT = 2
# One retry of a failed publish, at once (Celery's default is three, up to a second apart).
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
# Inside a worker (taskqueue/retries.py sets these at worker start) a publish -- a retry, a task sent by a task -- has
# nobody waiting on it, and giving up costs a rerun of the task: it keeps trying to connect for 15 s (Celery's default
{% if cookiecutter.broker == "rabbitmq" -%}
# and a web request's: 2 s), and retries up to four times, 1, 3, 5 and 5 s apart. A retry published into a 4 s stall
# waits it out (the delivery contracts' rabbitmq-stall-retry fault, tests/contracts/). A try whose confirm was lost may
# still have been applied, so a stall can leave a copy of the message: tasks are idempotent. Keep the bound well under
# CELERY_TASK_SOFT_TIME_LIMIT: a task out of time while publishing becomes a dead letter.
{%- else -%}
# and a web request's: 4 s), and retries up to four times, 1, 3, 5 and 5 s apart. A retry published into a 4 s stall
# waits it out, and against a Redis that stays stalled the publish gave up 15.1 s in (both measured by
# tests/reliability/test_redis_stall.py). A try that timed out may still be applied once Redis answers, so a stall can
# leave a copy of the message: tasks are idempotent. Keep the bound well under CELERY_TASK_SOFT_TIME_LIMIT: a task
# out of time while publishing becomes a dead letter.
{%- endif %}
WORKER_BROKER_CONNECTION_TIMEOUT = 15
WORKER_PUBLISH_RETRY_POLICY = {"max_retries": 4, "interval_start": 1, "interval_step": 2, "interval_max": 5}

# Soft shutdown (Celery 5.5+) runs when a worker goes cold: on SIGQUIT, or on SIGTERM where REMAP_SIGTERM=SIGQUIT,
# as the io worker has (compose/start-worker-io, Procfile), whose threads no time limit can stop. For this many
# seconds the running tasks may still finish; then the rest are cancelled, their messages go back to the queue
# unacked, and the worker exits. 65 s covers the longest io_timeout of the io queue's tasks (60 s: an email,
# EMAIL_SEND_TIMEOUT), so a deploy does not cut them off (check celery.E012); the worker's grace period in compose and
# Kubernetes covers the window plus a margin (check celery.E010). Celery waits the whole window whenever a task
# runs, even one that ends sooner: a deploy of the io worker takes that long.
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = env.float("CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", default=65)
{% if cookiecutter.broker == "rabbitmq" -%}
# An idle worker has nothing to wait for: it exits at once (a countdown waits in RabbitMQ's delay queues, not in it).
{%- else -%}
# An idle worker has nothing to wait for: it exits at once (messages it holds for a countdown are requeued anyway).
{%- endif %}
CELERY_WORKER_ENABLE_SOFT_SHUTDOWN_ON_IDLE = False

# Recycle pool children so a slow leak cannot take a worker down.
CELERY_WORKER_MAX_TASKS_PER_CHILD = 1000
CELERY_WORKER_MAX_MEMORY_PER_CHILD = 300_000  # KiB

# Results are opt-in per task (ignore_result=False) and expire, so they never pile up.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 60 * 60 * 24
{%- if cookiecutter.result_backend == "django-db" %}
# django-celery-results' "django-db" backend, with chords that survive retried and redelivered header tasks.
CELERY_RESULT_BACKEND = "{{ cookiecutter.project_slug }}.taskqueue.patches.django_celery_results.DatabaseBackend"
# Store task name, args and worker with each result, so failures can be read and replayed.
CELERY_RESULT_EXTENDED = True
{%- elif cookiecutter.result_backend == "redis" %}
# Results in a database of their own (REDIS_URL's next one), with the broker's TLS rules for rediss://.
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND_URL", default=redis_roles.role_url(REDIS_URL, "results"))
redis_roles.require_plain("CELERY_RESULT_BACKEND_URL", CELERY_RESULT_BACKEND)
CELERY_REDIS_BACKEND_USE_SSL = redis_roles.tls_options(CELERY_RESULT_BACKEND, REDIS_CA_CERTS)
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
{%- if cookiecutter.broker == "rabbitmq" %}
    # A results Redis that does not answer fails a read or write within seconds, as the cache's does.
    "socket_connect_timeout": 1,
    "socket_timeout": 1.5,
{%- else %}
    **CELERY_BROKER_TRANSPORT_OPTIONS,
{%- endif %}
    # Celery retries a failed results connection 20 times a second apart: a send of a task that keeps its result
    # would hang a request for 20 s with the results Redis down or its certificate refused. A few seconds at most.
    "retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
}
# A results Redis that does not accept the connection fails it within a second (default: no timeout).
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 1
{%- endif %}

# Named queues, each with its own Procfile worker. A task is routed by the verb of its name
# (<app>.<verb>_<noun>), whatever its app: a new app's tasks need no route of their own, and every send
# (.delay(), send_task_by_name, canvas) takes the same route. Any other verb runs on the default queue.
{% if cookiecutter.broker == "rabbitmq" -%}
# RabbitMQ dead-letters a message delivered this many times (config/broker_rabbitmq.py): a task that kills its worker
# every run, before BaseTask can record it (max_deliveries, 5 by default, and check celery.E020 keeps it lower).
TASK_DELIVERY_LIMIT = env.int("TASK_DELIVERY_LIMIT", default=10)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = (
    broker_rabbitmq.task_queue("default", TASK_DELIVERY_LIMIT),
    # waiting on the network: many concurrent slots per worker
    broker_rabbitmq.task_queue("io", TASK_DELIVERY_LIMIT),
    broker_rabbitmq.task_queue("cpu", TASK_DELIVERY_LIMIT),  # computing: one prefork child per core
)
# Queues Celery creates itself (none: CELERY_TASK_CREATE_MISSING_QUEUES below) would be quorum queues too, and a
# task's default exchange is the queues' topic exchange, which native delayed delivery needs (Celery 5.5+).
CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
CELERY_TASK_DEFAULT_EXCHANGE = broker_rabbitmq.TASKS_EXCHANGE.name
CELERY_TASK_DEFAULT_EXCHANGE_TYPE = broker_rabbitmq.TASKS_EXCHANGE.type
CELERY_TASK_DEFAULT_ROUTING_KEY = "default"
{%- else -%}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = (
    Queue("default"),
    Queue("io"),  # waiting on the network: many concurrent slots per worker
    Queue("cpu"),  # computing: one prefork child per core
)
{%- endif %}
CELERY_TASK_ROUTES = {
    # HTTP APIs, SMTP: the io worker's threads wait on many at once (bounded by each call's own timeout).
    "*.fetch_*": {"queue": "io"},
    "*.send_*": {"queue": "io"},
    # Pure computation: the cpu worker's prefork children, one per core.
    "*.build_*": {"queue": "cpu"},
}
# A task sent to an unknown queue is an error, not a message that no worker ever reads (check celery.E009).
CELERY_TASK_CREATE_MISSING_QUEUES = False

# Django's tasks (django.tasks; the django-tasks backport on 5.2) run on these workers and queues: a task's queue_name
# is the Celery queue it goes to (docs/django-tasks.md).
TASKS = {"default": {"BACKEND": "{{ cookiecutter.project_slug }}.taskqueue.task_backend.CeleryBackend"}}

# Beat reads schedules from the database, so they can be edited in the admin; this subclass of
# DatabaseScheduler also holds the beat lock and touches BEAT_HEARTBEAT_FILE on every tick for
# compose/healthcheck-beat (taskqueue/patches/django_celery_beat.py).
CELERY_BEAT_SCHEDULER = "{{ cookiecutter.project_slug }}.taskqueue.patches.django_celery_beat:HeartbeatDatabaseScheduler"
BEAT_HEARTBEAT_FILE = env("BEAT_HEARTBEAT_FILE", default=str(Path(tempfile.gettempdir()) / "celerybeat-heartbeat"))
# A beat whose ticks stop for this long (a call that never returns) exits, so its restart policy starts a fresh
# one (taskqueue/liveness.py); ticks come at least every 10 s, also while Redis is unreachable. 0: never.
BEAT_STUCK_AFTER = env.float("BEAT_STUCK_AFTER", default=120)
# Each worker's event loop touches celery-worker-<node>@<host>.heartbeat here every 2 s (compose/healthcheck-worker).
WORKER_HEARTBEAT_DIR = env("WORKER_HEARTBEAT_DIR", default=tempfile.gettempdir())
# A worker whose event loop stops for this long while connected to the broker exits, so its restart policy starts
# a fresh one; its tasks go back to their queues. Not while it reconnects to the broker or shuts down. 0: never.
WORKER_STUCK_AFTER = env.float("WORKER_STUCK_AFTER", default=120)
# Only the beat holding a Redis lock sends periodic tasks; a second beat stands by and takes over within this
# many seconds of the first one dying (at once if it stops cleanly). Beat ticks at least every 5 s.
BEAT_LOCK_TIMEOUT = env.int("BEAT_LOCK_TIMEOUT", default=30)
# Write a periodic task's last run to the database as soon as it is sent (Celery's default: every 3 minutes),
# so a beat that restarts after a crash, or takes over the lock, does not send it again.
CELERY_BEAT_SYNC_EVERY = 1

{% if cookiecutter.broker == "redis" -%}
# HEALTH
# ------------------------------------------------------------------------------
# /healthz/ says "degraded" once the broker's Redis uses this share of its maxmemory: past it, noeviction
# refuses every write, so new tasks cannot be sent. Early enough to act, late enough not to cry wolf.
HEALTH_REDIS_MEMORY_WARNING_RATIO = env.float("HEALTH_REDIS_MEMORY_WARNING_RATIO", default=0.8)

{% endif -%}
# METRICS (docs/monitoring.md)
# ------------------------------------------------------------------------------
# Workers count task outcomes and run times in Redis (metrics: keys); web's /metrics renders them with the queues'
# depth{% if cookiecutter.broker == "redis" %} and oldest-message age{% endif %} for Prometheus (taskqueue/metrics.py). Off: no per-task cost (celery_bench measures it).
TASK_METRICS = env.bool("TASK_METRICS", default=True)
# Each process writes its counts to Redis at most this often (seconds): one transaction instead of a write per task.
TASK_METRICS_FLUSH_INTERVAL = env.float("TASK_METRICS_FLUSH_INTERVAL", default=1.0)
# When set, /metrics answers only `Authorization: Bearer <token>` (production requires it).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
{%- if cookiecutter.use_flower == "y" %}
# Where the admin's "Task queues" page and the start page link to Flower.
FLOWER_URL = env("FLOWER_URL", default="http://localhost:5555/")
{%- endif %}
# The mail catcher the DEBUG start page links to (Mailpit in docker-compose.yml).
MAIL_CATCHER_URL = env("MAIL_CATCHER_URL", default="http://localhost:8025/")

{%- if cookiecutter.include_examples == "y" %}

# EXAMPLES (notifications, reports)
# ------------------------------------------------------------------------------
# A sign-in code and the email carrying it are useless after this many seconds.
LOGIN_CODE_TTL = 10 * 60
# The external sales API the reports read; the trailing slash matters (paths are joined to it).
REPORTS_API_URL = env("REPORTS_API_URL", default="http://localhost:8001/api/")
# (connect, read) seconds: a hung API must not hold an io worker slot forever.
REPORTS_API_TIMEOUT = (3.05, env.float("REPORTS_API_READ_TIMEOUT", default=10))
# Longest wait between retries of a failed API call; backoff doubles up to it, with jitter.
REPORTS_API_RETRY_BACKOFF_MAX = env.int("REPORTS_API_RETRY_BACKOFF_MAX", default=300)
# Per io worker: what the API allows divided by the number of io workers.
REPORTS_API_RATE_LIMIT = env("REPORTS_API_RATE_LIMIT", default="10/s")
{%- endif %}
