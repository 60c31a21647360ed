"""The harness settles on what the workers reported, whatever order their reports were written in."""

import json
from pathlib import Path

from tests.contracts.harness import Run


def reported(directory: Path, *events: dict) -> Run:
    (directory / "events.jsonl").write_text("".join(json.dumps(event) + "\n" for event in events))
    return Run(directory)


def test_a_run_that_ended_in_retry_owes_the_next_retry_until_it_starts(tmp_path):
    run = reported(
        tmp_path,
        {"event": "start", "pid": 1, "task_id": "t", "retries": 0},
        {"event": "end", "pid": 1, "task_id": "t", "state": "RETRY", "retries": 0},
    )
    assert run.retries_owed() == [1]
    run = reported(
        tmp_path,
        *[json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()],
        {"event": "start", "pid": 2, "task_id": "t", "retries": 1},
        {"event": "end", "pid": 2, "task_id": "t", "state": "RETRY", "retries": 1},
    )
    assert run.retries_owed() == [2]


def test_a_retry_that_ends_before_the_run_that_sent_it_owes_nothing(tmp_path):
    # The order a fresh-clone CI run wrote: the retry, sent while the broker stalled, ran on the other worker and
    # succeeded before the run that sent it recorded its end. Settling on the last end (RETRY) waited forever.
    run = reported(
        tmp_path,
        {"event": "start", "pid": 1, "task_id": "t", "retries": 0},
        {"event": "start", "pid": 2, "task_id": "t", "retries": 1},
        {"event": "end", "pid": 2, "task_id": "t", "state": "SUCCESS", "retries": 1},
        {"event": "end", "pid": 1, "task_id": "t", "state": "RETRY", "retries": 0},
    )
    assert run.retries_owed() == []
