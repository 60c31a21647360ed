"""A test's own broker (the ``own_broker`` fixture, tests/conftest.py) lasts as long as the test that made it."""

import redis

from tests.support.own_broker import OwnBroker

DATABASE = 7  # a Redis database no other test's own broker uses


def test_a_tests_own_broker_is_closed_when_the_test_ends(request{% if cookiecutter.broker == "rabbitmq" %}, rabbitmq_node{% endif %}):
    {% if cookiecutter.broker == "rabbitmq" -%}
    # Its virtual host holds the project's quorum queues and the delay queues a worker declares, 32, which the node
    # refreshes every 0.1 s (tools/rabbitmq_server.py): kept to the session's end, the virtual hosts of 18 tests
    # loaded the session's node. A finalizer added before the fixture is requested runs after the fixture's teardown.
    {%- else -%}
    # Its Redis database holds what the test's workers left (task metrics, counts); the next test to use the same
    # number starts from it empty. A finalizer added before the fixture is requested runs after its teardown.
    {%- endif %}
    made: list[OwnBroker] = []

    def closed() -> None:
        broker = made[0]
        problems = []
        {%- if cookiecutter.broker == "rabbitmq" %}
        if broker.name in rabbitmq_node.ctl_run("list_vhosts", "--quiet", "--no-table-headers").split():
            problems.append(f"its virtual host {broker.name} outlived the test that made it")
        {%- endif %}
        client = redis.Redis.from_url(broker.redis_url)
        try:
            if client.dbsize():
                problems.append(f"its Redis database {DATABASE} still holds {client.dbsize()} keys after the test")
        finally:
            client.close()
        assert not problems, "; ".join(problems)

    request.addfinalizer(closed)
    broker = request.getfixturevalue("own_broker")(DATABASE)
    made.append(broker)
    broker.client.set("left-by-the-test", 1)
    {%- if cookiecutter.broker == "rabbitmq" %}
    assert broker.name in rabbitmq_node.ctl_run("list_vhosts", "--quiet", "--no-table-headers").split()
    {%- endif %}
