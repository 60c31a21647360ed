"""Say at start which upstream patches protect this process, and say it loudly when one is off.

{% if cookiecutter.broker == "rabbitmq" -%}
A worker logs each queue it consumes with the arguments it was declared with (RabbitMQ's transport is not patched);
beat logs that its scheduler holds the beat lock and keeps a heartbeat. A patch that cannot apply is a WARNING,
never a silent fallback to the upstream behaviour.
{%- else -%}
A worker logs one line per queue it consumes; beat logs that its scheduler holds the beat lock
and keeps a heartbeat. A patch that cannot apply (see patches/kombu.py for when) is a WARNING,
never a silent fallback to the upstream behaviour.
{%- endif %}
"""

import logging

from celery.signals import beat_init, worker_ready

from {{ cookiecutter.project_slug }}.taskqueue.patches import untested_versions

logger = logging.getLogger("{{ cookiecutter.project_slug }}.taskqueue.patches")


def warn_about_untested_versions() -> None:
    for package, (installed, tested) in sorted(untested_versions().items()):
        logger.warning(
            "%s %s is installed, but the project's patches of it were tested with %s.x only: "
            "run the test suite before deploying, and see taskqueue/patches/ for what each patch changes.",
            package,
            installed,
            tested,
        )


@worker_ready.connect
def report_worker_protections(sender=None, **kwargs):
    """``sender`` is the worker's consumer; its task consumer's channel is the broker transport's."""
    warn_about_untested_versions()
{%- if cookiecutter.broker == "rabbitmq" %}
    # RabbitMQ's transport is kombu's own (nothing to patch): say what each consumed queue was declared with.
    for queue in getattr(getattr(sender, "task_consumer", None), "queues", None) or []:
        logger.info("Queue %s: %s", queue.name, queue.queue_arguments or "no arguments (not a quorum queue)")
{%- else %}
    task_consumer = getattr(sender, "task_consumer", None)
    channel = getattr(task_consumer, "channel", None)
    describe = getattr(channel, "describe_protections", None)
    if describe is None:
        logger.warning(
            "This worker's broker transport is %s, not the project's patched Redis transport: "
            "none of its protections apply (patches/kombu.py).",
            type(channel).__module__ if channel is not None else "unknown",
        )
        return
    for line in describe():
        logger.log(logging.INFO if line.active else logging.WARNING, "%s", line.text)
{%- endif %}
    backend = sender.app.backend
    logger.info("Result backend: %s.%s", type(backend).__module__, type(backend).__name__)


@beat_init.connect
def report_beat_protections(sender=None, **kwargs):
    warn_about_untested_versions()
    scheduler = getattr(getattr(sender, "scheduler", None), "describe_protections", None)
    if scheduler is None:
        logger.warning("Beat does not run the project's patched scheduler: no beat lock, no heartbeat.")
        return
    logger.info("%s", scheduler())
