import time

import pytest
from django.urls import reverse

# Nothing listens on port 1: a probe of it fails as it would with the service down.
NOWHERE_REDIS = "redis://127.0.0.1:1/0"
NOWHERE_AMQP = "amqp://guest:guest@127.0.0.1:1//"  # pragma: allowlist secret


@pytest.mark.django_db
def test_healthz_answers_200_when_database_broker_redis_and_cache_answer(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "redis": "ok", "cache": "ok"},
    }
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_answers_503_and_names_the_broker_when_rabbitmq_is_down_within_seconds(client, broker_at):
    broker_at(NOWHERE_AMQP)
    started = time.monotonic()
    response = client.get(reverse("healthz"))
    took = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "error", "redis": "ok", "cache": "ok"}
    assert took < 5, f"the probe of a refused broker took {took:.1f} s"


@pytest.mark.django_db
def test_healthz_answers_503_and_names_redis_when_the_state_redis_is_down(client, settings):
    settings.REDIS_STATE_URL = NOWHERE_REDIS
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "redis": "error", "cache": "ok"}


@pytest.mark.django_db
def test_healthz_answers_503_and_names_the_cache_when_the_cache_redis_is_down(client, settings):
    # Changing CACHES resets Django's cache handler, so the view connects to the new location.
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": NOWHERE_REDIS,
            "OPTIONS": {**settings.CACHES["default"]["OPTIONS"], "SOCKET_CONNECT_TIMEOUT": 0.5},
        }
    }
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "redis": "ok", "cache": "error"}


@pytest.mark.django_db
def test_readiness_asks_the_database_only_so_a_broker_blip_drains_no_web_pod(client, broker_at, settings):
    broker_at(NOWHERE_AMQP)
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": NOWHERE_REDIS}}
    assert client.get(reverse("healthz")).status_code == 503
    response = client.get(reverse("healthz") + "?ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}
