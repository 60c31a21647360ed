"""The reliability suite: real workers are killed and a real Redis is restarted; no task may be lost or applied twice.

Run it alone with ``pytest -m reliability -s`` to see one figure line per scenario. Effects are
counted in the database, not in Redis, so a broker that loses a message cannot hide the loss.
"""
