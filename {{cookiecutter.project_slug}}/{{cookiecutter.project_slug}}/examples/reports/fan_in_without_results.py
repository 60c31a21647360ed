"""Fan-out / fan-in of a report's pages without a result backend, so without a chord.

Each page task parks its rows in the cache and adds its page number to a Redis set, in
one transaction with reading the set's size. The task whose page completes the set
sends the build with every page's rows. A page delivered twice adds nothing to the
set; if it was the last page it sends the build again, which is harmless: the build is
idempotent.
"""

from datetime import date

from django.core.cache import cache
from django_redis import get_redis_connection

from {{ cookiecutter.project_slug }}.taskqueue.sending import send_task_by_name

# Nothing reads fetch_page's return value here: results stay ignored.
KEEPS_PAGE_RESULTS = False
# Longer than a run may take (services.RUNNING_TTL): the parked pages must outlive the run.
FAN_IN_TTL = 2 * 60 * 60


def _key(day: str, part: str) -> str:
    return f"reports:fan-in:{day}:{part}"


def start(day: date, page_count: int) -> None:
    key = day.isoformat()
    redis = get_redis_connection("default")
    redis.delete(cache.make_key(_key(key, "done")))
    cache.set(_key(key, "pages"), page_count, timeout=FAN_IN_TTL)
    if page_count == 0:
        send_task_by_name("reports.build_report", args=[[], key])
        return
    for page in range(1, page_count + 1):
        send_task_by_name("reports.fetch_page", args=[key, page])


def page_fetched(day: str, page: int, rows: list[dict]) -> list[dict] | None:
    """Park the rows in the cache; the last page to arrive sends the build. Nothing for fetch_page to return."""
    cache.set(_key(day, f"page:{page}"), rows, timeout=FAN_IN_TTL)
    done_key = cache.make_key(_key(day, "done"))
    with get_redis_connection("default").pipeline(transaction=True) as pipe:
        pipe.sadd(done_key, page).scard(done_key).expire(done_key, FAN_IN_TTL)
        _, done, _ = pipe.execute()
    page_count = cache.get(_key(day, "pages"))
    if done == page_count:
        keys = [_key(day, f"page:{number}") for number in range(1, page_count + 1)]
        parked = cache.get_many(keys)
        send_task_by_name("reports.build_report", args=[[parked[key] for key in keys], day])
    return None
