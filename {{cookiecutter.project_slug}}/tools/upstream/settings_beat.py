"""django-celery-beat's test settings (t/proj/settings.py, SQLite as upstream), plus what the project's
scheduler reads: its Redis cache (the beat lock and the tick record) on a real redis-server the check
starts (UPSTREAM_REDIS_URL), the lock timeout, the heartbeat file and the watchdog's bound.
"""

import os

from t.proj.settings import *  # noqa: F403

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ["UPSTREAM_REDIS_URL"],
    }
}
BEAT_LOCK_TIMEOUT = 30
# The scheduler's watchdog (taskqueue/liveness.py) would end the test process: off, as in the project's test settings.
BEAT_STUCK_AFTER = 0
BEAT_HEARTBEAT_FILE = os.environ["UPSTREAM_HEARTBEAT_FILE"]
