"""The benchmark only ever flushes a database it was given: empty, or flushed because the user said --yes."""

import pytest
import redis

from tools.bench.errors import BenchmarkError
from tools.bench.scratch_redis import claim, with_database, worker_role_env


@pytest.fixture
def databases(redis_url):
    clients = {number: redis.Redis.from_url(with_database(redis_url, number)) for number in (14, 15)}
    yield clients
    for client in clients.values():
        client.flushdb()


def test_a_database_holding_keys_is_refused_and_left_alone(databases):
    databases[15].set("someone:else", "precious")
    with pytest.raises(BenchmarkError, match="--yes"):
        claim(databases[15], flush=False)
    assert databases[15].get("someone:else") == b"precious"


def test_yes_flushes_the_benchmark_database_and_no_other(databases):
    databases[14].set("neighbour", "kept")
    databases[15].set("leftover", "gone")
    claim(databases[15], flush=True)
    assert databases[15].dbsize() == 0
    assert databases[14].get("neighbour") == b"kept"


def test_benchmark_url_keeps_server_and_password_and_changes_only_the_database():
    assert with_database("redis://:secret@redis.internal:6380/0", 15) == "redis://:secret@redis.internal:6380/15"
    assert with_database("redis://localhost:6379", 15) == "redis://localhost:6379/15"


def test_a_benchmark_in_the_last_database_gives_its_workers_results_and_cache_databases_that_exist():
    assert worker_role_env("redis://127.0.0.1:6379/15") == {
        "CELERY_RESULT_BACKEND_URL": "redis://127.0.0.1:6379/14",
        "REDIS_CACHE_URL": "redis://127.0.0.1:6379/13",
    }
    assert worker_role_env("redis://127.0.0.1:6379/0") == {}  # 1 and 2 exist: the settings derive them
