"""A real local HTTP receiver for webhook tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    """A local HTTP server taking webhooks: `mode` ok (204), fail (500) or hang (answers after
    `hang_s`); every request it took is in `received` as (headers, body)."""

    mode: str = "ok"
    hang_s: float = 2.0
    set_cookie: str | None = None  # a `Set-Cookie` header for every answer
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@contextmanager
def receiving() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            found.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            if found.mode == "hang":
                time.sleep(found.hang_s)
            self.send_response(500 if found.mode == "fail" else 204)
            if found.set_cookie:
                self.send_header("Set-Cookie", found.set_cookie)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    found.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        found.server.shutdown()
        found.server.server_close()
