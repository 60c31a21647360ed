"""Fan-out / fan-in of a report's pages with a chord (needs the result backend).

The page fetches run in parallel on the io queue; when the last one finishes, the result
backend hands all their results, in page order, to the build on the cpu queue. Only the
page fetches keep their results: the chord needs them, nothing else does.
"""

from datetime import date

from celery import chord

from {{ cookiecutter.project_slug }}.taskqueue.sending import signature_by_name

# fetch_page's return value is what the chord collects.
KEEPS_PAGE_RESULTS = True


def start(day: date, page_count: int) -> None:
    # By name: tasks.py imports this module. Routed by name: fetch -> io, build -> cpu.
    key = day.isoformat()
    if page_count == 0:
        signature_by_name("reports.build_report", args=[[], key]).apply_async()
        return
    fetches = [signature_by_name("reports.fetch_page", args=[key, page]) for page in range(1, page_count + 1)]
    chord(fetches)(signature_by_name("reports.build_report", args=[key]))


def page_fetched(day: str, page: int, rows: list[dict]) -> list[dict]:
    """The chord stores the rows as fetch_page's result and passes them on to the build."""
    return rows
