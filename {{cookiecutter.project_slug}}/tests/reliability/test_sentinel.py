"""The broker behind Redis Sentinel: the primary fails over with tasks queued and in flight.

A primary, its replica and a redis-sentinel (tests/reliability/sentinel.py); two workers reach the
broker through the sentinel (`CELERY_BROKER_URL=sentinel://...` and `REDIS_SENTINEL_MASTER`, as the
README says) and run the project's transport over kombu's Sentinel channel. Replication is
asynchronous: what the primary accepted in its last moments and had not sent to the replica yet is
not on the new primary. So this scenario reports what was lost instead of promising nothing is;
docs/reliability.md quotes it.
"""

import time

import pytest

from config.celery_app import app as celery_app
from tests.reliability.deployment import STARTUP_TIMEOUT, VISIBILITY_TIMEOUT
from tests.reliability.sentinel import MASTER_NAME, SentinelTopology
from tests.support.redis_shapes import worker_probe
from tests.support.waiting import wait_until

pytestmark = pytest.mark.reliability

TASK = "reliability.apply_effect"
BEFORE = 300
AFTER = 50
HOLDS = {"hold_before": 0.02, "hold_after": 0.02}
SLOW = 30
PROTECTED = "a message is taken and recorded as unacked in one atomic step"


@pytest.fixture
def topology():
    topology = SentinelTopology().start()
    yield topology
    topology.stop()


def send(topology, keys: list[str], **kwargs) -> None:
    options = {**celery_app.conf.broker_transport_options, "master_name": MASTER_NAME}
    with celery_app.connection_for_write(topology.broker_url, transport_options=options) as connection:
        for key in keys:
            celery_app.send_task(TASK, args=[key], kwargs=kwargs or HOLDS, connection=connection)


@pytest.mark.parametrize("how", ["failover", "kill"], ids=["sentinel-failover", "primary-sigkilled"])
def test_the_primary_fails_over_with_tasks_queued_and_in_flight(deployment, topology, ledger, report, how):
    # Configured as a user would (README, "Use a managed Redis"): the broker through the sentinel, the cache and
    # the results on the scenario's plain Redis (REDIS_URL).
    env = deployment.env(CELERY_BROKER_URL=topology.broker_url, REDIS_SENTINEL_MASTER=MASTER_NAME)
    # Queued before the workers start: sent while they ran, the tasks could all be done before the failover on a
    # loaded machine (sending was slower than running them).
    keys = [f"sentinel-{number}" for number in range(BEFORE)]
    send(topology, keys[:SLOW])
    send(topology, [keys[SLOW]], hold_before=3.0)
    send(topology, keys[SLOW + 1 :])
    nodes = ("sentinel-a", "sentinel-b")
    workers = [deployment.start("worker", node, env, extra_args=f"-n {node}@%h") for node in nodes]
    for worker in workers:
        deployment.wait_ready(worker)
        # The worker states at start that the transport's protections apply over Sentinel too.
        worker.wait_for_output(PROTECTED, timeout=STARTUP_TIMEOUT)
        assert "not the project's patched Redis transport" not in worker.output()
    wait_until(lambda: ledger.runs(keys[SLOW]), timeout=120, what="the slow task to start")
    queued = topology.client(topology.primary()).llen("default")
    in_flight = topology.client(topology.primary()).hlen("unacked")

    old_primary = topology.primary()
    new_primary = topology.failover(how)

    after = [f"sentinel-after-{number}" for number in range(AFTER)]
    send(topology, after)
    # Anything unacked is redelivered after the visibility timeout, if it reached the new primary: wait for that,
    # not for what the failover lost.
    deadline = time.monotonic() + VISIBILITY_TIMEOUT + 60
    while ledger.completed(keys + after) < BEFORE + AFTER and time.monotonic() < deadline:
        time.sleep(0.5)
    # Once the old primary has become a replica (or is gone), the workers take what is sent, through the sentinel.
    topology.settled()
    probes = [f"sentinel-probe-{number}" for number in range(10)]
    send(topology, probes)
    wait_until(lambda: ledger.completed(probes) == len(probes), timeout=120, interval=0.5, what="the probe tasks")
    figures = report(
        ledger.figures(
            f"sentinel, {'SENTINEL FAILOVER' if how == 'failover' else 'primary SIGKILLed'}",
            keys + after,
            notes=f"2 workers; {old_primary} -> {new_primary} with {queued} queued and {in_flight} unacked; "
            f"{AFTER} sent just after it; lost {ledger.figures('', after).lost} of those",
        )
    )
    assert queued > 0, "the stream ended before the failover: nothing was tested"
    assert figures.duplicated == 0  # idempotent effects, whatever the broker delivered twice
    assert figures.completed + figures.lost == BEFORE + AFTER
    assert ledger.figures("probes", probes).duplicated == 0
    for worker in workers:
        assert worker.process.poll() is None, worker.output()[-3000:]
        # Its health check, which reads the heartbeat of its event loop, passes after the failover too.
        probe = worker_probe(worker.node)
        assert probe.returncode == 0, probe.stdout
