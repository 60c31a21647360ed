"""cache.clear() never deletes a queued task: the cache has a database of its own, and clears only its own keys."""

import pytest
from django.core.cache import cache

from config import redis_roles
from tests.reliability.ledger import Figures
from tests.support.waiting import wait_until

pytestmark = pytest.mark.reliability

TASKS = 100


def point_cache_at(settings, url: str) -> None:
    # Assigning CACHES resets Django's cache handler: `cache` connects to the new location.
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": url}}


def test_clearing_the_cache_with_100_tasks_queued_loses_none_and_each_runs_once(
    broker, deployment, ledger, settings, report
):
    keys = [f"queued-{number}" for number in range(TASKS)]
    broker.send_many("reliability.apply_effect", [(key,) for key in keys])  # no worker is running yet
    assert broker.queued("default") == TASKS
    # The cache a deployment with this REDIS_URL gets, with something in it to clear.
    point_cache_at(settings, redis_roles.role_url(broker.url, "cache"))
    cache.set("report", [1, 2], timeout=60)
    cache.clear()
    assert cache.get("report") is None
    assert broker.queued("default") == TASKS

    deployment.start_worker()
    wait_until(lambda: ledger.completed(keys) == TASKS, timeout=60, what=f"{TASKS} tasks to run")
    executions = len(ledger.runs())
    effects = ledger.effect_keys()
    figures = report(
        Figures(
            "cache.clear() with 100 tasks queued, then a worker started",
            sent=TASKS,
            completed=ledger.completed(keys),
            lost=TASKS - len(set(effects)),
            duplicated=len(effects) - len(set(effects)),
            executions=executions,
        )
    )
    assert (figures.lost, figures.duplicated, figures.executions) == (0, 0, TASKS)
    assert sorted(effects) == sorted(keys)


def test_a_cache_pointed_at_the_broker_database_by_mistake_still_clears_only_its_own_keys(broker, settings):
    broker.send_many("reliability.apply_effect", [(f"kept-{number}",) for number in range(TASKS)])
    # Settings refuse this (config/redis_roles.py require_apart); the client's clear() is the second guard.
    point_cache_at(settings, broker.url)
    cache.set("report", [1, 2], timeout=60)
    cache.clear()
    assert cache.get("report") is None
    assert broker.queued("default") == TASKS
