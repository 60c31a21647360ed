"""Fixtures of the reliability suite: a Redis of its own per scenario, the effect ledger, real processes."""

import pytest

from tests.reliability import ledger as effect_ledger
from tests.reliability.broker import Broker
from tests.reliability.deployment import Deployment
from tests.reliability.ledger import Figures
from tests.support.database import database_url

FIGURES = pytest.StashKey[list[Figures]]()
FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    figures = config.stash.get(FIGURES, [])
    if figures:
        terminalreporter.section("reliability figures")
        for line in figures:
            terminalreporter.line(line.line())


@pytest.fixture
def broker():
    {%- if cookiecutter.broker == "rabbitmq" %}
    """A RabbitMQ virtual host and a Redis for this scenario alone, its queues empty (a scenario that restarts RabbitMQ
    overrides this fixture with a node of its own: tests/reliability/test_streams.py)."""
    broker = Broker(shared=True)
    {%- else %}
    """A redis-server for this scenario alone: it may be restarted, and its queues start empty."""
    broker = Broker()
    {%- endif %}
    yield broker
    broker.stop()


@pytest.fixture
def ledger(transactional_db):
    """The run and effect tables; transactional, so the workers' connections see what the test commits."""
    effect_ledger.create_tables()
    yield effect_ledger
    effect_ledger.drop_tables()


@pytest.fixture
def deployment(request, broker, ledger, tmp_path):
    deployment = Deployment(broker.redis_url, database_url(), tmp_path, extra_env=broker.env)
    yield deployment
    deployment.kill_all()
    if request.node.stash.get(FAILED, False):
        print(deployment.logs())
    deployment.remove_logs()


@pytest.fixture
def report(request):
    """report(figures): print the scenario's figure line and add it to the summary at the end of the run."""

    def _report(figures: Figures) -> Figures:
        print(figures.line())
        request.config.stash.setdefault(FIGURES, []).append(figures)
        return figures

    return _report
