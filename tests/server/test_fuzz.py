"""Hypothesis fuzzing of a real server: hostile WebSocket frames and REST requests.

One server per test; hypothesis draws the input and each example runs on the server's
loop (``jp_asyncio_loop.run_until_complete``), so connections live across examples and
thousands of cases take seconds. The WebSocket test sends batches of frames on one raw
connection and checks, per frame, the answer the protocol documents: the same ``error``
(code and request ``id``) as :func:`parse_client_message` gives, a ``pong`` echoing
``ts``, a ``coordinator_metrics``, or one answer of the right kind to a valid subscribe,
unsubscribe or control; a frame over ``max_frame_size`` closes with 1009, a text frame
that is not UTF-8 with 1007, and nothing else closes. Meanwhile a second client
subscribed to a workflow room receives every event emitted into it, in order. The REST
test sends hostile bodies, path parameters, query arguments and ranges: every answer is
below 500, and every error a JSON ``message``.

Runs are reproducible (``derandomize=True``, no example database); the case counts are
asserted so a change in hypothesis cannot quietly shrink the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_core import to_json
from tornado.httpclient import HTTPResponse

from vimax_nb.protocol import (
    CLOSE_INVALID_UTF8,
    CLOSE_TOO_BIG,
    Control,
    ErrorCode,
    GetMetrics,
    Ping,
    Pong,
    ProgressDetails,
    ProgressEvent,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    WorkflowState,
    parse_client_message,
    parse_server_message,
    workflow_room,
)

from .conftest import Gate, install_toy, post_json, record_of
from .ws_helpers import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Client, Frame, RawWebSocket

OP_BINARY = 0x2
MAX_FRAME = 64 * 1024
WS_EXAMPLES = 700  # batches of 10-20 frames: about 10,000 frames
REST_EXAMPLES = 800
MIN_WS_FRAMES = 8_000
MIN_REST_REQUESTS = REST_EXAMPLES
TIMEOUT = 15.0

FUZZ_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
}


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    """No rate limit to trip: every frame must get its answer."""
    vimax = {
        **jp_server_config["VimaxApp"],
        "rate_limit": 1e9,
        "rate_burst": 10**9,
        "max_frame_size": MAX_FRAME,
    }
    return {**jp_server_config, "VimaxApp": vimax}


@pytest.fixture
def held_workflow(service: Any, jp_fetch: Any, jp_asyncio_loop: Any) -> Iterator[str]:
    """A toy workflow held in its first task: its room only gets the events we emit."""
    gate = Gate()
    install_toy(service.coordinator, gate)

    async def start() -> str:
        created = await post_json(jp_fetch, "vimax/api/workflows", body={"kind": "story"})
        wid = record_of(created).id
        assert await asyncio.to_thread(gate.entered.wait, 10), "the held task never started"
        await service.store.events.flush()
        return wid

    try:
        yield jp_asyncio_loop.run_until_complete(start())
    finally:
        gate.opened.set()


# -- hostile text ---------------------------------------------------------------------------

FRAGMENTS = [
    "[", "]", "{", "}", '"', ",", ":", " ", "\\", "\\u", "\\ud800", "\\udc00", "\\ud83d\\ude00",
    "\\u0000", "\\n", "9" * 25, "9" * 5000, "-", "0", "1e400", "-1e400", "1.5e-400", "NaN",
    "Infinity", "-Infinity", "null", "true", "false", "1.5", "9223372036854775807",
    "9223372036854775808", "-9223372036854775809", '"type"', '"ping"', '"subscribe"',
    '"control"', '"room"', '"coordinator"', '"after"', '"id"', '"ts"', "é", "\u2028", "\x00",
    "[" * 40, "]" * 40, "{" * 40, "[" * 10000, "]" * 10000, '"' + "x" * 2000 + '"',
]  # fmt: skip
HOSTILE_VALUES = [
    '"\\ud800"', '"\\udc00x\\ud800"', '"\\ud83d\\ude00"', "9" * 30, "9" * 5000, "-" + "9" * 5000,
    "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity",
    "0", "-1", "1.5", "null", "true", "[]", "{}", "[" * 33 + "]" * 33, "[" * 10000 + "]" * 10000,
    '{"a": {"b": [1, 2, {"c": "\\ud800"}]}}', '"coordinator"', '"workflow:nosuchflow"',
    '"agent:toy-writer"', '"agent:nosuch"', '"workflow:"', '"agent:\\ud800"', '"pause"',
    '"resume"', '"cancel"', '"explode"', '"' + "w" * 3000 + '"', '"\\u0000"', '""',
]  # fmt: skip
TYPES = ["subscribe", "unsubscribe", "ping", "control", "get_metrics", "pong", "", "x"]
FIELDS = ["room", "after", "epoch", "id", "ts", "workflow_id", "action", "type", "x", ""]

garbage = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=16).map("".join)
# JSON text, well formed around the hostile tokens it holds (which JSON may refuse).
json_atom = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    st.integers().map(str),
    st.floats().map(lambda f: json.dumps(f)),
    st.text(max_size=20).map(json.dumps),
    st.text(max_size=20).map(lambda t: json.dumps(t, ensure_ascii=False)),
)
json_text = st.recursive(
    json_atom,
    lambda inner: (
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]")
        | st.lists(
            st.tuples(st.text(max_size=4).map(json.dumps) | json_atom, inner), max_size=3
        ).map(lambda pairs: "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}")
    ),
    max_leaves=6,
)
# one level of nesting at most: cheap to draw, so batches of frames stay fast
json_value = st.one_of(
    json_atom,
    st.lists(json_atom, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
    st.lists(st.tuples(st.text(max_size=3).map(json.dumps), json_atom), max_size=2).map(
        lambda pairs: "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    ),
    garbage,
)
shaped = st.builds(
    lambda kind, fields: (
        "{" + ", ".join([f'"type": {kind}', *(f"{json.dumps(k)}: {v}" for k, v in fields)]) + "}"
    ),
    st.sampled_from(TYPES).map(json.dumps) | json_value,
    st.lists(st.tuples(st.sampled_from(FIELDS), json_value), max_size=5),
)


def fit(text: str) -> bytes:
    """``text`` as UTF-8, cut to at most ``MAX_FRAME`` bytes (at a character boundary)."""
    return text.encode()[:MAX_FRAME].decode("utf-8", "ignore").encode()


frames = st.one_of(
    shaped.map(lambda t: (OP_TEXT, fit(t))),
    garbage.map(lambda t: (OP_TEXT, fit(t))),
    shaped.map(lambda t: (OP_BINARY, fit(t))),
    st.binary(max_size=48).map(lambda b: (OP_BINARY, b)),
    st.text(max_size=48).map(lambda t: (OP_TEXT, t.encode())),
)
closers = st.sampled_from(
    [
        (OP_TEXT, b'{"type": "ping", "ts": "\xed\xa0\x80"}'),
        (OP_TEXT, b"\xff"),
        (OP_TEXT, b"[" * (MAX_FRAME + 1)),
        (OP_BINARY, b" " * (MAX_FRAME + 1)),
    ]
)
batches = st.tuples(
    st.lists(frames, min_size=10, max_size=20),
    st.one_of(st.none(), st.none(), st.none(), st.none(), st.none(), st.none(), closers),
)


# -- what the protocol says each frame gets -----------------------------------------------


@dataclass
class Expected:
    """The answers a batch of frames must get: ``ordered`` in this order (protocol
    errors as (code, id), pongs as their ts, metrics), plus ``unordered`` answers to
    requests that wait on the server (subscribe, unsubscribe, control)."""

    ordered: list[tuple[str, Any]] = field(default_factory=list)
    subscribes: int = 0
    unsubscribes: int = 0
    controls: int = 0

    @property
    def unordered(self) -> int:
        return self.subscribes + self.unsubscribes + self.controls


def close_code_for(opcode: int, payload: bytes) -> int | None:
    """The close code the frame gets, or None if it is a message like any other."""
    if len(payload) > MAX_FRAME:
        return CLOSE_TOO_BIG
    if opcode == OP_TEXT:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            return CLOSE_INVALID_UTF8
    return None


def expect(expected: Expected, opcode: int, payload: bytes) -> None:
    raw: str | bytes = payload.decode("utf-8") if opcode == OP_TEXT else payload
    try:
        message = parse_client_message(raw, max_bytes=MAX_FRAME)
    except ProtocolError as error:
        expected.ordered.append(("error", (error.code.value, error.request_id)))
        return
    if isinstance(message, Ping):
        expected.ordered.append(("pong", json.loads(to_json(Pong(ts=message.ts)))["ts"]))
    elif isinstance(message, GetMetrics):
        expected.ordered.append(("coordinator_metrics", None))
    elif isinstance(message, Subscribe):
        expected.subscribes += 1
    elif isinstance(message, Unsubscribe):
        expected.unsubscribes += 1
    else:
        assert isinstance(message, Control)
        expected.controls += 1


# -- a raw client that can send anything ---------------------------------------------------


class FuzzSocket(RawWebSocket):
    """A raw WebSocket client: frames of any bytes, pings answered while reading."""

    async def send_frames(self, items: list[tuple[int, bytes]]) -> None:
        data = bytearray()
        for opcode, payload in items:
            mask = os.urandom(4)
            n = len(payload)
            if n < 126:
                data += struct.pack("!BB", 0x80 | opcode, 0x80 | n)
            elif n < 1 << 16:
                data += struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
            else:
                data += struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
            keys = (mask * (n // 4 + 1))[:n]
            masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(
                n, "big"
            )
            data += mask + masked
        await asyncio.get_running_loop().sock_sendall(self.sock, bytes(data))

    async def next_frame(self) -> Frame:
        """The next text or close frame; pings are answered, and the stream must not end
        without a close frame."""
        while True:
            frame = await self.read_frame(TIMEOUT)
            assert frame is not None, "the server dropped the connection without a close frame"
            if frame.opcode == OP_PING:
                await self.send_frames([(OP_PONG, frame.payload)])
                continue
            assert frame.opcode in (OP_TEXT, OP_CLOSE), frame
            return frame

    async def next_message(self) -> dict[str, Any]:
        frame = await self.next_frame()
        assert frame.opcode == OP_TEXT, f"closed ({frame.close_code} {frame.close_reason!r})"
        message: dict[str, Any] = frame.json()
        parse_server_message(frame.payload)  # every frame is a protocol message
        return message


@dataclass
class WsFuzz:
    port: int
    path: str
    headers: dict[str, str]
    socket: FuzzSocket | None = None
    frames: int = 0
    closes: Counter[int] = field(default_factory=Counter)
    sentinel: int = 0

    async def connected(self) -> FuzzSocket:
        if self.socket is None:
            self.socket = await FuzzSocket.connect(self.port, self.path, self.headers)  # type: ignore[assignment]
            assert self.socket is not None
            assert self.socket.status == 101
            assert (await self.socket.next_message())["type"] == "welcome"
        return self.socket

    def drop(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    async def run_batch(
        self, items: list[tuple[int, bytes]], closer: tuple[int, bytes] | None
    ) -> None:
        socket = await self.connected()
        expected = Expected()
        for opcode, payload in items:
            assert close_code_for(opcode, payload) is None
            expect(expected, opcode, payload)
        self.sentinel += 1
        sentinel = f"sentinel-{self.sentinel}"
        await socket.send_frames(
            [*items, (OP_TEXT, json.dumps({"type": "ping", "ts": sentinel}).encode())]
        )
        self.frames += len(items)
        ordered: list[tuple[str, Any]] = []
        unordered: Counter[str] = Counter()
        sentinel_seen = False
        while not sentinel_seen or sum(unordered.values()) < expected.unordered:
            message = await socket.next_message()
            kind = message["type"]
            if "seq" in message:  # an event of a room the batch subscribed to
                continue
            if kind == "pong" and message["ts"] == sentinel:
                sentinel_seen = True
            elif kind == "error" and message["target_type"] == "protocol":
                assert message["code"] in {c.value for c in ErrorCode}, message
                ordered.append(("error", (message["code"], message.get("id"))))
            elif kind == "pong":
                ordered.append(("pong", message["ts"]))
            elif kind == "coordinator_metrics":
                ordered.append(("coordinator_metrics", None))
            else:
                assert kind in ("subscribed", "unsubscribed", "control_response", "error"), message
                unordered[kind] += 1
        assert ordered == expected.ordered
        assert unordered["unsubscribed"] == expected.unsubscribes
        assert unordered["subscribed"] <= expected.subscribes
        assert unordered["control_response"] <= expected.controls
        assert sum(unordered.values()) == expected.unordered
        if closer is not None:
            await self.close_with(*closer)

    async def close_with(self, opcode: int, payload: bytes) -> None:
        socket = await self.connected()
        code = close_code_for(opcode, payload)
        assert code is not None
        await socket.send_frames([(opcode, payload)])
        self.frames += 1
        while (frame := await socket.next_frame()).opcode != OP_CLOSE:
            assert "seq" in frame.json(), f"answered {frame.json()} instead of closing"
        assert frame.close_code == code, (frame.close_code, frame.close_reason)
        self.closes[code] += 1
        # answer the close; a server that dropped the connection after it is fine
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await socket.send_frames([(OP_CLOSE, struct.pack("!H", code))])
        self.drop()


def tick(wid: str, i: int) -> ProgressEvent:
    return ProgressEvent(
        room=workflow_room(wid),
        workflow_id=wid,
        state=WorkflowState.running,
        progress=0.5,
        stage="fuzz",
        message=f"tick {i}",
        details=ProgressDetails(event="task_completed", task=f"tick/{i}"),
    )


def test_hostile_websocket_frames_get_their_documented_answers(
    jp_serverapp: Any,
    jp_asyncio_loop: Any,
    jp_ws_fetch: Any,
    jp_http_port: int,
    jp_base_url: str,
    service: Any,
    held_workflow: str,
) -> None:
    loop = jp_asyncio_loop
    token = jp_serverapp.identity_provider.token
    fuzz = WsFuzz(
        jp_http_port,
        jp_base_url.rstrip("/") + "/vimax/ws",
        {"Authorization": f"token {token}"},
    )
    room = workflow_room(held_workflow)

    async def watch() -> tuple[Client, int]:
        watcher = Client(await jp_ws_fetch("vimax", "ws"))
        await watcher.expect("welcome")
        subscribed = await watcher.request({"type": "subscribe", "room": room}, "subscribed")
        top: int = subscribed["top"]
        while top and (await watcher.recv())["seq"] != top:  # type: ignore[index]
            pass
        return watcher, top

    watcher, last_seq = loop.run_until_complete(watch())
    ticks = 0

    async def example(items: list[tuple[int, bytes]], closer: tuple[int, bytes] | None) -> None:
        nonlocal ticks, last_seq
        try:
            await fuzz.run_batch(items, closer)
        except BaseException:
            fuzz.drop()  # a shrinking run starts from a fresh connection
            raise
        # the other client's room still gets every event, in order
        ticks += 1
        service.coordinator.events.emit(tick(held_workflow, ticks))
        event = await watcher.recv(TIMEOUT)
        assert event is not None, f"the watcher was closed ({watcher.close_code})"
        assert (event["seq"], event["message"]) == (last_seq + 1, f"tick {ticks}"), event
        last_seq = event["seq"]

    @settings(max_examples=WS_EXAMPLES, **FUZZ_SETTINGS)  # type: ignore[arg-type]
    @given(batches)
    def run(batch: tuple[list[tuple[int, bytes]], tuple[int, bytes] | None]) -> None:
        loop.run_until_complete(example(*batch))

    try:
        run()
    finally:
        fuzz.drop()
        watcher.close()
    print(f"\nWebSocket fuzz: {fuzz.frames} frames, closes {dict(fuzz.closes)}, {ticks} events")
    assert fuzz.frames >= MIN_WS_FRAMES
    assert fuzz.closes[CLOSE_TOO_BIG]
    assert fuzz.closes[CLOSE_INVALID_UTF8]


# -- REST -------------------------------------------------------------------------------

hostile_text = st.one_of(
    st.sampled_from(
        ["9" * 25, "9" * 5000, "9223372036854775807", "9223372036854775808", "-1", "0", "1",
         "1_000", "\u0663", "1e3", " ", "%", "..", ".", "\x00", "\ud800", "a/b", "\u00e9",
         "workflow:x", "x" * 3000]
    ),
    st.text(min_size=1, max_size=12),
    st.integers().map(str),
)  # fmt: skip
quoted = hostile_text.map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe=""))
query_value = quoted | st.sampled_from(["%FF", "%ED%A0%80", "%", "%zz"])


def one_hostile(valid: list[str], hostile: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    """Values for ``len(valid)`` slots: all valid but for one hostile slot."""
    return st.tuples(st.integers(0, len(valid) - 1), hostile).map(
        lambda pick: [pick[1] if i == pick[0] else v for i, v in enumerate(valid)]
    )


def params_body(kind: str, params: list[tuple[str, str]], extra: str) -> bytes:
    # "fuzz" is no parameter: a body that is otherwise valid is still refused (400), so
    # no workflow is started
    fields = "".join(f", {json.dumps(k)}: {v}" for k, v in params)
    return ('{"kind": ' + kind + ', "params": {"fuzz": 1' + fields + "}" + extra + "}").encode()


PARAMS = ["idea", "script", "seed", "fps", "width", "style", "providers", "max_cost", "scenes", ""]
post_body = st.one_of(
    garbage.map(lambda t: t.encode()),
    json_text.map(lambda t: t.encode()),
    st.binary(max_size=40),
    st.builds(
        params_body,
        st.sampled_from(['"idea2video"', '"script2video"']) | json_text | garbage,
        st.lists(st.tuples(st.sampled_from(PARAMS), json_text | garbage), max_size=4),
        st.sampled_from(["", ', "priority": 1']) | json_text.map(lambda v: f', "priority": {v}'),
    ),
)
requests = st.one_of(
    one_hostile(["0", "10"], query_value).map(lambda v: ("events", v)),
    one_hostile(["10", ""], query_value).map(lambda v: ("workflows", v)),
    quoted.map(lambda v: ("workflow", [v])),
    st.tuples(quoted, st.sampled_from(["pause", "resume", "cancel"])).map(
        lambda v: ("control", list(v))
    ),
    quoted.map(lambda v: ("agent", [v])),
    quoted.map(lambda v: ("client", [v])),
    one_hostile(["notes.txt", "0", "3"], quoted).map(lambda v: ("artifact", v)),
    post_body.map(lambda b: ("post", [b.decode("latin-1")])),
    post_body.map(lambda b: ("gc", [b.decode("latin-1")])),
)


def test_hostile_rest_requests_get_4xx_json_never_500(
    jp_asyncio_loop: Any,
    http_server_client: Any,
    jp_auth_header: dict[str, str],
    jp_base_url: str,
    vimax_workdir: Path,
    service: Any,
    held_workflow: str,
) -> None:
    loop = jp_asyncio_loop
    base = jp_base_url.rstrip("/")
    wid = held_workflow
    (vimax_workdir / wid).mkdir(parents=True, exist_ok=True)
    (vimax_workdir / wid / "notes.txt").write_bytes(b"hello")
    counts: Counter[int] = Counter()

    async def fetch(
        path: str, *, method: str = "GET", body: bytes | None = None, **headers: str
    ) -> HTTPResponse:
        response: HTTPResponse = await http_server_client.fetch(
            base + path,
            method=method,
            body=body,
            headers={**jp_auth_header, **headers},
            raise_error=False,
            request_timeout=TIMEOUT,
        )
        return response

    async def example(route: str, values: list[str]) -> None:
        if route == "events":
            after, limit = values
            response = await fetch(f"/vimax/api/workflows/{wid}/events?after={after}&limit={limit}")
        elif route == "workflows":
            limit, before = values
            response = await fetch(f"/vimax/api/workflows?limit={limit}&before={before}")
        elif route == "workflow":
            response = await fetch(f"/vimax/api/workflows/{values[0]}")
        elif route == "control":
            name, action = values
            response = await fetch(f"/vimax/api/workflows/{name}/{action}", method="POST", body=b"")
        elif route == "agent":
            response = await fetch(f"/vimax/api/agents/{values[0]}")
        elif route == "client":
            response = await fetch(f"/vimax/ws/client/{values[0]}")
        elif route == "artifact":
            name, first, last = values
            response = await fetch(
                f"/vimax/api/workflows/{wid}/artifacts/{name}", Range=f"bytes={first}-{last}"
            )
        else:
            path = "/vimax/api/workflows" if route == "post" else "/vimax/api/gc"
            body = values[0].encode("latin-1")
            response = await fetch(path, method="POST", body=body)
        counts[response.code] += 1
        assert response.code < 500, (route, response.code, response.body[:300])
        if response.code >= 400:
            assert response.headers.get("Content-Type", "").startswith("application/json"), (
                route,
                response.code,
                response.body[:300],
            )
            message = json.loads(response.body)["message"]
            assert isinstance(message, str)
            assert message
        if response.code == 201:  # a valid workflow after all: do not let it run
            created = json.loads(response.body)["id"]
            await fetch(f"/vimax/api/workflows/{created}/cancel", method="POST", body=b"")

    @settings(max_examples=REST_EXAMPLES, **FUZZ_SETTINGS)  # type: ignore[arg-type]
    @given(requests)
    def run(request: tuple[str, list[str]]) -> None:
        loop.run_until_complete(example(*request))

    run()
    print(f"\nREST fuzz: {sum(counts.values())} requests, statuses {dict(sorted(counts.items()))}")
    assert sum(counts.values()) >= MIN_REST_REQUESTS
    # the server still serves: a good request after all the bad ones
    listed = loop.run_until_complete(fetch("/vimax/api/workflows"))
    assert listed.code == 200
