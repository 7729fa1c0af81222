"""A webhook receiver on 127.0.0.1 (a real socket, real HTTP) that records every POST.

with WebhookReceiver() as receiver:
    receiver.script(500, 500)          # the next two requests get these statuses, then 200
    ...
    receiver.wait_for(1)               # at least one request arrived
    receiver.requests[0].body, receiver.requests[0].headers["X-PromptLooper-Signature"]
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: deque[int] = deque()
        self.delay = 0.0  # seconds before answering (to make a client time out)
        self.endless_body = False  # answer with a body that never ends, a byte a second
        self.endless_headers = False  # answer with headers that never end, a byte a second
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.statuses.popleft() if receiver.statuses else 200
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body, status))
                time.sleep(receiver.delay)
                if receiver.endless_headers:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    while receiver.endless_headers:
                        try:
                            self.wfile.write(b"x")
                            self.wfile.flush()
                        except OSError:  # the client hung up
                            return
                        time.sleep(1)
                    return
                self.send_response(status)
                self.send_header("Content-Length", str(10**12) if receiver.endless_body else "0")
                self.end_headers()
                while receiver.endless_body:
                    try:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                    except OSError:  # the client hung up
                        return
                    time.sleep(1)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def script(self, *statuses: int) -> None:
        self.statuses.extend(statuses)

    def wait_for(self, n: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.requests)} webhook requests arrived, expected {n}")
            time.sleep(0.02)
        return self.requests

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
