"""`python manage.py celery_bench`: how fast are this project's workers, and what do its safe settings cost?

The benchmark itself lives in tools/bench/, a development tool the production image leaves out.
"""

import json
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
{%- if cookiecutter.broker == "rabbitmq" %}
from kombu.exceptions import OperationalError
{%- endif %}

from config.celery_app import app as celery_app

try:
    from tools.bench.errors import BenchmarkError
{%- if cookiecutter.broker == "redis" %}
    from tools.bench.herd import CONSUMERS, QUICK_CONSUMERS, herd_table, run_herd
{%- endif %}
    from tools.bench.machine import describe_machine
    from tools.bench.report import markdown_table, ratios
    from tools.bench.reporting import redis_client
    from tools.bench.runner import run_benchmark, run_metrics_comparison{% if cookiecutter.broker == "rabbitmq" %}, use_broker{% endif %}
{%- if cookiecutter.broker == "rabbitmq" %}
    from tools.bench.scratch_rabbitmq import claim_queues, server_version
{%- endif %}
    from tools.bench.scratch_redis import DEFAULT_DATABASE, claim, with_database
    from tools.bench.workloads import FULL, QUICK
{%- if cookiecutter.broker == "rabbitmq" %}
    from tools.rabbitmq_server import RabbitMQServer
{%- endif %}
    from tools.redis_server import RedisServer
except ImportError:  # the production image leaves tools/ out (.dockerignore)
    TOOLS_INSTALLED = False
    DEFAULT_DATABASE = 15
else:
    TOOLS_INSTALLED = True


class Command(BaseCommand):
    help = (
{%- if cookiecutter.broker == "rabbitmq" %}
        "Start the Procfile's workers against RabbitMQ's task queues and a scratch Redis database, run five workloads "
{%- else %}
        "Start the Procfile's workers against a scratch Redis database, run five workloads "
{%- endif %}
        "(no-op throughput, I/O sleeps, CPU tasks, enqueue latency, end-to-end latency) and print the figures. "
        "docs/performance.md quotes them."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--compare-defaults",
            action="store_true",
            help="Also run with Celery's default delivery settings (early ack, prefetch 4) and print the ratios.",
        )
        parser.add_argument(
            "--compare-metrics",
            action="store_true",
            help="Only workload (a), no-op throughput, with the task metrics on and off (TASK_METRICS): both figures "
            "and their ratio.",
        )
        parser.add_argument(
            "--herd",
            action="store_true",
            help="Only several workers on one queue (1, 4 and 8, prefork -c 1): Redis commands per task and "
            "throughput with the project's broker transport and with kombu's own."
{%- if cookiecutter.broker == "rabbitmq" %}
            " Redis brokers only: refused here.",
{%- else %},
{%- endif %}
        )
        parser.add_argument("--quick", action="store_true", help="A few tasks per workload: checks, not figures.")
        parser.add_argument("--json", action="store_true", help="Print the figures as JSON instead of a table.")
        parser.add_argument(
            "--rounds",
            type=int,
            help="Runs of each configuration, alternated; figures are medians (default 3, 1 with --quick).",
        )
        parser.add_argument(
            "--redis-db",
            type=int,
            default=DEFAULT_DATABASE,
            help=f"Database number on REDIS_URL's server to run in (default {DEFAULT_DATABASE}); it must be empty.",
        )
{%- if cookiecutter.broker == "rabbitmq" %}
        parser.add_argument(
            "--yes",
            action="store_true",
            help="Flush the --redis-db database even if it holds keys, and purge the task queues holding messages.",
        )
{%- else %}
        parser.add_argument("--yes", action="store_true", help="Flush the --redis-db database even if it holds keys.")
{%- endif %}
        parser.add_argument(
            "--start-redis",
            action="store_true",
            help="Start a redis-server of its own (AOF on, as in the compose files) instead of using REDIS_URL.",
        )
{%- if cookiecutter.broker == "rabbitmq" %}
        parser.add_argument(
            "--start-rabbitmq",
            action="store_true",
            help="Start a RabbitMQ node of its own instead of using CELERY_BROKER_URL (and a redis-server, as "
            "--start-redis does).",
        )
{%- endif %}

    last_milestone: tuple[str, bool] | None = None

    def handle(self, *args, **options):
        if not TOOLS_INSTALLED:
            raise CommandError(
                "The benchmark is a development tool in tools/bench/, which this installation does not have "
                "(the production image leaves it out): run it from a checkout of the project."
            )
        rounds = options["rounds"] if options["rounds"] is not None else (1 if options["quick"] else 3)
        if rounds < 1:
            raise CommandError("--rounds must be 1 or more.")
{%- if cookiecutter.broker == "rabbitmq" %}
        if options["herd"]:
            raise CommandError(
                "--herd counts the Redis commands per task of the project's Redis broker transport against kombu's "
                "own (INFO commandstats): this project's broker is RabbitMQ, which runs neither. The five workloads "
                "run here; the herd figures are in docs/performance.md of a project generated with broker=redis."
            )
        node = None
        try:
            node = RabbitMQServer().start() if options["start_rabbitmq"] else None
            server = RedisServer().start() if options["start_redis"] or options["start_rabbitmq"] else None
        except RuntimeError as error:  # no rabbitmq-server or redis-server installed, or it did not start
            if node is not None:
                node.stop(remove_data=True)
            raise CommandError(str(error)) from error
{%- else %}
        try:
            server = RedisServer().start() if options["start_redis"] else None
        except RuntimeError as error:  # no redis-server installed, or it did not start
            raise CommandError(str(error)) from error
{%- endif %}
        try:
            base_url = server.url if server else settings.REDIS_URL
            redis_url = with_database(base_url, 0 if server else options["redis_db"])
            client = redis_client(redis_url)
            claim(client, flush=options["yes"])
{%- if cookiecutter.broker == "rabbitmq" %}
            broker_url = node.url if node else settings.CELERY_BROKER_URL
            use_broker(celery_app, broker_url)
            claim_queues(celery_app, flush=options["yes"])
            result: dict[str, Any] = {
                "machine": {**describe_machine(client), "rabbitmq_server": server_version(celery_app)}
            }
{%- else %}
            result: dict[str, Any] = {"machine": describe_machine(client)}
            if options["herd"]:
                result["herd"] = run_herd(
                    celery_app,
                    redis_url,
                    settings.SETTINGS_MODULE,
                    self.show_progress,
                    consumers=QUICK_CONSUMERS if options["quick"] else CONSUMERS,
                    tasks_per_run=100 if options["quick"] else 1000,
                    rounds=rounds,
                )
                self.stdout.write(json.dumps(result, indent=2) if options["json"] else herd_table(result["herd"]))
                return
{%- endif %}
            if options["compare_metrics"]:
                result["metrics"] = run_metrics_comparison(
                    celery_app,
                    redis_url,
                    settings.SETTINGS_MODULE,
                    QUICK if options["quick"] else FULL,
                    self.show_progress,
                    rounds=rounds,
{%- if cookiecutter.broker == "rabbitmq" %}
                    broker_url=broker_url,
{%- endif %}
                )
                self.stdout.write(json.dumps(result, indent=2) if options["json"] else metrics_summary(result))
                return
            result["runs"] = run_benchmark(
                celery_app,
                redis_url,
                settings.SETTINGS_MODULE,
                QUICK if options["quick"] else FULL,
                self.show_progress,
                compare_defaults=options["compare_defaults"],
                rounds=rounds,
{%- if cookiecutter.broker == "rabbitmq" %}
                broker_url=broker_url,
{%- endif %}
            )
        except BenchmarkError as error:
            raise CommandError(str(error)) from error
        except redis.ConnectionError as error:
            raise CommandError(f"Cannot reach Redis ({error}): start it, or pass --start-redis.") from error
{%- if cookiecutter.broker == "rabbitmq" %}
        except (OperationalError, ConnectionError) as error:
            raise CommandError(
                f"Cannot reach RabbitMQ ({error}): start it (make rabbitmq), or pass --start-rabbitmq."
            ) from error
{%- endif %}
        finally:
            if server is not None:
                server.stop(remove_data=True)
{%- if cookiecutter.broker == "rabbitmq" %}
            if node is not None:
                node.stop(remove_data=True)
{%- endif %}
        if options["compare_defaults"]:
            result["ratios"] = ratios(result["runs"])
        self.stdout.write(json.dumps(result, indent=2) if options["json"] else markdown_table(result))

    def show_progress(self, label: str, done: int, total: int) -> None:
        """Rewrite one line per workload in place on a terminal; elsewhere, print when it starts and ends."""
        milestone = (label, done >= total)
        if self.stderr.isatty():
            ending = "\n" if done >= total else ""
            self.stderr.write(f"\r{label}: {done}/{total}", ending=ending)
        elif milestone != self.last_milestone:
            self.stderr.write(f"{label}: {done}/{total}")
        self.last_milestone = milestone


def metrics_summary(result: dict) -> str:
    figures = result["metrics"]
    throughput = figures["tasks_per_second"]
    return (
        f"Workload {figures['workload']}, {figures['tasks']} tasks, median of {figures['rounds']} round(s):\n"
        f"  task metrics on:  {throughput['metrics_on']:.0f} tasks/s\n"
        f"  task metrics off: {throughput['metrics_off']:.0f} tasks/s\n"
        f"  on/off: {figures['ratio_on_to_off']:.3f} (cost {figures['cost_percent']:.1f} %)\n"
    )
