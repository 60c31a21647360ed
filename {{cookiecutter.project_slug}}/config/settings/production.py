"""Production: everything secret or per-deploy comes from the environment, with no defaults."""
{%- if cookiecutter.use_sentry == "y" %}

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration
{%- endif %}

from .base import *  # noqa: F403
from .base import DATABASES, env

# GENERAL
# ------------------------------------------------------------------------------
SECRET_KEY = env("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["{{ cookiecutter.domain_name }}"])

# DATABASES
# ------------------------------------------------------------------------------
# No SQLite fallback in production: a missing DATABASE_URL fails at start.
DATABASES["default"] = env.db("DATABASE_URL")
# Reuse connections between requests (workers close them around each task).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# REDIS
# ------------------------------------------------------------------------------
# base.py points the cache, the broker (and a Redis result backend) at REDIS_URL; in production it
# carries the Redis password, so it is required here instead of falling back to localhost.
env("REDIS_URL")

# SECURITY
# ------------------------------------------------------------------------------
# TLS terminates at the proxy in front of gunicorn, which sets this header.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Health checks come over plain HTTP from inside the deployment.
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# Start with 60 seconds and raise it to a year once HTTPS works everywhere.
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Off until the team chooses it: a preload-list entry binds every subdomain to HTTPS for months, even after the
# header is gone (docs/decisions.md). Django's security.W021 says so at `check --deploy`; silenced unless it is set.
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True

# STATIC
# ------------------------------------------------------------------------------
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# EMAIL
# ------------------------------------------------------------------------------
EMAIL_HOST = env("DJANGO_EMAIL_HOST")
EMAIL_PORT = env.int("DJANGO_EMAIL_PORT", default=587)
EMAIL_HOST_USER = env("DJANGO_EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("DJANGO_EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("DJANGO_EMAIL_USE_TLS", default=True)
EMAIL_SUBJECT_PREFIX = "[{{ cookiecutter.project_name }}] "

# METRICS
# ------------------------------------------------------------------------------
# /metrics tells anyone who reads it the task names and how busy the queues are: no defaults, a token is
# required (the post-generation hook writes one into .envs/.production/.django; give it to Prometheus).
METRICS_TOKEN = env("METRICS_TOKEN")

# CELERY
# ------------------------------------------------------------------------------
# Eager mode would run tasks inside the web request: never in production.
CELERY_TASK_ALWAYS_EAGER = False
{%- if cookiecutter.use_sentry == "y" %}

# SENTRY
# ------------------------------------------------------------------------------
sentry_sdk.init(
    dsn=env("SENTRY_DSN"),
    environment=env("SENTRY_ENVIRONMENT", default="production"),
    traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
    integrations=[
        DjangoIntegration(),
        # monitor_beat_tasks reports each periodic task's check-ins to Sentry Crons.
        CeleryIntegration(monitor_beat_tasks=True),
    ],
    send_default_pii=False,
)
{%- endif %}
