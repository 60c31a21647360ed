"""Two beats started by mistake: one sends each periodic task once per tick, the other stands by."""

import itertools
import re
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from tests.reliability.ledger import Figures
from tests.support.waiting import wait_until

pytestmark = pytest.mark.reliability

TICK = 2  # seconds between two sends of the fast periodic task
LOCK_TIMEOUT = 6  # BEAT_LOCK_TIMEOUT for these beats: the standby takes over this long after the holder dies
SENDING = "Sending due task"
STANDING_BY = "holds the beat lock: this one"


def periodic(key: str, every: int) -> None:
    """A periodic task, due at once, that records a run under ``key`` every ``every`` seconds."""
    PeriodicTask.objects.create(
        name=key,
        task="reliability.record_tick",
        args=f'["{key}"]',
        interval=IntervalSchedule.objects.create(every=every, period=IntervalSchedule.SECONDS),
        last_run_at=timezone.now() - timedelta(hours=1),
    )


# Each beat's log line for a send of the fast task: "INFO 2026-12-04 20:15:51,329 celery.beat <pid> Scheduler: ..."
FAST_SEND = re.compile(r"^\w+ (\S+ \S+) \S+ \d+ Scheduler: Sending due task fast \(", re.MULTILINE)


def send_times(*beats) -> list[float]:
    """When the beats sent the fast task, by their own clocks (the same machine's), in order."""
    return sorted(
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for beat in beats
        for stamp in FAST_SEND.findall(beat.output())
    )


def ticks(ledger, key: str = "fast") -> list[float]:
    return [run.started_at for run in ledger.runs(key)]


def wait_for_ticks(ledger, count: int) -> None:
    wait_until(lambda: len(ticks(ledger)) >= count, timeout=60 + count * TICK, interval=0.2, what=f"{count} ticks")


def test_two_beats_send_each_tick_once_and_the_standby_takes_over_when_the_holder_dies(deployment, ledger, report):
    periodic("fast", every=TICK)
    # Sent once by the first holder; the beat that takes over must know it ran (CELERY_BEAT_SYNC_EVERY).
    periodic("slow", every=600)
    deployment.start_worker()
    beats = [deployment.start_beat(node, BEAT_LOCK_TIMEOUT=str(LOCK_TIMEOUT)) for node in ("beat-a", "beat-b")]
    for beat in beats:
        beat.wait_for_output("beat lock", timeout=90)

    # Both run side by side for several ticks: only the lock holder sends.
    wait_for_ticks(ledger, len(ticks(ledger)) + 4)
    (holder,) = [beat for beat in beats if SENDING in beat.output()]
    (standby,) = [beat for beat in beats if beat is not holder]
    assert STANDING_BY in standby.output(), standby.output()

    holder.kill_group()  # its host dies: no clean release, the lock expires after LOCK_TIMEOUT
    killed_after = len(ticks(ledger))
    standby.wait_for_output(SENDING, timeout=LOCK_TIMEOUT + 60)
    wait_for_ticks(ledger, killed_after + 3)
    standby.stop()
    sent = sum(beat.output().count(SENDING) for beat in beats)
    # The last one sent may still have been on its way to the worker.
    wait_for_ticks(ledger, sent - len(ticks(ledger, "slow")))

    times = ticks(ledger)
    # A tick sent by both beats is two sends close together. Measured between the sends, not the runs: a worker
    # on a loaded machine can start one run late and the next on time, which puts two runs close together.
    gaps = [later - earlier for earlier, later in itertools.pairwise(send_times(*beats))]
    slow_runs = len(ticks(ledger, "slow"))
    figures = report(
        Figures(
            scenario="two-beats",
            sent=sent,
            completed=len(times) + slow_runs,
            lost=sent - len(times) - slow_runs,
            duplicated=sum(1 for gap in gaps if gap < TICK / 2) + max(slow_runs - 1, 0),
            executions=len(times) + slow_runs,
            notes=f"{holder.node} sent {holder.output().count(SENDING)} ticks while {standby.node} stood by; "
            f"{standby.node} took over {max(gaps):.1f} s after the last one",
        )
    )
    # No tick was sent by both beats: consecutive sends are a full interval apart, never a pair.
    slow_sends = sum(beat.output().count(f"{SENDING} slow") for beat in beats)
    assert len(gaps) + 1 == sent - slow_sends, "a send of the fast task was not read from the beats' logs"
    assert figures.duplicated == 0, gaps
    assert slow_runs == 1, "the beat that took over sent the slow task again"
    assert figures.lost == 0
    assert max(gaps) <= LOCK_TIMEOUT + 2 * TICK + 10
