"""A real HTTP server on a free loopback port whose answers each test scripts.

Stands in for an external API: the code under test makes real requests over a real
socket (timeouts, status codes, Retry-After, slow bodies all behave as in production),
and the test decides, per path, what the next answers are::

    server.route("/api/items/", Reply(json={"items": []}))        # the usual answer
    server.script("/api/items/", Reply(500), Reply(500))          # the next two requests fail
    server.script("/api/slow/", Reply(delay=5))                   # the next one hangs for 5 s
    assert len(server.requests_to("/api/items/")) == 3
"""

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    status: int = 200
    json: object = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering: more than the client's timeout makes a hang
    chunks: int = 1  # the body is sent in this many pieces...
    chunk_interval: float = 0.0  # ...this many seconds apart: a slow download

    def payload(self) -> bytes:
        return json.dumps(self.json).encode() if self.json is not None else self.body


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    at: float  # time.monotonic() when it arrived


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Do not wait for handlers still sleeping through a scripted hang when the test ends.
    block_on_close = False


class LoopbackHTTPServer:
    def __init__(self):
        self._lock = threading.Lock()
        self._routes: dict[str, Reply] = {}
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._requests: list[RecordedRequest] = []
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="loopback-http", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> "LoopbackHTTPServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def route(self, path: str, reply: Reply) -> None:
        """Answer ``path`` with ``reply`` whenever no scripted answer is pending (unknown paths get 404)."""
        with self._lock:
            self._routes[path] = reply

    def script(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``path`` with ``replies``, in order, then go back to the route."""
        with self._lock:
            self._scripts[path].extend(replies)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self._requests if request.path == path]

    def _next_reply(self, method: str, target: str) -> Reply:
        parts = urlsplit(target)
        with self._lock:
            self._requests.append(RecordedRequest(method, parts.path, parts.query, time.monotonic()))
            if self._scripts[parts.path]:
                return self._scripts[parts.path].popleft()
            return self._routes.get(parts.path, Reply(404, json={"detail": "not found"}))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                reply = server._next_reply("GET", self.path)
                time.sleep(reply.delay)
                payload = reply.payload()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json" if reply.json is not None else "text/plain")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    size = -(-len(payload) // reply.chunks)  # ceiling division
                    for start in range(0, len(payload), size or 1):
                        self.wfile.write(payload[start : start + size])
                        self.wfile.flush()
                        time.sleep(reply.chunk_interval)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): what a hang is for

            def log_message(self, format, *args):
                pass  # the test asserts on requests_to(), not on stderr noise

        return Handler
