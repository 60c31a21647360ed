{% if cookiecutter.broker == "rabbitmq" -%}
"""Which Redis database each role uses (state, results, cache), and the TLS options of a ``rediss://`` URL.

RabbitMQ is the broker; Redis keeps the task metrics and beat's tick (state), results and the cache. REDIS_URL is the
single knob: its database number is the state's, the result backend takes the next one and the cache the one after
(``redis://host:6379/0`` -> state 0, results 1, cache 2). Each role's own variable (REDIS_STATE_URL,
CELERY_RESULT_BACKEND_URL, REDIS_CACHE_URL) overrides it, for a Redis server per role.
"""
{%- else -%}
"""Which Redis database each role uses (broker, results, cache), and the TLS options of a ``rediss://`` URL.

REDIS_URL is the single knob: its database number is the broker's, the result backend takes the next one and
the cache the one after (``redis://host:6379/0`` -> broker 0, results 1, cache 2). Each role's own variable
(CELERY_BROKER_URL, CELERY_RESULT_BACKEND_URL, REDIS_CACHE_URL) overrides it, for a Redis server per role.
"""
{%- endif %}

import ssl
from typing import Any
from urllib.parse import SplitResult, urlsplit

from django.core.exceptions import ImproperlyConfigured

{% if cookiecutter.broker == "rabbitmq" -%}
# Added to REDIS_URL's database number; the state keeps it.
DATABASE_OFFSETS = {"state": 0, "results": 1, "cache": 2}
{%- else -%}
# Added to REDIS_URL's database number; the broker keeps it.
DATABASE_OFFSETS = {"broker": 0, "results": 1, "cache": 2}
{%- endif %}


def database_number(url: str) -> int:
    # A sentinel:// broker URL may list several sentinels, joined by ";": the first one's database is theirs.
    path = urlsplit(url.split(";")[0]).path.strip("/")
    if not path:
        return 0
    if not path.isdigit():
        raise ImproperlyConfigured(f"The Redis URL {_safe(url)} names database {path!r}, not a number.")
    return int(path)


def with_database(url: str, number: int) -> str:
    return urlsplit(url)._replace(path=f"/{number}").geturl()


def role_url(redis_url: str, role: str) -> str:
    """REDIS_URL moved to the role's own database number."""
    return with_database(redis_url, database_number(redis_url) + DATABASE_OFFSETS[role])


{% if cookiecutter.broker == "rabbitmq" -%}
def require_apart(cache_url: str, state_url: str) -> None:
    """A cache sharing the state's database would let cache.clear() delete the task metrics: refuse it at start."""
    if _address(cache_url) == _address(state_url):
        raise ImproperlyConfigured(
            f"REDIS_CACHE_URL and REDIS_STATE_URL name the same Redis database ({_safe(cache_url)}): give the "
            "cache a database (or server) of its own, so clearing the cache cannot touch the task metrics."
        )
{%- else -%}
def require_apart(cache_url: str, broker_url: str) -> None:
    """A cache sharing the broker's database would let cache.clear() reach the queues: refuse it at start."""
    if _address(cache_url) == _address(broker_url):
        raise ImproperlyConfigured(
            f"REDIS_CACHE_URL and CELERY_BROKER_URL name the same Redis database ({_safe(cache_url)}): give the "
            "cache a database (or server) of its own, so clearing the cache cannot touch the queues."
        )
{%- endif %}


# What redis-py (the cache, the Redis result backend) connects to{% if cookiecutter.broker == "redis" %}; the broker also takes sentinel://{% endif %}.
PLAIN_SCHEMES = ("redis", "rediss", "unix")


def require_plain(name: str, url: str) -> None:
{%- if cookiecutter.broker == "rabbitmq" %}
    """The Redis roles use redis-py, which follows no Redis Sentinel: refuse a sentinel:// URL for any of them."""
    scheme = urlsplit(url).scheme
    if scheme not in PLAIN_SCHEMES:
        raise ImproperlyConfigured(
            f"{name} is {_safe(url)}: the Redis roles (state, results, cache) need a redis://, rediss:// or unix:// "
            "URL."
        )
{%- else %}
    """Only the broker follows Redis Sentinel (kombu's transport): refuse a sentinel:// URL for another role."""
    scheme = urlsplit(url).scheme
    if scheme not in PLAIN_SCHEMES:
        raise ImproperlyConfigured(
            f"{name} is {_safe(url)}: the cache and the result backend need a redis://, rediss:// or unix:// URL. "
            "For a broker behind Redis Sentinel, set CELERY_BROKER_URL=sentinel://... with REDIS_SENTINEL_MASTER, "
            "and point REDIS_URL (or REDIS_CACHE_URL and CELERY_RESULT_BACKEND_URL) at a plain Redis."
        )
{%- endif %}


{% if cookiecutter.broker == "redis" -%}
def sentinel_options(broker_url: str, master_name: str) -> dict:
    """The transport options a sentinel:// broker URL needs (the name the sentinels know the primary by)."""
    if urlsplit(broker_url).scheme != "sentinel":
        return {}
    if not master_name:
        raise ImproperlyConfigured(
            f"CELERY_BROKER_URL is {_safe(broker_url)}: set REDIS_SENTINEL_MASTER to the name the sentinels "
            "monitor the primary under (`sentinel monitor <name> ...` in their configuration)."
        )
    return {"master_name": master_name}


{% endif -%}


def tls_options(url: str, ca_certs: str) -> dict | None:
    """For a ``rediss://`` URL: verify the server's certificate, against ``ca_certs`` if given (else the system's)."""
    if urlsplit(url).scheme != "rediss":
        return None
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if ca_certs:
        options["ssl_ca_certs"] = ca_certs
    return options


def _address(url: str) -> tuple:
    parts = urlsplit(url.split(";")[0])
    return (parts.hostname, parts.port or 6379, database_number(url))


def _safe(url: str) -> str:
    """The URL without its password, for error messages (each of a sentinel:// URL's parts)."""
    if ";" in url:
        return ";".join(_safe(part) for part in url.split(";"))
    parts: SplitResult = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()
