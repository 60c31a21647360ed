"""The alert rules in the generated docs/monitoring.md pass `promtool check rules` and fire as their text says,
for either broker.

`promtool test rules` (Debian's `prometheus` package) evaluates them against series written here: each alert
fires on the series it is for, stays silent on the others, and its summary reads right (a beat that never ticked
is not reported as "not ticked for 1s").
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

BEAT_STALE = "Beat has not ticked for 10m 5s: periodic tasks are not sent"
BEAT_NEVER = (
    "No beat has recorded a tick in this broker's Redis (or /metrics is not scraped): periodic tasks are not sent"
)


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: `apt-get install prometheus` (see .ci/run).")
    return found


def alert_rules(project: Path) -> str:
    """The YAML block under the "Alert rules" heading of docs/monitoring.md."""
    text = (project / "docs" / "monitoring.md").read_text()
    section = text.split("## Alert rules", 1)[1]
    (block,) = re.findall(r"```yaml\n(.*?)```", section.split("\n## ", 1)[0], flags=re.DOTALL)
    return block


def alert(name: str, at: str, summary: str | None = None, **labels: str) -> dict:
    expected = [] if summary is None else [{"exp_labels": labels, "exp_annotations": {"summary": summary}}]
    return {"eval_time": at, "alertname": name, "exp_alerts": expected}


CASES = [
    {
        # Beat ticked once, then stopped: 5 s after its tick, then a minute older at every step.
        "interval": "1m",
        "input_series": [{"series": "celery_beat_seconds_since_tick", "values": "5+60x10"}],
        "alert_rule_test": [
            alert("CeleryBeatStale", "10m", BEAT_STALE, severity="page"),
            alert("CeleryBeatNeverTicked", "10m"),
        ],
    },
    {
        # No beat ever ticked: the series does not exist (another series shows the scrape works).
        "interval": "1m",
        "input_series": [{"series": "celery_dead_letters_waiting", "values": "0x10"}],
        "alert_rule_test": [
            alert("CeleryBeatNeverTicked", "10m", BEAT_NEVER, severity="page"),
            alert("CeleryBeatStale", "10m"),
            alert("TaskDeadLettersWaiting", "10m"),
        ],
    },
    {
        # A beat that ticks: nothing about beat fires.
        "interval": "1m",
        "input_series": [{"series": "celery_beat_seconds_since_tick", "values": "3x10"}],
        "alert_rule_test": [alert("CeleryBeatStale", "10m"), alert("CeleryBeatNeverTicked", "10m")],
    },
    {
        # 100 s is over the default queue's budget (60 s) and within the io queue's (300 s).
        "interval": "1m",
        "input_series": [
            {"series": 'celery_queue_oldest_message_age_seconds{queue="default"}', "values": "100x10"},
            {"series": 'celery_queue_oldest_message_age_seconds{queue="io"}', "values": "100x10"},
            {"series": "celery_dead_letters_waiting", "values": "2x20"},
        ],
        "alert_rule_test": [
            alert(
                "TaskQueueOldestMessageTooOld",
                "10m",
                "Queue default: the oldest message has waited 1m 40s",
                severity="page",
                queue="default",
            ),
            alert(
                "TaskDeadLettersWaiting",
                "20m",
                "2 failed tasks wait in the admin's Failed tasks for a fix and a replay",
                severity="ticket",
            ),
        ],
    },
]


# A RabbitMQ project has no message age: its queue alert is a backlog that does not shrink (docs/monitoring.md).
RABBITMQ_CASES = [
    *CASES[:3],
    {
        # default: 50 waiting and not moving; io: a backlog draining; cpu: empty. Only default fires.
        "interval": "1m",
        "input_series": [
            {"series": 'celery_queue_length{queue="default"}', "values": "50x20"},
            {"series": 'celery_queue_length{queue="io"}', "values": "500-10x20"},
            {"series": 'celery_queue_length{queue="cpu"}', "values": "0x20"},
            {"series": "celery_dead_letters_waiting", "values": "0x20"},
        ],
        "alert_rule_test": [
            alert(
                "TaskQueueBacklogNotDraining",
                "12m",
                "Queue default: 50 messages waiting, and the backlog is not shrinking",
                severity="page",
                queue="default",
            ),
            alert("TaskDeadLettersWaiting", "20m"),
        ],
    },
    {
        # A queue with no worker: its backlog grows; it fires once the growth has lasted `for`.
        "interval": "1m",
        "input_series": [{"series": 'celery_queue_length{queue="io"}', "values": "0 0 1+3x20"}],
        "alert_rule_test": [
            alert("TaskQueueBacklogNotDraining", "5m"),
            alert(
                "TaskQueueBacklogNotDraining",
                "10m",
                "Queue io: 25 messages waiting, and the backlog is not shrinking",
                severity="page",
                queue="io",
            ),
        ],
    },
]


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_alert_rules_are_valid_and_fire_as_their_summaries_say(bake, tmp_path, broker):
    project = bake(broker=broker)
    rules = tmp_path / "rules.yml"
    rules.write_text(alert_rules(project))
    checked = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    cases = RABBITMQ_CASES if broker == "rabbitmq" else CASES
    assert ("TaskQueueOldestMessageTooOld" in rules.read_text()) == (broker == "redis")
    tests = tmp_path / "tests.yml"
    tests.write_text(yaml.safe_dump({"rule_files": [rules.name], "evaluation_interval": "1m", "tests": cases}))
    run = subprocess.run(
        [promtool(), "test", "rules", str(tests)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout
