"""The scenarios' Broker helper: a message on its way to a worker still counts as held.

A scenario (and the delivery-contract harness) waits for its queue to settle before it counts effects. A message
that the project's transport has moved off the queue onto a worker's claim list, and not yet recorded as unacked,
is in neither the queue nor the unacked hash: a check of those two alone took a redelivery under way for a task
lost (the contract harness's redis-restart fault, in a fresh-clone CI run).
"""

from kombu import Queue

from config.celery_app import app as celery_app
from tests.reliability.broker import Broker


def test_a_message_counts_as_held_from_its_queue_through_its_claim_to_its_ack():
    broker = Broker()
    queue = Queue("held-test", routing_key="held-test")
    try:
        with celery_app.connection_for_write(broker.url) as connection:
            connection.Producer().publish({"held": True}, routing_key=queue.routing_key, declare=[queue])
            channel = connection.default_channel
            assert (broker.held(queue.name), broker.settled(queue.name)) == (1, False)

            # What a worker's wait (BLMOVE) does: onto its claim list, registered before it waits.
            channel._heartbeat(channel.claim_list(queue.name))
            broker.client.lmove(queue.name, channel.claim_list(queue.name), "RIGHT", "LEFT")
            assert (broker.queued(queue.name), broker.unacked()) == (0, 0)
            assert (broker.held(queue.name), broker.settled(queue.name)) == (1, False)

            _, tag = channel.claim(queue.name)  # recorded as unacked
            assert (broker.unacked(), broker.held(queue.name)) == (1, 1)

            channel.qos.forget(tag)  # what an ack does to Redis
            assert (broker.held(queue.name), broker.settled(queue.name)) == (0, True)
    finally:
        broker.stop()
