"""A tiny OpenAI-compatible HTTP server for tests: scripted answers, recorded requests.

Each test queues replies per path (``/v1/chat/completions``, ``/v1/images/generations``,
``/v1/images/edits``, ``/v1/models``, ``/v1/models/{id}``); a request with nothing queued gets a 500
naming the path, so an unexpected extra request shows up as a failure. JSON bodies are
recorded parsed, multipart bodies as :class:`Multipart` (fields and uploaded files).
:data:`HANG` makes the handler wait, without answering, until the server is stopped.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT = "/v1/chat/completions"
IMAGES = "/v1/images/generations"
EDITS = "/v1/images/edits"


def model_path(model: str) -> str:
    return f"/v1/models/{model}"


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


@dataclass(frozen=True)
class Upload:
    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Multipart:
    fields: dict[str, str]
    files: list[Upload]


def parse_multipart(content_type: str, raw: bytes) -> Multipart:
    message = BytesParser().parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    assert message.is_multipart(), "the body is not multipart"
    fields: dict[str, str] = {}
    files: list[Upload] = []
    for part in message.get_payload():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str)
        assert isinstance(payload, bytes)
        filename = part.get_filename()
        if filename is None:
            fields[name] = payload.decode()
        else:
            files.append(Upload(name, filename, part.get_content_type(), payload))
    return Multipart(fields, files)


def chat_reply(
    content: str | None, *, refusal: str | None = None, usage: tuple[int, int] | None = None
) -> Reply:
    message = {"role": "assistant", "content": content, "refusal": refusal}
    body: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }
    if usage is not None:
        prompt, completion = usage
        body["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    return Reply(200, body)


MODELS = "/v1/models"


def model_reply(model: str) -> Reply:
    return Reply(200, {"id": model, "object": "model", "created": 0, "owned_by": "test"})


def models_reply(*models: str) -> Reply:
    return Reply(200, {"object": "list", "data": [model_reply(m).body for m in models]})


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
        def do_GET(self) -> None:
            self.answer(None)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            content_type = self.headers.get("Content-Type", "")
            body: Any
            if content_type.startswith("multipart/form-data"):
                body = parse_multipart(content_type, raw)
            else:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
            self.answer(body)

        def answer(self, body: Any) -> None:
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
