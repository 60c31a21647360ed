"""What the reliability tasks did, written to the database: every run of a task, and every effect it applied.

Three raw tables, created for one test and dropped after it (they are not the project's models,
so they stay out of its migrations):

- ``reliability_run``: one row per run, written when it starts and stamped when it finishes.
  More runs than messages sent means the broker delivered a message again.
- ``reliability_claim``: one row per idempotency key; the guard that keeps an effect single.
- ``reliability_effect``: one row per effect applied, append-only, so a duplicate shows up as a
  second row for the same key.
- ``reliability_signal``: names the test raised, which a task waits for (a fault is under way: act now).
"""

import os
import time
import uuid
from dataclasses import dataclass

from django.db import connection, transaction

TABLES = {
    "reliability_run": (
        "run_id VARCHAR(32) PRIMARY KEY, task_key VARCHAR(200) NOT NULL, task_id VARCHAR(64) NOT NULL, "
        "pid INTEGER NOT NULL, started_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION"
    ),
    "reliability_claim": "task_key VARCHAR(200) PRIMARY KEY",
    "reliability_effect": "run_id VARCHAR(32) PRIMARY KEY, task_key VARCHAR(200) NOT NULL",
    "reliability_signal": "name VARCHAR(200) PRIMARY KEY",
}


def create_tables() -> None:
    with connection.cursor() as cursor:
        for table, columns in TABLES.items():
            cursor.execute(f"CREATE TABLE {table} ({columns})")


def drop_tables() -> None:
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")


def start_run(key: str, task_id: str) -> str:
    """Record that a run of the task keyed ``key`` started in this process; return the run's id."""
    run_id = uuid.uuid4().hex
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO reliability_run (run_id, task_key, task_id, pid, started_at) VALUES (%s, %s, %s, %s, %s)",
            [run_id, key, task_id, os.getpid(), time.time()],
        )
    return run_id


def apply_effect_once(key: str, run_id: str) -> bool:
    """Apply the effect of ``key`` unless a run already did; the claim and the effect commit together."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("INSERT INTO reliability_claim (task_key) VALUES (%s) ON CONFLICT DO NOTHING", [key])
        if cursor.rowcount == 0:
            return False
        cursor.execute("INSERT INTO reliability_effect (run_id, task_key) VALUES (%s, %s)", [run_id, key])
    return True


def raise_signal(name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO reliability_signal (name) VALUES (%s) ON CONFLICT DO NOTHING", [name])


def wait_for_signal(name: str, timeout: float = 60.0) -> None:
    """In a task: block until the test raises ``name`` (the database answers while Redis is stalled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM reliability_signal WHERE name = %s", [name])
            if cursor.fetchone():
                return
        time.sleep(0.05)
    raise TimeoutError(f"the test did not raise the signal {name!r} within {timeout} s")


def finish_run(run_id: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE reliability_run SET finished_at = %s WHERE run_id = %s", [time.time(), run_id])


@dataclass(frozen=True)
class Run:
    run_id: str
    task_key: str
    task_id: str
    pid: int
    started_at: float
    finished_at: float | None


def runs(key: str | None = None) -> list[Run]:
    """Runs (of one key, or all), oldest first."""
    query = "SELECT run_id, task_key, task_id, pid, started_at, finished_at FROM reliability_run"
    params = []
    if key is not None:
        query += " WHERE task_key = %s"
        params.append(key)
    with connection.cursor() as cursor:
        cursor.execute(query + " ORDER BY started_at", params)
        return [Run(*row) for row in cursor.fetchall()]


def assert_only_killed_runs_repeated(keys: list[str], killed_pids: set[int]) -> None:
    """Every message delivered again was one the killed worker held: the run the kill cut short, or one that had
    finished but whose late ack the kill beat. A message of a live worker delivered again fails here."""
    by_key = {key: runs(key) for key in keys}
    # Each run that a later run of the same key followed: the broker delivered its message again.
    unexplained = [run for key_runs in by_key.values() for run in key_runs[:-1] if run.pid not in killed_pids]
    assert not unexplained, f"delivered again, though no killed process ran them: {unexplained}"
    assert all(len(key_runs) <= 2 for key_runs in by_key.values()), {key: len(r) for key, r in by_key.items()}


def effect_count(key: str | None = None) -> int:
    query, params = "SELECT COUNT(*) FROM reliability_effect", []
    if key is not None:
        query, params = query + " WHERE task_key = %s", [key]
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchone()[0]


def completed(keys: list[str]) -> int:
    """How many of ``keys`` have a run that finished."""
    return len({run.task_key for run in runs() if run.finished_at is not None} & set(keys))


def cut_short() -> tuple[int, int]:
    """Runs that never finished (their process was killed), and how many of them had applied their effect."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*), COUNT(reliability_effect.run_id) FROM reliability_run "
            "LEFT JOIN reliability_effect ON reliability_effect.run_id = reliability_run.run_id "
            "WHERE reliability_run.finished_at IS NULL"
        )
        return tuple(cursor.fetchone())


def effect_keys() -> list[str]:
    """The key of every effect row: a key listed twice was applied twice."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT task_key FROM reliability_effect")
        return [row[0] for row in cursor.fetchall()]


@dataclass(frozen=True)
class Figures:
    """A scenario's outcome: of the tasks sent, how many completed, were lost, or applied their effect twice."""

    scenario: str
    sent: int
    completed: int
    lost: int
    duplicated: int
    executions: int
    notes: str = ""

    def line(self) -> str:
        line = (
            f"RELIABILITY {self.scenario}: sent={self.sent} completed={self.completed} lost={self.lost} "
            f"duplicated={self.duplicated} executions={self.executions}"
        )
        return f"{line} ({self.notes})" if self.notes else line


def figures(scenario: str, sent_keys: list[str], notes: str = "") -> Figures:
    """Count, in the database, what became of the tasks sent with ``sent_keys``."""
    sent = set(sent_keys)
    applied = effect_keys()
    return Figures(
        scenario=scenario,
        sent=len(sent_keys),
        completed=completed(sent_keys),
        lost=len(sent - set(applied)),
        duplicated=len(applied) - len(set(applied)),
        executions=sum(1 for run in runs() if run.task_key in sent),
        notes=notes,
    )
