"""A broadcast command that holds a worker's event loop, for the liveness tests (--include this module).

Control commands run in the consumer's event loop, so this one stops it as a call that never returns
would: no timer fires, no message is consumed, the heartbeat file goes stale.
"""

import time

from celery.worker.control import control_command


@control_command(args=[("seconds", float)], signature="<seconds>")
def hang_event_loop(state, seconds: float = 600.0) -> dict:
    time.sleep(seconds)
    return {"ok": "the loop ran again"}
