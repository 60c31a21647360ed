import pytest
import redis
from django.urls import reverse

from {{ cookiecutter.project_slug }}.taskqueue import broker_redis

# Nothing listens on port 1: a probe of it fails as it would with Redis down.
NOWHERE = "redis://127.0.0.1:1/0"


@pytest.mark.django_db
def test_healthz_answers_200_when_database_broker_and_cache_answer(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "redis": "ok", "cache": "ok"}
    # The test server runs without a maxmemory: said so, not taken as healthy headroom.
    assert body["redis_memory"]["state"] == "no-limit"
    assert body["redis_memory"]["used_bytes"] > 0
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_answers_503_and_names_the_cache_when_the_cache_redis_is_down(client, settings):
    # Changing CACHES resets Django's cache handler, so the view connects to the new location.
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": NOWHERE,
            "OPTIONS": {**settings.CACHES["default"]["OPTIONS"], "SOCKET_CONNECT_TIMEOUT": 0.5},
        }
    }
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "cache": "error"}


@pytest.mark.django_db
def test_healthz_answers_503_and_names_redis_when_the_broker_redis_is_down(client, broker_at):
    broker_at(NOWHERE)
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json() == {"status": "error", "checks": {"database": "ok", "redis": "error", "cache": "ok"}}


@pytest.fixture
def broker_maxmemory(redis_url):
    """Set the broker's maxmemory for one test (the test server's default user may run CONFIG)."""
    admin = redis.Redis.from_url(redis_url)
    before = str(admin.config_get("maxmemory")["maxmemory"])
    yield lambda limit: admin.config_set("maxmemory", limit)
    admin.config_set("maxmemory", before)
    admin.close()


@pytest.mark.django_db
def test_healthz_says_degraded_when_the_broker_is_near_its_maxmemory(client, settings, broker_maxmemory):
    used = broker_redis.client().info("memory")["used_memory"]
    # 90 % used: above the warning ratio, below the limit, so noeviction still accepts writes.
    broker_maxmemory(int(used / 0.9))
    response = client.get(reverse("healthz"))
    # Still 200: restarting web frees no Redis memory; the body says what to look at.
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["redis_memory"]["state"] == "near-limit"
    assert body["redis_memory"]["used_ratio"] >= settings.HEALTH_REDIS_MEMORY_WARNING_RATIO


@pytest.mark.django_db
def test_healthz_says_ok_when_the_broker_has_room_under_its_maxmemory(client, broker_maxmemory):
    used = broker_redis.client().info("memory")["used_memory"]
    broker_maxmemory(used * 4)
    body = client.get(reverse("healthz")).json()
    assert body["status"] == "ok"
    assert body["redis_memory"]["state"] == "ok"
    assert body["redis_memory"]["used_ratio"] < 0.5


@pytest.mark.django_db
def test_healthz_gives_the_memory_figures_only_to_a_caller_with_the_metrics_token(client, settings, broker_maxmemory):
    settings.METRICS_TOKEN = "s3cret"  # noqa: S105  # pragma: allowlist secret
    broker_maxmemory(broker_redis.client().info("memory")["used_memory"] * 4)
    anonymous = client.get(reverse("healthz"))
    assert anonymous.status_code == 200
    assert anonymous.json()["redis_memory"] == {"state": "ok"}  # what a probe needs; no bytes, no limit
    wrong = client.get(reverse("healthz"), HTTP_AUTHORIZATION="Bearer wrong").json()
    assert wrong["redis_memory"] == {"state": "ok"}
    bearer = client.get(reverse("healthz"), HTTP_AUTHORIZATION="Bearer s3cret").json()
    assert set(bearer["redis_memory"]) == {"state", "used_bytes", "maxmemory_bytes", "used_ratio"}


@pytest.mark.django_db
def test_readiness_asks_the_database_only_so_a_redis_blip_drains_no_web_pod(client, broker_at, settings):
    broker_at(NOWHERE)
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": NOWHERE}}
    assert client.get(reverse("healthz")).status_code == 503
    response = client.get(reverse("healthz") + "?ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}
