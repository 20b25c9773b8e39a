"""A webhook receiver on 127.0.0.1 for the tests: it records every request, and misbehaves on demand.

It runs in the test's process (a thread per connection). The path picks the behaviour:

``/hooks/...``     record, hold the answer ``hold`` seconds, answer ``status`` (500 to the first
                   ``failures`` requests)
``/hang/...``      read the request and never answer (until the receiver closes)
``/trickle/...``   answer 200 and then one byte of body every 0.5 s, for minutes
``/huge/...``      answer 200 with a 300 MB body, as fast as the client reads it
``/status/NNN``    answer NNN

Every request is recorded with when it started and ended, so a test can check that no webhook
was being delivered twice at the same time (:meth:`Receiver.overlaps`).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HUGE = 300 * 1024 * 1024


@dataclass
class Hook:
    """One request the receiver got (``ended`` is 0 until it was answered, or given up on)."""

    at: float
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    ended: float = field(default=0.0)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many senders connect at once: socketserver's 5 would drop SYNs
    daemon_threads = True


class Receiver:
    """A running receiver; ``url`` is its ``/hooks/vtrans`` endpoint, :meth:`url_for` the others."""

    def __init__(self, failures: int = 0, status: int = 204, hold: float = 0.0) -> None:
        self.failures, self.status, self.hold = failures, status, hold
        self._hooks: list[Hook] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                hook = Hook(time.time(), self.command, self.path, headers, body)
                status = receiver._record(hook)
                try:
                    receiver._answer(self, status)
                except OSError:
                    pass  # the sender gave up
                finally:
                    hook.ended = time.time()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="webhook-receiver", daemon=True
        )
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.url = self.url_for("hooks")

    def url_for(self, behaviour: str, name: str = "vtrans") -> str:
        return f"{self.base}/{behaviour}/{name}"

    def _record(self, hook: Hook) -> int:
        with self._lock:
            self._hooks.append(hook)
            plain = [h for h in self._hooks if h.path.startswith("/hooks/")]
            return 500 if hook.path.startswith("/hooks/") and len(plain) <= self.failures else self.status

    def _answer(self, handler: BaseHTTPRequestHandler, status: int) -> None:
        kind = handler.path.split("/")[1]
        if kind == "hang":
            self._closing.wait()
            return
        if kind == "status":
            status = int(handler.path.split("/")[2])
        elif kind in ("trickle", "huge"):
            handler.send_response(200)
            handler.send_header("Content-Length", str(HUGE))
            handler.end_headers()
            chunk = b"x" if kind == "trickle" else b"\0" * 65536
            for _ in range(HUGE // len(chunk)):
                handler.wfile.write(chunk)
                handler.wfile.flush()
                if kind == "trickle" and self._closing.wait(0.5):
                    return
            return
        elif self.hold:
            time.sleep(self.hold)
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    @property
    def hooks(self) -> list[Hook]:
        with self._lock:
            return list(self._hooks)

    def delivered(self) -> dict[str, list[Hook]]:
        """The ``/hooks/`` requests by ``webhook-id``."""
        by_id: dict[str, list[Hook]] = {}
        for hook in self.hooks:
            if hook.path.startswith("/hooks/"):
                by_id.setdefault(hook.headers.get("webhook-id", ""), []).append(hook)
        return by_id

    def overlaps(self) -> list[str]:
        """The webhook ids that were being received twice at the same time."""
        found = []
        for webhook_id, hooks in self.delivered().items():
            spans = sorted((h.at, h.ended or float("inf")) for h in hooks)
            if any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)):
                found.append(webhook_id)
        return found

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
