"""A fake of Replicate's HTTP API for tests: the endpoints the ``replicate`` SDK calls,
over real HTTP on 127.0.0.1, answering in their wire format and recording every request.

Start one with :func:`start` (or ``with start() as fake:``), point the SDK at
``fake.base_url`` (``ProviderSettings(base_url=fake.base_url, api_key="any")``, or the
SDK's ``REPLICATE_BASE_URL`` variable with ``REPLICATE_API_TOKEN`` set) and stop it with
:meth:`FakeReplicate.stop`. For a whole film (``video_provider="replicate"``) give the
provider tiny poll intervals (``options: {poll_interval: 0.01, max_poll_interval:
0.01}``): each prediction then takes ``polls_before_done + 1`` polls. It serves:

* ``POST /v1/files`` (kind ``upload``), multipart with a ``content`` file: keeps the
  bytes (:attr:`~FakeReplicate.files`) and answers the file, whose ``urls.get`` is
  ``{base_url}/v1/files/{id}``; ``GET /v1/files/{id}`` (``file``) answers the file's
  description, ``GET /v1/files/{id}/download`` (``file_download``) its bytes.
* ``POST /v1/models/{owner}/{name}/predictions`` (``create``), body ``{"input": ...}``,
  and ``POST /v1/predictions`` (``create`` too), body ``{"version": ..., "input": ...}``
  for a version registered in :attr:`~FakeReplicate.versions` (others: 422): a new
  prediction, ``starting``.
* ``GET /v1/predictions/{id}`` (``get``): the prediction; each poll adds the next line of
  :attr:`~FakeReplicate.log_lines` to its logs; it is ``processing`` for
  :attr:`~FakeReplicate.polls_before_done` polls, then ``succeeded`` (or ``failed``).
  An unknown id is a 404.
* ``POST /v1/predictions/{id}/cancel`` (``cancel``): the prediction, ``canceled``.
* ``GET /v1/models/{owner}/{name}`` (``get_model``) and
  ``GET /v1/models/{owner}/{name}/versions/{id}`` (``get_version``): their descriptions
  (the probe).
* ``GET /delivery/{id}/{file}`` (``download``): a succeeded prediction's output file.

Every request needs ``Authorization: Bearer <token>`` (else 401, as the service).
Errors are problem details (``{"title", "detail", "status"}``), as the service sends.

Knobs, plain attributes that a test may change at any time:

* ``polls_before_done`` (1): polls answered ``processing`` before a prediction ends;
  ``never_finish``: predictions never end.
* ``log_lines``: the lines a prediction logs, one more at each poll (all once it ended).
* ``failure``: an error text (``"Output flagged as sensitive (E005)"``); predictions end
  ``failed`` with it instead of succeeding.
* ``output_removed``: succeeded predictions have no output (as once Replicate removed it).
* ``video`` / ``image``: the MP4 / PNG bytes outputs carry (:func:`make_mp4` and
  :func:`make_png` by default); models whose name starts with one of ``image_models``
  output the image, the others the video.
* ``list_output``: outputs are a list of URLs (None: a list for ``bytedance/seedream``
  models, a single URL otherwise, as those models answer).
* ``models``: the ``owner/name`` models the service knows (None: any); others get 404
  on ``create`` and ``get_model``.
* ``versions``: version id -> ``owner/name``, the versions ``POST /v1/predictions`` and
  ``get_version`` know.
* ``token``: the one token accepted (None: any non-empty one).
* :meth:`~FakeReplicate.fail`: the next request(s) of a kind get an HTTP error.
* :meth:`~FakeReplicate.add_prediction`: a prediction started "earlier" (no request
  recorded), to resume.

:meth:`~FakeReplicate.reset` puts every knob back and forgets every request, prediction
and file, so one fake may serve many tests.

``requests`` holds every request (:class:`Recorded`: method, path, kind, headers, body:
parsed JSON, or :class:`Multipart` for uploads); :meth:`~FakeReplicate.requests_to`
those of one kind, :meth:`~FakeReplicate.created_inputs` the inputs of the predictions
created.
"""

from __future__ import annotations

import functools
import io
import itertools
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
from PIL import Image

_IMAGE_MODELS = ("black-forest-labs/", "bytedance/seedream", "google/nano-banana")
_TITLES = {
    401: "Unauthenticated",
    402: "Insufficient credit",
    403: "Forbidden",
    404: "Not found",
    422: "Input validation failed",
    429: "Request was throttled",
    500: "Internal server error",
    503: "Service unavailable",
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
            frame = av.VideoFrame.from_image(  # type: ignore[no-untyped-call]
                Image.new("RGB", size, (level, level, level))
            )
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


#: The default outputs, made once.
_STOCK_VIDEO = functools.cache(make_mp4)
_STOCK_IMAGE = functools.cache(make_png)


@dataclass(frozen=True)
class Upload:
    """A file of a multipart body."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Multipart:
    """A multipart body: its plain fields and its files."""

    fields: dict[str, str]
    files: list[Upload]


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived."""

    method: str
    path: str
    kind: str
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Failure:
    status: int
    detail: str
    title: str


@dataclass
class StoredFile:
    id: str
    name: str
    content_type: str
    data: bytes


@dataclass
class Prediction:
    """A prediction: it ends at the poll after ``done_after`` polls that did not."""

    id: str
    model: str
    version: str
    input: dict[str, Any]
    done_after: int
    created: float
    polls: int = 0
    status: str = "starting"
    logs: str = ""
    output: Any = None
    error: str | None = None


_KNOBS = (
    "polls_before_done",
    "never_finish",
    "log_lines",
    "failure",
    "output_removed",
    "video",
    "image",
    "image_models",
    "list_output",
    "models",
    "versions",
    "token",
)


def parse_multipart(content_type: str, raw: bytes) -> Multipart:
    """A ``multipart/form-data`` body as its fields and files."""
    message = BytesParser().parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    fields: dict[str, str] = {}
    files: list[Upload] = []
    for part in message.get_payload() if message.is_multipart() else []:
        assert isinstance(part, Message)
        name = str(part.get_param("name", header="content-disposition") or "")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        filename = part.get_filename()
        if filename is None:
            fields[name] = payload.decode()
        else:
            files.append(Upload(name, filename, part.get_content_type(), payload))
    return Multipart(fields, files)


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(seconds))


def _problem(status: int, detail: str, title: str | None = None) -> dict[str, Any]:
    return {"title": title or _TITLES.get(status, "Error"), "detail": detail, "status": status}


@dataclass
class FakeReplicate:
    """The running fake; see the module docstring for what it serves and its knobs."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    polls_before_done: int = 1
    never_finish: bool = False
    log_lines: list[str] = field(default_factory=list)
    failure: str | None = None
    output_removed: bool = False
    video: bytes = field(default_factory=lambda: _STOCK_VIDEO())
    image: bytes = field(default_factory=lambda: _STOCK_IMAGE())
    image_models: tuple[str, ...] = _IMAGE_MODELS
    list_output: bool | None = None
    models: set[str] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    requests: list[Recorded] = field(default_factory=list)
    predictions: dict[str, Prediction] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    failures: dict[str, deque[Failure]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeReplicate:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def reset(self) -> None:
        """Every knob back to its default, and no requests, predictions, files or
        failures: a fresh fake on the same port."""
        defaults = FakeReplicate(self.server, self.thread)
        with self.lock:
            for name in _KNOBS:
                setattr(self, name, getattr(defaults, name))
            self.requests.clear()
            self.predictions.clear()
            self.files.clear()
            self.failures.clear()

    def requests_to(self, kind: str) -> list[Recorded]:
        """The recorded requests of ``kind`` (``upload``, ``create``, ``get``, ``cancel``,
        ``get_model``, ``get_version``, ``download``, ``file``, ``file_download``), in
        order."""
        with self.lock:
            return [r for r in self.requests if r.kind == kind]

    def created_inputs(self) -> list[dict[str, Any]]:
        """The inputs of the predictions created through requests, in order."""
        return [r.body.get("input", {}) for r in self.requests_to("create")]

    def file_bytes(self, url: str) -> bytes:
        """The bytes uploaded as the file whose ``urls.get`` is ``url``."""
        with self.lock:
            return self.files[url.rstrip("/").rsplit("/", 1)[-1]].data

    def fail(
        self, kind: str, status: int, detail: str, *, title: str | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests of ``kind`` with HTTP ``status`` and a
        problem-details body."""
        failure = Failure(status, detail, title or _TITLES.get(status, "Error"))
        with self.lock:
            self.failures.setdefault(kind, deque()).extend([failure] * times)

    def add_prediction(
        self,
        model: str,
        *,
        polls_before_done: int | None = None,
        version: str = "",
        input: dict[str, Any] | None = None,
    ) -> str:
        """Start a prediction of ``model`` (with ``input``) as an earlier attempt would
        have; its id."""
        inputs = {"prompt": "earlier"} if input is None else input
        with self.lock:
            return self._new_prediction(model, version, inputs, polls_before_done)

    # -- answering ---------------------------------------------------------------------

    def _new_prediction(
        self, model: str, version: str, inputs: dict[str, Any], polls: int | None = None
    ) -> str:
        prediction_id = f"fakepred{next(self.counter):06d}"
        done_after = self.polls_before_done if polls is None else polls
        self.predictions[prediction_id] = Prediction(
            prediction_id, model, version or "official", inputs, done_after, time.time()
        )
        return prediction_id

    def _json(self, prediction: Prediction) -> dict[str, Any]:
        base = self.base_url
        ended = prediction.status in ("succeeded", "failed", "canceled")
        return {
            "id": prediction.id,
            "model": prediction.model,
            "version": prediction.version,
            "input": prediction.input,
            "logs": prediction.logs,
            "output": prediction.output,
            "data_removed": self.output_removed and prediction.status == "succeeded",
            "error": prediction.error,
            "status": prediction.status,
            "source": "api",
            "created_at": _iso(prediction.created),
            "started_at": _iso(prediction.created) if prediction.polls else None,
            "completed_at": _iso(time.time()) if ended else None,
            "metrics": {"predict_time": 1.5} if prediction.status == "succeeded" else {},
            "urls": {
                "get": f"{base}/v1/predictions/{prediction.id}",
                "cancel": f"{base}/v1/predictions/{prediction.id}/cancel",
                "web": f"https://replicate.com/p/{prediction.id}",
            },
        }

    def _advance(self, prediction: Prediction) -> None:
        """One poll of ``prediction``: a log line more, and its end when it is due."""
        if prediction.status in ("succeeded", "failed", "canceled"):
            return
        prediction.polls += 1
        finished = not self.never_finish and prediction.polls > prediction.done_after
        shown = self.log_lines if finished else self.log_lines[: prediction.polls]
        prediction.logs = "\n".join(shown) + ("\n" if shown else "")
        if not finished:
            prediction.status = "processing"
        elif self.failure is not None:
            prediction.status, prediction.error = "failed", self.failure
        else:
            prediction.status = "succeeded"
            if not self.output_removed:
                prediction.output = self._output(prediction)

    def _output(self, prediction: Prediction) -> Any:
        is_image = prediction.model.startswith(self.image_models)
        url = f"{self.base_url}/delivery/{prediction.id}/output.{'png' if is_image else 'mp4'}"
        as_list = self.list_output
        if as_list is None:
            as_list = prediction.model.startswith("bytedance/seedream")
        return [url] if as_list else url

    def answer(self, recorded: Recorded, route: dict[str, str]) -> tuple[int, Any]:
        """The status and body (JSON-able, or bytes) for ``recorded`` (already recorded)."""
        with self.lock:
            queue = self.failures.get(recorded.kind)
            failure = queue.popleft() if queue else None
        if failure is not None:
            return failure.status, _problem(failure.status, failure.detail, failure.title)
        authorization = recorded.headers.get("authorization", "")
        token = authorization.removeprefix("Bearer ").strip()
        if not authorization.startswith("Bearer ") or not token:
            return 401, _problem(401, "You did not pass an authentication token")
        if self.token is not None and token != self.token:
            return 401, _problem(401, "You did not pass a valid authentication token")
        with self.lock:
            return self._route(recorded, route)

    def _route(self, recorded: Recorded, route: dict[str, str]) -> tuple[int, Any]:
        kind = recorded.kind
        if kind == "unknown":
            return 404, _problem(404, f"no such endpoint {recorded.method} {recorded.path}")
        if kind == "upload":
            return self._upload(recorded.body)
        if kind in ("file", "file_download"):
            stored = self.files.get(route["id"])
            if stored is None:
                return 404, _problem(404, "The requested resource could not be found.")
            return 200, stored.data if kind == "file_download" else self._file_json(stored)
        model = f"{route.get('owner')}/{route.get('name')}"
        checks_model = kind in ("get_model", "get_version") or (
            kind == "create" and "owner" in route
        )
        if checks_model and self.models is not None and model not in self.models:
            return 404, _problem(404, "The requested resource could not be found.")
        if kind == "get_model":
            return 200, _model_json(route["owner"], route["name"])
        if kind == "get_version":
            if self.versions.get(route["version"]) != model:
                return 404, _problem(404, "The requested resource could not be found.")
            return 200, _version_json(route["version"])
        if kind == "create":
            return self._create(recorded.body, route)
        prediction = self.predictions.get(route["id"])
        if prediction is None:
            return 404, _problem(404, "The requested resource could not be found.")
        if kind == "cancel":
            if prediction.status not in ("succeeded", "failed"):
                prediction.status = "canceled"
            return 200, self._json(prediction)
        if kind == "download":
            if prediction.status != "succeeded" or self.output_removed:
                return 404, _problem(404, "The requested resource could not be found.")
            return 200, self.image if route["file"].endswith(".png") else self.video
        self._advance(prediction)
        return 200, self._json(prediction)

    def _upload(self, body: Any) -> tuple[int, Any]:
        files = body.files if isinstance(body, Multipart) else []
        upload = next((f for f in files if f.field == "content"), None)
        if upload is None:
            return 422, _problem(422, "- content: file is required")
        file_id = f"fakefile{next(self.counter):06d}"
        stored = StoredFile(file_id, upload.filename, upload.content_type, upload.data)
        self.files[file_id] = stored
        return 201, self._file_json(stored)

    def _file_json(self, stored: StoredFile) -> dict[str, Any]:
        now = _iso(time.time())
        return {
            "id": stored.id,
            "name": stored.name,
            "content_type": stored.content_type,
            "size": len(stored.data),
            "etag": f'"{stored.id}"',
            "checksums": {"sha256": "0" * 64},
            "metadata": {},
            "created_at": now,
            "expires_at": _iso(time.time() + 86400),
            "urls": {"get": f"{self.base_url}/v1/files/{stored.id}"},
        }

    def _create(self, body: Any, route: dict[str, str]) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return 422, _problem(422, "- input: input is required")
        version = ""
        if "owner" in route:
            model = f"{route['owner']}/{route['name']}"
        else:
            version = str(body.get("version", ""))
            model = self.versions.get(version, "")
            if not model:
                return 422, _problem(
                    422,
                    "The specified version does not exist (or perhaps you don't have "
                    "permission to use it?)",
                    "Invalid version or not permitted",
                )
        prediction_id = self._new_prediction(model, version, body["input"])
        return 201, self._json(self.predictions[prediction_id])


def _model_json(owner: str, name: str) -> dict[str, Any]:
    return {
        "url": f"https://replicate.com/{owner}/{name}",
        "owner": owner,
        "name": name,
        "description": "A model of the fake",
        "visibility": "public",
        "github_url": None,
        "paper_url": None,
        "license_url": None,
        "run_count": 42,
        "cover_image_url": None,
        "default_example": None,
        "latest_version": None,
    }


def _version_json(version: str) -> dict[str, Any]:
    return {
        "id": version,
        "created_at": "2025-01-01T00:00:00.000000Z",
        "cog_version": "0.14.0",
        "openapi_schema": {},
    }


_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), kind)
    for method, pattern, kind in (
        ("POST", r"/v1/files", "upload"),
        ("GET", r"/v1/files/(?P<id>[^/]+)", "file"),
        ("GET", r"/v1/files/(?P<id>[^/]+)/download", "file_download"),
        ("POST", r"/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)/predictions", "create"),
        ("POST", r"/v1/predictions", "create"),
        ("GET", r"/v1/predictions/(?P<id>[^/]+)", "get"),
        ("POST", r"/v1/predictions/(?P<id>[^/]+)/cancel", "cancel"),
        ("GET", r"/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)", "get_model"),
        (
            "GET",
            r"/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)/versions/(?P<version>[^/]+)",
            "get_version",
        ),
        ("GET", r"/delivery/(?P<id>[^/]+)/(?P<file>[^/]+)", "download"),
    )
)


def _classify(method: str, path: str) -> tuple[str, dict[str, str]]:
    for route_method, pattern, kind in _ROUTES:
        match = pattern.fullmatch(path)
        if match is not None and method == route_method:
            return kind, match.groupdict()
    return "unknown", {}


def start() -> FakeReplicate:
    """A running fake on a free port of 127.0.0.1."""
    fake: FakeReplicate

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _read(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

        def _serve(self) -> None:
            raw = self._read()
            path = self.path.split("?", 1)[0]
            content_type = self.headers.get("Content-Type", "")
            body: Any = None
            if content_type.startswith("multipart/form-data"):
                body = parse_multipart(content_type, raw)
            elif raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
            kind, route = _classify(self.command, path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            recorded = Recorded(self.command, path, kind, headers, body)
            with fake.lock:
                fake.requests.append(recorded)
            try:
                status, answer = fake.answer(recorded, route)
            except Exception as exc:  # a broken fake must show up as a failure
                status, answer = 500, _problem(500, f"fake server error: {exc!r}")
            if isinstance(answer, bytes):
                data, mime = answer, "application/octet-stream"
            else:
                data, mime = json.dumps(answer).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", mime)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.02},
        name="fake-replicate",
        daemon=True,
    )
    fake = FakeReplicate(server, thread)
    thread.start()
    return fake
