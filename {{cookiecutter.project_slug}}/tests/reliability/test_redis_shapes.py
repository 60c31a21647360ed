"""The worker-death scenario on the Redis shapes managed services hand out: an ACL user and verified TLS.

A whole worker (two on the queue) is SIGKILLed mid-task on a broker whose only user has
`+@all -@dangerous`, and on one that serves rediss:// only: the transport's atomic claim, its claim lists
and kombu's restore of unacked messages run with what that shape allows. The plain shape is
test_worker_deaths.py; Sentinel is test_sentinel.py.
"""

import pytest

from tests.reliability.broker import Broker
from tests.reliability.deployment import VISIBILITY_TIMEOUT
from tests.support.certificates import make_server_tls
from tests.support.waiting import wait_until
from tools.redis_server import AclUser, RedisServer

pytestmark = pytest.mark.reliability

TASK = "reliability.apply_effect"
PROTECTED = "a message is taken and recorded as unacked in one atomic step"
SHAPES = {"acl": "ACL user +@all -@dangerous", "tls": "TLS, certificate verified"}


@pytest.fixture(params=["acl", "tls"], ids=["acl-user", "tls"])
def broker(request, tmp_path_factory):
    if request.param == "acl":
        server = RedisServer(acl_user=AclUser())
    else:
        server = RedisServer(tls=make_server_tls(tmp_path_factory.mktemp("redis-tls")))
    broker = Broker(server)
    broker.shape = request.param
    yield broker
    broker.stop()


def test_whole_worker_killed_mid_task_on_an_acl_or_tls_broker_runs_once(deployment, broker, ledger, report):
    workers = deployment.start_workers("worker1", "worker2")
    for worker in workers:
        # The atomic claim is on for this shape (an ACL user may run BLMOVE and the Lua scripts; TLS changes nothing).
        worker.wait_for_output(PROTECTED, timeout=30)
    keys = ["shape-death", *(f"shape-after-{number}" for number in range(20))]
    broker.send(TASK, args=[keys[0]], kwargs={"hold_before": 3.0})
    run = wait_until(lambda: ledger.runs(keys[0]), timeout=60, what="the first run")[0]
    doomed = deployment.worker_of(run.pid)
    broker.send_many(TASK, [[key] for key in keys[1:]], kwargs={"hold_before": 0.2})

    doomed_pids = doomed.pids()
    doomed.kill_group()
    deployment.start_worker("replacement")
    wait_until(
        lambda: ledger.completed(keys) == len(keys), timeout=VISIBILITY_TIMEOUT + 60, interval=0.2, what="all tasks"
    )
    first, second = ledger.runs(keys[0])
    figures = report(
        ledger.figures(
            f"worker-sigkill, {SHAPES[broker.shape]}",
            keys,
            notes=f"2 workers, {doomed.node} killed; redelivered {second.started_at - first.started_at:.1f} s later",
        )
    )
    assert (figures.lost, figures.duplicated, figures.completed) == (0, 0, len(keys))
    # The killed run ran twice, and so may a message its pool finished but had not acked yet.
    ledger.assert_only_killed_runs_repeated(keys, doomed_pids)
    for worker in deployment.processes:
        assert "NOPERM" not in worker.output()
        assert "CERTIFICATE_VERIFY_FAILED" not in worker.output()
