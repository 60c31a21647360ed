"""Turn the runs' figures into ratios and a Markdown table (the table in docs/performance.md)."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    workload: str
    measure: str
    path: tuple[str, ...]  # where the row's headline figure is in a run's "workloads"
    higher_is_better: bool


ROWS = (
    Row("a", "tasks/s", ("a", "tasks_per_second"), True),
    Row("b", "wall s", ("b", "seconds"), False),
    Row("c", "tasks/s", ("c", "tasks_per_second"), True),
    Row("d", "`delay()` p50 / p95 / p99 ms", ("d", "delay", "p95_ms"), False),
    Row("d", "`on_commit` p50 / p95 / p99 ms", ("d", "on_commit", "p95_ms"), False),
    Row("e", "p50 / p95 / p99 ms", ("e", "p95_ms"), False),
)


def figure(workloads: dict, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in the report: a figure, or the dict of figures above it."""
    value: Any = workloads
    for key in path:
        value = value[key]
    return value


def ratio_key(row: Row) -> str:
    return ".".join(row.path)


def ratios(runs: dict[str, dict]) -> dict[str, float]:
    """project / defaults for each row's headline figure (> 1 is better for tasks/s, worse for times)."""
    project, defaults = runs["project"]["workloads"], runs["defaults"]["workloads"]
    return {ratio_key(row): figure(project, row.path) / figure(defaults, row.path) for row in ROWS}


def describe_workload(row: Row, workloads: dict) -> str:
    figures = workloads[row.workload]
    if row.workload == "a":
        return f"(a) {figures['tasks']} no-op tasks on `default`"
    if row.workload == "b":
        return (
            f"(b) {figures['tasks']} x {figures['task_seconds'] * 1000:.0f} ms sleeps on `io` "
            f"(ideal {figures['ideal_seconds']:.2f} s at concurrency {figures['concurrency']})"
        )
    if row.workload == "c":
        return (
            f"(c) {figures['tasks']} x {figures['task_cpu_seconds'] * 1000:.0f} ms CPU tasks on `cpu` "
            f"({figures['concurrency']} processes, {figures['cores']} cores)"
        )
    if row.workload == "d":
        return f"(d) enqueue from Django, {figures['samples']} sends"
    return f"(e) `delay()` to task start, {figures['samples']} tasks"


def format_cell(row: Row, workloads: dict) -> str:
    figures = workloads[row.workload]
    if row.workload == "b":
        return f"{figures['seconds']:.2f}"
    if row.workload == "c":
        return f"{figures['tasks_per_second']:.1f} ({figures['cores_used']:.2f} cores)"
    if row.workload in ("d", "e"):
        latencies = figure(workloads, row.path[:-1])
        return " / ".join(f"{latencies[key]:.2f}" for key in ("p50_ms", "p95_ms", "p99_ms"))
    return f"{figures['tasks_per_second']:.0f}"


def describe_workers(run: dict) -> str:
    order = {queue: index for index, queue in enumerate(("default", "io", "cpu"))}
    return ", ".join(
        f"`{queue}`: {worker['process']} {worker['pool']} x{worker['concurrency']} prefetch {worker['prefetch_count']}"
        for queue, worker in sorted(run["workers"].items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
    )


def markdown_table(result: dict) -> str:
    runs = result["runs"]
    project = runs["project"]["workloads"]
    compared = "defaults" in runs
    header = ["workload", "measure", "project settings"]
    if compared:
        header += ["Celery defaults", "project ÷ defaults"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in ROWS:
        cells = [describe_workload(row, project), row.measure, format_cell(row, project)]
        if compared:
            defaults = runs["defaults"]["workloads"]
            cells += [format_cell(row, defaults), f"{result['ratios'][ratio_key(row)]:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    machine = result["machine"]
    # On RabbitMQ, Redis holds the task state and the benchmark's counters; RabbitMQ, the queues.
    servers = f"Redis {machine['redis_server']}" + (
        f", RabbitMQ {machine['rabbitmq_server']}" if "rabbitmq_server" in machine else ""
    )
    lines += [
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['os']}; Python {machine['python']}, "
        f"Celery {machine['celery']}, kombu {machine['kombu']}, {servers}.",
    ]
    lines += [f"- Workers ({name}): {describe_workers(run)}." for name, run in runs.items()]
    summary = f"- Figures are medians of {runs['project']['rounds']} round(s)"
    if compared:
        summary += ", the two configurations alternated; ratios compare each row's headline (tasks/s, wall s, p95)"
    lines.append(f"{summary}.")
    return "\n".join(lines)
