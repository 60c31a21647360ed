"""The test settings with the broker behind Redis Sentinel: for the workers of test_sentinel.py only.

The cache and everything else keep REDIS_URL (a plain Redis); only the broker goes through the
sentinels, whose URL and primary's name test_sentinel.py passes in the environment.
"""

import os

from config.settings.test import *  # noqa: F403
from config.settings.test import CELERY_BROKER_TRANSPORT_OPTIONS

# sentinel://127.0.0.1:<port>/0: kombu asks the sentinel there which server is the primary.
CELERY_BROKER_URL = os.environ["SENTINEL_BROKER_URL"]
# The name the sentinels monitor the primary under (kombu's Sentinel transport requires it).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "master_name": os.environ["SENTINEL_MASTER_NAME"],
}
