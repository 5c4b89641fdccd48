"""A fake of Google's generative AI service for tests: the Gemini API and Vertex AI
endpoints that google-genai's models call, over real HTTP on 127.0.0.1, answering in
their wire format and recording every request.

Start one with :func:`start` (or ``with start() as fake:``), point the SDK at
``fake.base_url`` (``ProviderSettings(base_url=fake.base_url, ...)``) and stop it with
:meth:`FakeGoogle.stop`. It serves, for any API version (``v1``, ``v1beta1``...) and
any resource form (``models/M``, ``publishers/google/models/M``,
``projects/P/locations/L/publishers/google/models/M``):

* ``POST .../M:generateContent`` (kind ``generate_content``): with ``IMAGE`` among the
  ``responseModalities``, :attr:`~FakeGoogle.image` as an inline PNG; otherwise the
  next text of :attr:`~FakeGoogle.chat_answers` (a 500 naming the queue when it is
  empty). Usage: :attr:`~FakeGoogle.usage`.
* ``POST .../M:predictLongRunning`` (``predict``): starts a Veo operation and answers
  its name, ``projects/P/locations/L/publishers/google/models/M/operations/N``.
* ``POST .../M:fetchPredictOperation`` (``fetch``), body ``{"operationName": ...}``:
  the operation; it is done at the poll after :attr:`~FakeGoogle.polls_before_done`
  polls that were not, with :attr:`~FakeGoogle.video` as inline bytes. An unknown
  operation is a 404.
* ``GET .../models/M`` (``get_model``): the model's description (the probe).
* ``POST /token`` (``token``): an OAuth access token, for google-auth refreshing the
  service account of :meth:`~FakeGoogle.write_credentials` (project mode).

Knobs, plain attributes that a test may change at any time:

* ``chat_answers``: deque of texts the chat model answers, in order.
* ``usage``: ``(prompt_tokens, candidates_tokens)`` every answer reports.
* ``image``: the PNG bytes image answers carry (:func:`make_png` by default).
* ``video``: the MP4 bytes a finished operation carries (:func:`make_mp4` by default).
* ``polls_before_done`` (1): polls answered "not done" before an operation is done;
  ``never_finish``: operations never finish.
* ``block_prompt``: a message; ``generateContent`` answers that the prompt was blocked
  (``promptFeedback.blockReason`` SAFETY, with the message).
* ``finish_reason``: e.g. ``"IMAGE_SAFETY"``; ``generateContent`` answers a candidate
  that stopped for this reason, without an image; ``finish_message``: what the model
  said (``finishMessage``, and its text part).
* ``filter_video``: a list of reasons; finished operations carry no video but
  ``raiMediaFilteredCount`` 1 and these ``raiMediaFilteredReasons``.
* ``operation_error``: ``{"code": ..., "message": ...}``; finished operations carry it.
* ``models``: the model ids the service knows (None: any); others get a 404 NOT_FOUND.
* ``api_key``: the one key accepted (None: any); a request without a key or a bearer
  token gets 401, one with another key 400 API_KEY_INVALID (Gemini API) or 401
  (Vertex AI), as the real services answer.
* :meth:`~FakeGoogle.fail`: the next request(s) of a kind get an HTTP error.
* :meth:`~FakeGoogle.add_operation`: an operation started "earlier" (no request
  recorded), to resume.

:meth:`~FakeGoogle.reset` puts every knob back and forgets every request, so one fake
may serve many tests.

``requests`` holds every request (:class:`Recorded`: method, path, kind, model, headers,
JSON body); :meth:`~FakeGoogle.requests_to` those of one kind.
"""

from __future__ import annotations

import base64
import functools
import io
import itertools
import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import av
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image

EXPRESS_PROJECT = "fake-project"
EXPRESS_LOCATION = "us-central1"
ACCESS_TOKEN = "fake-access-token"

_ROUTE = re.compile(r"/(?P<version>v1[a-z0-9]*)/(?P<resource>[^:]+)(?::(?P<method>[A-Za-z]+))?")
_KINDS = {
    "generateContent": "generate_content",
    "predictLongRunning": "predict",
    "fetchPredictOperation": "fetch",
}


def make_png(
    size: tuple[int, int] = (96, 54), color: tuple[int, int, int] = (200, 40, 40)
) -> bytes:
    """A PNG of one colour."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def make_mp4(size: tuple[int, int] = (64, 36), frames: int = 6, fps: int = 12) -> bytes:
    """A real H.264 MP4 (made with PyAV) of ``frames`` frames fading from black to white."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.time_base = Fraction(1, fps)
        for index in range(frames):
            level = round(255 * index / max(1, frames - 1))
            image = Image.new("RGB", size, (level, level, level))
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def decode_base64(text: str) -> bytes:
    """Bytes as the SDK sends them: base64 in the standard alphabet (Veo's images) or the
    URL-safe one (inline parts), both of which the services accept."""
    return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)


#: The default clip, made once.
_STOCK_VIDEO = functools.cache(make_mp4)


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived."""

    method: str
    path: str
    kind: str
    model: str | None
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Failure:
    status: int
    message: str
    status_text: str
    details: list[dict[str, Any]]


@dataclass
class Operation:
    """A Veo operation: done after ``done_after`` polls that were not."""

    name: str
    model: str
    done_after: int
    polls: int = 0


_STATUS_TEXT = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


_KNOBS = (
    "chat_answers",
    "usage",
    "image",
    "video",
    "polls_before_done",
    "never_finish",
    "block_prompt",
    "finish_reason",
    "finish_message",
    "filter_video",
    "operation_error",
    "models",
    "api_key",
)


@dataclass
class FakeGoogle:
    """The running fake; see the module docstring for what it serves and its knobs."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    chat_answers: deque[str] = field(default_factory=deque)
    usage: tuple[int, int] = (12, 34)
    image: bytes = field(default_factory=make_png)
    video: bytes = field(default_factory=lambda: _STOCK_VIDEO())
    polls_before_done: int = 1
    never_finish: bool = False
    block_prompt: str | None = None
    finish_reason: str | None = None
    finish_message: str | None = None
    filter_video: list[str] | None = None
    operation_error: dict[str, Any] | None = None
    models: set[str] | None = None
    api_key: str | None = None
    requests: list[Recorded] = field(default_factory=list)
    operations: dict[str, Operation] = field(default_factory=dict)
    failures: dict[str, deque[Failure]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeGoogle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def reset(self) -> None:
        """Every knob back to its default, and no requests, operations or failures: a
        fresh fake on the same port."""
        defaults = FakeGoogle(self.server, self.thread)
        with self.lock:
            for name in _KNOBS:
                setattr(self, name, getattr(defaults, name))
            self.requests.clear()
            self.operations.clear()
            self.failures.clear()

    def requests_to(self, kind: str) -> list[Recorded]:
        """The recorded requests of ``kind`` (``generate_content``, ``predict``,
        ``fetch``, ``get_model``, ``token``), in order."""
        with self.lock:
            return [r for r in self.requests if r.kind == kind]

    def fail(
        self,
        kind: str,
        status: int,
        message: str,
        *,
        status_text: str | None = None,
        details: list[dict[str, Any]] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests of ``kind`` with HTTP ``status`` and a Google
        error body (``error.code``, ``message``, ``status``, ``details``)."""
        failure = Failure(
            status, message, status_text or _STATUS_TEXT.get(status, ""), details or []
        )
        with self.lock:
            self.failures.setdefault(kind, deque()).extend([failure] * times)

    def add_operation(
        self,
        model: str,
        *,
        polls_before_done: int | None = None,
        project: str = EXPRESS_PROJECT,
        location: str = EXPRESS_LOCATION,
    ) -> str:
        """Start an operation of ``model`` as an earlier attempt would have; its name."""
        prefix = f"projects/{project}/locations/{location}/publishers/google/models/{model}"
        with self.lock:
            name = f"{prefix}/operations/op-{next(self.counter)}"
            done_after = self.polls_before_done if polls_before_done is None else polls_before_done
            self.operations[name] = Operation(name, model, done_after)
        return name

    def write_credentials(self, path: Path) -> Path:
        """A service account key file whose ``token_uri`` is this fake: point
        ``GOOGLE_APPLICATION_CREDENTIALS`` at it for project mode (google-auth signs a
        JWT with its new RSA key and trades it here for :data:`ACCESS_TOKEN`)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        info = {
            "type": "service_account",
            "project_id": EXPRESS_PROJECT,
            "private_key_id": "fake-key-id",
            "private_key": pem,
            "client_email": f"vimax@{EXPRESS_PROJECT}.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": f"{self.base_url}/token",
        }
        path.write_text(json.dumps(info))
        return path

    # -- answering ---------------------------------------------------------------------

    def answer(self, recorded: Recorded, resource: str) -> tuple[int, Any]:
        """The status and JSON body for ``recorded`` (already recorded)."""
        if recorded.kind == "token":
            return 200, {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}
        with self.lock:
            queue = self.failures.get(recorded.kind)
            failure = queue.popleft() if queue else None
        if failure is not None:
            return failure.status, _error(
                failure.status, failure.message, failure.status_text, failure.details
            )
        refused = self._check_credentials(recorded)
        if refused is not None:
            return refused
        if recorded.kind == "unknown":
            return 404, _error(404, f"no such endpoint {recorded.method} {recorded.path}")
        if (
            recorded.kind != "fetch"
            and self.models is not None
            and recorded.model not in self.models
        ):
            return 404, _error(
                404,
                f"Publisher model `{recorded.model}` was not found or your "
                "project does not have access to it.",
            )
        if recorded.kind == "get_model":
            return 200, {"name": resource, "displayName": recorded.model, "version": "001"}
        if recorded.kind == "generate_content":
            return self._content(recorded)
        if recorded.kind == "predict":
            return 200, {"name": self._start(resource, recorded.model or "")}
        return self._poll(recorded)

    def _check_credentials(self, recorded: Recorded) -> tuple[int, Any] | None:
        key = recorded.headers.get("x-goog-api-key")
        bearer = recorded.headers.get("authorization", "")
        if bearer == f"Bearer {ACCESS_TOKEN}":
            return None
        if not key:
            return 401, _error(401, "Request is missing required authentication credential.")
        if self.api_key is not None and key != self.api_key:
            if recorded.path.startswith(("/v1/models", "/v1beta/models")):
                return 400, _error(400, "API key not valid. Please pass a valid API key.")
            return 401, _error(401, "API keys are not supported by this API or the key is invalid.")
        return None

    def _content(self, recorded: Recorded) -> tuple[int, Any]:
        prompt, output = self.usage
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "totalTokenCount": prompt + output,
        }
        if self.block_prompt is not None:
            return 200, {
                "promptFeedback": {
                    "blockReason": "SAFETY",
                    "blockReasonMessage": self.block_prompt,
                    "safetyRatings": [
                        {
                            "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                            "probability": "HIGH",
                            "blocked": True,
                        }
                    ],
                },
                "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt},
            }
        if self.finish_reason is not None:
            candidate: dict[str, Any] = {"finishReason": self.finish_reason, "index": 0}
            if self.finish_message:  # Vertex AI says it in finishMessage, the Gemini API in text
                candidate["finishMessage"] = self.finish_message
                text_part = {"text": self.finish_message}
                candidate["content"] = {"role": "model", "parts": [text_part]}
            return 200, {"candidates": [candidate], "usageMetadata": usage}
        config = (
            recorded.body.get("generationConfig", {}) if isinstance(recorded.body, dict) else {}
        )
        if "IMAGE" in [m.upper() for m in config.get("responseModalities", [])]:
            data = base64.b64encode(self.image).decode()
            parts: list[dict[str, Any]] = [{"inlineData": {"mimeType": "image/png", "data": data}}]
        else:
            with self.lock:
                text = self.chat_answers.popleft() if self.chat_answers else None
            if text is None:
                return 500, _error(500, "the fake has no chat answer queued (chat_answers)")
            parts = [{"text": text}]
        return 200, {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": usage,
            "modelVersion": recorded.model,
            "responseId": f"fake-{next(self.counter)}",
        }

    def _start(self, resource: str, model: str) -> str:
        match = re.match(r"projects/([^/]+)/locations/([^/]+)/", resource)
        project, location = match.groups() if match else (EXPRESS_PROJECT, EXPRESS_LOCATION)
        return self.add_operation(model, project=project, location=location)

    def _poll(self, recorded: Recorded) -> tuple[int, Any]:
        name = recorded.body.get("operationName") if isinstance(recorded.body, dict) else None
        with self.lock:
            operation = self.operations.get(str(name))
            if operation is None:
                return 404, _error(404, f"Operation {name} was not found.")
            finished = not self.never_finish and operation.polls >= operation.done_after
            operation.polls += 1
        if not finished:
            return 200, {"name": operation.name}
        if self.operation_error is not None:
            return 200, {"name": operation.name, "done": True, "error": self.operation_error}
        response: dict[str, Any] = {
            "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
        }
        if self.filter_video is not None:
            response["raiMediaFilteredCount"] = 1
            response["raiMediaFilteredReasons"] = list(self.filter_video)
        else:
            response["raiMediaFilteredCount"] = 0
            response["videos"] = [
                {
                    "bytesBase64Encoded": base64.b64encode(self.video).decode(),
                    "mimeType": "video/mp4",
                }
            ]
        return 200, {"name": operation.name, "done": True, "response": response}


def _error(
    status: int,
    message: str,
    status_text: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": status_text or _STATUS_TEXT.get(status, ""),
    }
    if details:
        error["details"] = details
    return {"error": error}


def _classify(method: str, path: str) -> tuple[str, str | None, str]:
    """The kind of a request, its model id and its resource name."""
    if method == "POST" and path == "/token":
        return "token", None, ""
    match = _ROUTE.fullmatch(path)
    if match is None:
        return "unknown", None, ""
    resource = match["resource"]
    model = resource.split("models/", 1)[1] if "models/" in resource else None
    if match["method"] is None:
        kind = "get_model" if method == "GET" and model and "/" not in model else "unknown"
    else:
        kind = _KINDS.get(match["method"], "unknown") if method == "POST" else "unknown"
    return kind, model, resource


def start() -> FakeGoogle:
    """A running fake on a free port of 127.0.0.1."""
    fake: FakeGoogle

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
            path = self.path.split("?", 1)[0]
            body: Any
            if path == "/token":
                body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            else:
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
            kind, model, resource = _classify(self.command, path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            recorded = Recorded(self.command, path, kind, model, headers, body)
            with fake.lock:
                fake.requests.append(recorded)
            try:
                status, answer = fake.answer(recorded, resource)
            except Exception as exc:  # a broken fake must show up as a failure
                status, answer = 500, _error(500, f"fake server error: {exc!r}")
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-google", daemon=True
    )
    fake = FakeGoogle(server, thread)
    thread.start()
    return fake
