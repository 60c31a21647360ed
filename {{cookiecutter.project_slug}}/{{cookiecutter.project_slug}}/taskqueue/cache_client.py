"""django-redis' client, with a ``cache.clear()`` that deletes this project's cache keys and nothing else.

django-redis clears with FLUSHDB: everything in the database goes, whoever wrote it, and a managed Redis's
ACL user (``-@dangerous``) may not run FLUSHDB at all. Here clear() scans for the keys under the cache's
KEY_PREFIX and unlinks them (SCAN and UNLINK are allowed to such a user), so even a cache pointed at the
broker's database by mistake could not delete a queued message. Locks (``lock:*``, the beat lock) are cache
keys too: clear() releases them, as FLUSHDB did.
"""

from typing import cast

from django.core.cache import caches
from django_redis.cache import RedisCache
from django_redis.client import DefaultClient
from django_redis.client.default import glob_escape
from django_redis.exceptions import ConnectionInterrupted
from redis import Redis
from redis.exceptions import ConnectionError, TimeoutError

# Keys unlinked per round trip.
BATCH = 500


class PrefixScopedClient(DefaultClient):
    def clear(self, client: Redis | None = None) -> None:
        if client is None:
            client = self.get_client(write=True)
        pattern = f"{glob_escape(self._backend.key_prefix)}:*"
        try:
            batch = []
            for key in client.scan_iter(match=pattern, count=BATCH):
                batch.append(key)
                if len(batch) >= BATCH:
                    client.unlink(*batch)
                    batch = []
            if batch:
                client.unlink(*batch)
        except (ConnectionError, TimeoutError) as exc:
            raise ConnectionInterrupted(connection=client) from exc


def redis_cache() -> RedisCache:
    """The default cache with django-redis' API (``lock()``...): ``django.core.cache.cache`` is typed as Django's
    BaseCache, which has none of it."""
    return cast(RedisCache, caches["default"])
