"""TLS Redis (``rediss://``, the server's certificate verified) for the broker, the cache and the result backend.

The server speaks TLS only; its certificate is signed by a CA the test makes. Settings turn a rediss:// URL into
certificate verification against REDIS_CA_CERTS (config/redis_roles.py); a wrong CA fails at once, by name.
"""

import os
import subprocess
import sys
import time
import uuid

import pytest
import redis
from django.core.cache import cache

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue.cache_client import redis_cache
from tests.support.certificates import make_ca, make_server_tls
from tests.support.database import database_url
from tests.support.redis_shapes import broker_connection, use_cache_on, worker_delivers_and_stores
from tests.taskqueue.tasks import record_delivery
from tools.procfile import PROJECT_DIR
from tools.redis_server import RedisServer

pytestmark = pytest.mark.django_db(transaction=True)

# What a failed verification says (ssl.SSLCertVerificationError), wherever it surfaces.
VERIFY_FAILED = "certificate verify failed"
# A send or a cache read that cannot verify the server fails within this many seconds, not after retries.
FAILS_WITHIN = 5


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    server = RedisServer(tls=make_server_tls(tmp_path_factory.mktemp("tls"))).start()
    yield server
    server.stop(remove_data=True)


@pytest.fixture(scope="module")
def wrong_ca(tmp_path_factory) -> str:
    certificate, _key = make_ca(tmp_path_factory.mktemp("other-ca"), "other-ca")
    return str(certificate)


def test_the_server_speaks_tls_only(tls_redis):
    plain = redis.Redis.from_url(tls_redis.url.replace("rediss://", "redis://"), socket_timeout=2)
    with pytest.raises(redis.ConnectionError):
        plain.ping()


def test_a_worker_takes_tasks_and_stores_results_over_verified_tls(tls_redis, settings):
    use_cache_on(settings, tls_redis)
    hostname = f"tls-{uuid.uuid4().hex[:6]}"
    outcome = worker_delivers_and_stores(tls_redis, hostname=hostname)
    assert outcome["delivery"]["payload"] == {"shape": hostname}
    if celery_app.conf.result_backend:
        assert outcome["result"] == 3
    assert VERIFY_FAILED not in outcome["log"]
    assert outcome["probe"].startswith("healthy"), outcome["probe"]


def test_the_cache_and_its_locks_work_over_verified_tls(tls_redis, settings):
    use_cache_on(settings, tls_redis)
    cache.set("report", {"rows": [1]}, timeout=60)
    assert cache.get("report") == {"rows": [1]}
    lock = redis_cache().lock("lock:tls", timeout=10, blocking_timeout=0.1)
    assert lock.acquire()
    lock.release()
    cache.clear()
    assert cache.get("report") is None


def test_a_send_checked_against_the_wrong_ca_fails_within_seconds_naming_the_certificate(tls_redis, wrong_ca):
    started = time.monotonic()
    with pytest.raises(Exception, match=VERIFY_FAILED), broker_connection(tls_redis, ca=wrong_ca) as broker:
        record_delivery.apply_async(["never", {}], connection=broker)
    assert time.monotonic() - started < FAILS_WITHIN


SEND = "from config.celery_app import app; app.send_task('tests.add', args=[1, 2])"
CACHE_READ = "from django.core.cache import cache; cache.get('anything')"


@pytest.mark.parametrize("snippet", [SEND, CACHE_READ], ids=["broker", "cache"])
def test_settings_verify_a_rediss_url_against_redis_ca_certs_and_a_wrong_ca_fails_fast(tls_redis, wrong_ca, snippet):
    """Only REDIS_URL and REDIS_CA_CERTS set, as in a deployment (the right CA: the worker test above)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "REDIS_URL": tls_redis.url,
        "REDIS_CA_CERTS": wrong_ca,
        "DATABASE_URL": database_url(),
    }
    # Timed inside the process, after django.setup(): the interpreter's start says nothing about Redis.
    code = (
        "import sys, time, django\n"
        "django.setup()\n"
        "started = time.monotonic()\n"
        "try:\n"
        f"    {snippet}\n"
        "finally:\n"
        "    print(f'elapsed={time.monotonic() - started}', file=sys.stderr)\n"
    )
    refused = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert VERIFY_FAILED in refused.stderr
    elapsed = float(refused.stderr.rsplit("elapsed=", 1)[1].split()[0])
    assert elapsed < FAILS_WITHIN
