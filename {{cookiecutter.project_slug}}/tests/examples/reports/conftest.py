import pytest

from tests.examples.reports.sales_api import PAGES, FakeSalesAPI
from tests.support.http_server import LoopbackHTTPServer


@pytest.fixture
def sales_api(settings):
    server = LoopbackHTTPServer().start()
    settings.REPORTS_API_URL = f"{server.url}api/"
    api = FakeSalesAPI(server)
    api.serve(PAGES)
    yield api
    server.stop()
