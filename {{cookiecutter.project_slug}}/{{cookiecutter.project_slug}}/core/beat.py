"""Beat's scheduler: django-celery-beat's DatabaseScheduler that leaves a heartbeat for health checks (P29).

compose/healthcheck-beat fails when the heartbeat file is older than a minute, so a
beat that hangs (stuck on the database or the broker) is restarted, not trusted.
"""

from pathlib import Path

from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler


class HeartbeatDatabaseScheduler(DatabaseScheduler):
    """Touch ``settings.BEAT_HEARTBEAT_FILE`` after every tick; remove it on a clean shutdown."""

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        # Only after a tick that worked: a tick that raises leaves the heartbeat to go stale.
        Path(settings.BEAT_HEARTBEAT_FILE).touch()
        return interval

    def close(self):
        super().close()
        # A stopped beat is unhealthy at once, not a minute later.
        Path(settings.BEAT_HEARTBEAT_FILE).unlink(missing_ok=True)
