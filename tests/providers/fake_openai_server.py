"""A tiny OpenAI-compatible HTTP server for tests: scripted answers, recorded requests.

Each test queues replies per path (``/v1/chat/completions``, ``/v1/images/generations``);
a request with nothing queued gets a 500 naming the path, so an unexpected extra request
shows up as a failure. :data:`HANG` makes the handler wait, without answering, until
the server is stopped.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT = "/v1/chat/completions"
IMAGES = "/v1/images/generations"


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any


HANG = object()


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


def chat_reply(content: str | None, *, refusal: str | None = None) -> Reply:
    message = {"role": "assistant", "content": content, "refusal": refusal}
    return Reply(
        200,
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": "fake",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        },
    )


def error_reply(status: int, message: str, code: str | None = None) -> Reply:
    return Reply(status, {"error": {"message": message, "type": "test_error", "code": code}})


@dataclass
class FakeOpenAI:
    """The running server: ``base_url`` for the client, ``script`` and ``requests``."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    release: threading.Event = field(default_factory=threading.Event)
    replies: dict[str, deque[Reply | object]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, path: str, *replies: Reply | object) -> None:
        with self.lock:
            self.replies.setdefault(path, deque()).extend(replies)

    def requests_to(self, path: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def next_reply(self, recorded: Recorded) -> Reply | object:
        with self.lock:
            self.requests.append(recorded)
            queue = self.replies.get(recorded.path)
            if not queue:
                return error_reply(500, f"no scripted reply left for {recorded.path}")
            return queue.popleft()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def start() -> FakeOpenAI:
    fake: FakeOpenAI

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = fake.next_reply(Recorded(self.path, headers, body))
            if reply is HANG:
                fake.release.wait()
                return
            assert isinstance(reply, Reply)
            data = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-openai", daemon=True
    )
    fake = FakeOpenAI(server, thread)
    thread.start()
    return fake
