"""A real HTTP receiver for webhook tests: a threaded http.server on 127.0.0.1 that records
every POST (headers and raw body) and can answer the first ones with an error, or hold them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    fail_first: int = 0  # answer this many requests with 503 first
    hold: threading.Event | None = None  # when set up, requests wait for it (bounded)
    held: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, event: str | None = None) -> list[Any]:
        with self.lock:
            found = list(self.received)
        return [r.json for r in found if event is None or r.headers.get("x-schemabot-event") == event]


@contextmanager
def receiver(fail_first: int = 0, hold: threading.Event | None = None) -> Iterator[Receiver]:
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            rec = box["r"]
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if rec.hold is not None:
                with rec.lock:
                    rec.held += 1
                rec.hold.wait(60)
            with rec.lock:
                failing = rec.fail_first > 0
                if failing:
                    rec.fail_first -= 1
                else:
                    rec.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                    )
            self.send_response(503 if failing else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    box["r"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook", fail_first=fail_first, hold=hold)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box["r"]
    finally:
        if hold is not None:
            hold.set()
        server.shutdown()
        server.server_close()
