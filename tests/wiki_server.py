"""A local stand-in for Wikipedia's REST API: a real HTTP server on 127.0.0.1, on a free port,
answering what a test told it to (per page) and remembering what it was asked.

Shared by the Wikipedia tests (tests/test_wikipedia.py, test_fetch_scale.py,
test_wikipedia_dvc.py); the realistic Parsoid pages it serves live in tests/fixtures/wikipedia/."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from src import wikipedia

UA = "MiniLLM-tests/1.0 (https://example.org/minillm; tests@example.org)"

# Realistic Parsoid pages, two per domain, with the name the lead must start with once
# pronunciation and bracketed names are gone: file stem -> (domain, title, lead start).
FIXTURES = Path(__file__).parent / "fixtures" / "wikipedia"
PAGES = {
    "saturn": ("astronomy", "Saturn", "Saturn is"),
    "comet": ("astronomy", "Comet", "A comet is"),
    "heart": ("anatomy", "Heart", "The heart is"),
    "femur": ("anatomy", "Femur", "The femur, or thigh bone, is"),
    "tiger": ("animals", "Tiger", "The tiger is"),
    "barn_owl": ("animals", "Barn owl", "The barn owl is"),
    "sahara": ("geography", "Sahara", "The Sahara is"),
    "lake_baikal": ("geography", "Lake Baikal", "Lake Baikal is"),
    "methane": ("chemistry", "Methane", "Methane is"),
    "sodium_chloride": ("chemistry", "Sodium chloride", "Sodium chloride, commonly known as salt, is"),
    "tornado": ("weather", "Tornado", "A tornado is"),
    "fog": ("weather", "Fog", "Fog is"),
}


def page(lead: str) -> bytes:
    """A minimal valid article."""
    return f"<html><body><section><p>{lead}</p></section></body></html>".encode()


def rest_path(title: str, endpoint: str = "rest.php") -> str:
    return wikipedia.ENDPOINTS[endpoint].format(title=title.replace(" ", "_"))


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drip: float = 0.0  # > 0: the body goes out 8 bytes at a time, this many seconds apart
    drip_headers: float = 0.0  # > 0: so do the status line and headers
    cut: int | None = None  # send only this many bytes of the body, then close the connection
    content_length: bool = True  # False: no Content-Length; the body ends when the connection closes


class FakeWiki:
    """What the local server answers (per decoded path) and what it was asked."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.routes: dict[str, list[Reply]] = {}
        self.seen: list[tuple[str, str | None]] = []  # (path, User-Agent)
        self.arrived: list[tuple[str, float]] = []  # (path, time.monotonic() when the request came)
        self.sent: list[int] = []  # body bytes written per request, until the client hung up
        self.answered = threading.Event()  # set each time a request's handler is done
        self.in_flight = self.most_in_flight = 0  # requests being answered now, and at most
        self._lock = threading.Lock()

    def add(self, title: str, *replies: Reply, endpoint: str = "rest.php") -> None:
        """Answer the replies in turn; the last one repeats."""
        self.routes[rest_path(title, endpoint)] = list(replies)

    def add_fixtures(self) -> None:
        """Serve every realistic page of tests/fixtures/wikipedia/ under its title."""
        for stem, (_, title, _) in PAGES.items():
            self.add(title, Reply(body=(FIXTURES / f"{stem}.html").read_bytes()))

    def next_reply(self, path: str) -> Reply:
        replies = self.routes.get(path) or [Reply(404, b"not found")]
        return replies.pop(0) if len(replies) > 1 else replies[0]

    def hits(self, title: str) -> int:
        return sum(path == rest_path(title) for path, _ in self.seen)

    def begin(self, path: str, user_agent: str | None) -> Reply:
        with self._lock:
            self.seen.append((path, user_agent))
            self.arrived.append((path, time.monotonic()))
            self.sent.append(0)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            return self.next_reply(path)

    def end(self) -> None:
        with self._lock:
            self.in_flight -= 1
        self.answered.set()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Wikipedia answers
    disable_nagle_algorithm = True  # else each reused connection waits 40 ms for an ACK
    fake: FakeWiki  # set on the subclass that serve() makes

    def do_GET(self) -> None:
        reply = self.fake.begin(unquote(self.path), self.headers.get("User-Agent"))
        try:
            if reply.delay:
                time.sleep(reply.delay)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.content_length:
                self.send_header("Content-Length", str(len(reply.body)))
            if reply.cut is not None or not reply.content_length:
                self.send_header("Connection", "close")  # the body ends where the connection does
            if reply.drip_headers:  # what end_headers would send at once (http.server's buffer)
                self.drip(b"".join(self._headers_buffer) + b"\r\n", reply.drip_headers)
                self._headers_buffer = []
            else:
                self.end_headers()
            self.write_body(reply)
        except OSError:  # the client gave up (timeout tests)
            pass
        finally:
            self.fake.end()

    def write_body(self, reply: Reply) -> None:
        body = reply.body[: reply.cut]
        if reply.drip:
            self.drip(body, reply.drip)
        else:
            self.wfile.write(body)
            self.fake.sent[-1] += len(body)

    def drip(self, data: bytes, pause: float) -> None:
        """Write 8 bytes at a time, `pause` seconds apart (tests with the sleeps fixture record every time.sleep)."""
        for start in range(0, len(data), 8):
            self.wfile.write(data[start : start + 8])
            self.fake.sent[-1] += len(data[start : start + 8])
            time.sleep(pause)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve() -> Iterator[FakeWiki]:
    """Run the server on a thread for the length of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake = FakeWiki(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = type("BoundHandler", (Handler,), {"fake": fake})
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
