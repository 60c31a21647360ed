"""The external sales API the report example reads, served for real on loopback, and the figures it serves."""

from datetime import date

from tests.support.http_server import LoopbackHTTPServer, Reply

DAY = date(2024, 5, 1)
PAGES = [
    [{"region": "EU", "amount": "10.50"}, {"region": "US", "amount": "4.00"}],
    [{"region": "EU", "amount": "1.25"}],
    [{"region": "APAC", "amount": "7.00"}],
]
CSV = "region,orders,total\r\nAPAC,1,7.00\r\nEU,2,11.75\r\nUS,1,4.00\r\n"


class FakeSalesAPI:
    """The external sales API, served for real on loopback; tests make it fail on command."""

    def __init__(self, server: LoopbackHTTPServer):
        self.server = server

    @staticmethod
    def index_path(day: date = DAY) -> str:
        return f"/api/sales/{day.isoformat()}/"

    @staticmethod
    def page_path(page: int, day: date = DAY) -> str:
        return f"/api/sales/{day.isoformat()}/pages/{page}/"

    @staticmethod
    def export_path(day: date = DAY) -> str:
        return f"/api/sales/{day.isoformat()}/export.csv"

    def serve(self, pages: list[list[dict]], day: date = DAY) -> None:
        self.server.route(self.index_path(day), Reply(json={"pages": len(pages)}))
        for number, items in enumerate(pages, start=1):
            self.server.route(self.page_path(number, day), Reply(json={"items": items}))

    def requests_to(self, path: str):
        return self.server.requests_to(path)
