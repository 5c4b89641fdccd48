"""permessage-deflate as the hub agrees to it: without context takeover either way, each
message compressed once for every client, short ones sent as they are
(docs/protocol.md, "Compression")."""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any

import pytest
import websockets

from vimax_nb.protocol import agent_room
from vimax_nb.server import frames as frames_module
from vimax_nb.server.frames import (
    Deflate,
    MessageFrames,
    RecentFrames,
    deflated_text_frame,
    text_frame,
)

from .conftest import vimax
from .ws_helpers import OP_TEXT, Frame, RawWebSocket

ROOM = agent_room("screenwriter")
THRESHOLD = 512


@pytest.fixture
def port(jp_fetch: Any, jp_http_port: int) -> int:
    """The test server's port (``jp_fetch`` makes the server listen)."""
    return jp_http_port


@pytest.fixture
def compressed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every payload the server compresses from now on, in order."""
    made: list[bytes] = []

    def counted(payload: bytes, max_window_bits: int = 15) -> bytes:
        made.append(payload)
        return deflated_text_frame(payload, max_window_bits)

    monkeypatch.setattr(frames_module, "deflated_text_frame", counted)
    return made


def inflate(frame: Frame, window_bits: int = 15) -> dict[str, Any]:
    """A text frame's message; a compressed one inflated on its own, as a client that
    agreed to no context takeover does (a fresh decompressor a message)."""
    assert frame.opcode == OP_TEXT, frame
    if not frame.compressed:
        return frame.json()
    text = zlib.decompressobj(-window_bits).decompress(frame.payload + b"\x00\x00\xff\xff")
    message: dict[str, Any] = json.loads(text)
    return message


def extension_parameters(header: str) -> set[str]:
    """The parameters of a ``permessage-deflate`` answer, without their values."""
    name, *params = [part.strip() for part in header.split(";")]
    assert name == "permessage-deflate", header
    return {param.partition("=")[0] for param in params}


async def raw_client(
    port: int, base_url: str, auth: dict[str, str], offer: str | None
) -> RawWebSocket:
    """A client on a bare socket, offering ``offer`` as its extensions, past ``welcome``."""
    headers = dict(auth)
    if offer is not None:
        headers["Sec-WebSocket-Extensions"] = offer
    raw = await RawWebSocket.connect(port, base_url.rstrip("/") + "/vimax/ws", headers)
    assert raw.status == 101, raw.status
    welcome = await raw.read_frame()
    assert welcome is not None
    assert inflate(welcome)["type"] == "welcome"
    return raw


async def subscribed(raw: RawWebSocket, room: str) -> None:
    await raw.send_json({"type": "subscribe", "room": room, "after": None})
    while True:
        frame = await raw.read_frame()
        assert frame is not None
        if inflate(frame)["type"] == "subscribed":
            return


async def events(raw: RawWebSocket, count: int) -> list[tuple[Frame, dict[str, Any]]]:
    """The next ``count`` progress events, each with its frame (the agent's own status
    events may come between)."""
    got: list[tuple[Frame, dict[str, Any]]] = []
    while len(got) < count:
        frame = await raw.read_frame()
        assert frame is not None, f"end of stream after {len(got)} events"
        message = inflate(frame)
        if "seq" in message and message["type"] == "progress":
            got.append((frame, message))
    return got


async def store(service: Any, messages: list[str]) -> None:
    log = service.store.events
    for message in messages:
        log.append_nowait(ROOM, "progress", {"message": message})
    await log.flush()


def varied(size: int) -> str:
    """Text of ``size`` characters that compresses (it repeats) but not to nothing."""
    return "".join(f"{i % 97:02d}word{i % 13} " for i in range(size))[:size]


async def test_deflate_is_agreed_without_context_takeover_and_long_messages_are_compressed(
    port: int, jp_base_url: str, jp_auth_header: dict[str, str], service: Any
) -> None:
    raw = await raw_client(
        port, jp_base_url, jp_auth_header, "permessage-deflate; client_max_window_bits"
    )
    try:
        params = extension_parameters(raw.headers["sec-websocket-extensions"])
        assert {"server_no_context_takeover", "client_no_context_takeover"} <= params
        await subscribed(raw, ROOM)
        texts = ["short", varied(4000), "short again", varied(9000), varied(4000)]
        await store(service, texts)
        got = await events(raw, len(texts))
        # each compressed message inflates on its own: no context was taken over
        assert [m["message"] for _, m in got] == texts
        assert [f.compressed for f, _ in got] == [False, True, False, True, True]
        for frame, message in got:
            if frame.compressed:
                assert len(frame.payload) < len(json.dumps(message)) / 2
    finally:
        raw.close()


@vimax(compression=False)
async def test_with_compression_off_an_offer_is_declined(
    port: int, jp_base_url: str, jp_auth_header: dict[str, str], service: Any
) -> None:
    raw = await raw_client(port, jp_base_url, jp_auth_header, "permessage-deflate")
    try:
        assert "sec-websocket-extensions" not in raw.headers
        await subscribed(raw, ROOM)
        await store(service, [varied(4000)])
        [(frame, message)] = await events(raw, 1)
        assert not frame.compressed
        assert message["message"] == varied(4000)
    finally:
        raw.close()


async def test_a_client_that_limits_the_servers_window_gets_frames_within_it(
    port: int, jp_base_url: str, jp_auth_header: dict[str, str], service: Any
) -> None:
    # a 700-character block repeated: with a 32 KB window the repeats point 700 bytes
    # back, past the 512 bytes a 9-bit window holds
    block = varied(700)
    raw = await raw_client(
        port,
        jp_base_url,
        jp_auth_header,
        "permessage-deflate; server_max_window_bits=9",
    )
    try:
        assert "server_max_window_bits=9" in raw.headers["sec-websocket-extensions"]
        await subscribed(raw, ROOM)
        await store(service, [block * 6])
        [(frame, _)] = await events(raw, 1)
        assert frame.compressed
        assert inflate(frame, window_bits=9)["message"] == block * 6
    finally:
        raw.close()


async def test_a_client_that_asks_for_a_256_byte_window_gets_messages_uncompressed(
    port: int, jp_base_url: str, jp_auth_header: dict[str, str], service: Any
) -> None:
    # zlib cannot make such a stream; uncompressed messages are allowed on the extension
    raw = await raw_client(
        port, jp_base_url, jp_auth_header, "permessage-deflate; server_max_window_bits=8"
    )
    other = await raw_client(port, jp_base_url, jp_auth_header, "permessage-deflate")
    try:
        for client in (raw, other):
            await subscribed(client, ROOM)
        await store(service, [varied(3000)])
        [(frame, message)] = await events(raw, 1)
        assert not frame.compressed
        assert message["message"] == varied(3000)
        [(other_frame, _)] = await events(other, 1)  # the others are served as ever
        assert other_frame.compressed
    finally:
        raw.close()
        other.close()


async def test_an_event_is_compressed_once_for_every_client_that_agreed(
    port: int,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    service: Any,
    compressed: list[bytes],
) -> None:
    offer = "permessage-deflate; client_max_window_bits"
    deflating = [await raw_client(port, jp_base_url, jp_auth_header, offer) for _ in "abc"]
    plain = await raw_client(port, jp_base_url, jp_auth_header, None)
    clients = [*deflating, plain]
    try:
        for raw in clients:
            await subscribed(raw, ROOM)
        compressed.clear()
        await store(service, [varied(3000)])
        received = [await events(raw, 1) for raw in clients]
        frames = [got[0][0] for got in received]
        assert len(compressed) == 1  # one compression for the three clients
        assert all(f.compressed for f in frames[:3])
        assert frames[0].payload == frames[1].payload == frames[2].payload
        assert not frames[3].compressed
        assert {got[0][1]["message"] for got in received} == {varied(3000)}
    finally:
        for raw in clients:
            raw.close()


async def test_the_websockets_client_with_its_default_deflate_talks_both_ways(
    port: int, jp_base_url: str, jp_auth_header: dict[str, str], service: Any
) -> None:
    url = f"ws://127.0.0.1:{port}{jp_base_url.rstrip('/')}/vimax/ws"
    async with websockets.connect(url, additional_headers=jp_auth_header) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
        assert ws.response is not None
        params = extension_parameters(ws.response.headers["Sec-WebSocket-Extensions"])
        assert "client_no_context_takeover" in params
        # two long, alike messages from the client: the second inflates only because
        # the client compressed it without the first as context, as agreed
        stamp = varied(2000)
        for n in range(2):
            await ws.send(json.dumps({"type": "ping", "ts": f"{n} {stamp}"}))
            assert json.loads(await ws.recv()) == {"type": "pong", "ts": f"{n} {stamp}"}
        await ws.send(json.dumps({"type": "subscribe", "room": ROOM, "after": None}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        texts = [varied(5000), "short"]
        await store(service, texts)
        received: list[str] = []
        while len(received) < len(texts):
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if message["type"] == "progress":
                received.append(message["message"])
        assert received == texts


def test_message_frames_are_made_once_each_and_only_long_messages_deflated() -> None:
    long_text, short_text = varied(2000).encode(), b'{"type":"pong"}'
    deflate = Deflate(max_window_bits=15, threshold=THRESHOLD)
    message = MessageFrames(long_text)
    assert message.frame(None) is message.frame(None)
    assert message.frame(None) == text_frame(long_text)
    compressed = message.frame(deflate)
    assert compressed is message.frame(deflate)
    assert compressed[0] == 0xC1  # FIN, RSV1, text
    assert len(compressed) < len(long_text) / 2
    short = MessageFrames(short_text)
    assert short.frame(deflate) == text_frame(short_text)


async def test_clients_replaying_the_same_events_share_their_compression(
    port: int,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    service: Any,
    compressed: list[bytes],
) -> None:
    texts = [varied(1000 + i) for i in range(20)]
    await store(service, texts)
    offer = "permessage-deflate; client_max_window_bits"
    clients = [await raw_client(port, jp_base_url, jp_auth_header, offer) for _ in "abc"]
    try:
        for raw in clients:
            await subscribed(raw, ROOM)  # after: null, so the stored events are replayed
            got = await events(raw, len(texts))
            assert [m["message"] for _, m in got] == texts
            assert all(frame.compressed for frame, _ in got)
        # each event compressed once for the three (the answers are each client's own)
        compressed_events = [m for m in compressed if m.startswith(b'{"type":"progress"')]
        assert len(compressed_events) == len(texts)
    finally:
        for raw in clients:
            raw.close()


def test_recent_frames_keep_the_latest_events_and_know_a_reused_seq() -> None:
    recent = RecentFrames(2)
    first = recent.of("agent:a", 1, b'{"n":1}')
    assert recent.of("agent:a", 1, b'{"n":1}') is first
    recent.of("agent:a", 2, b'{"n":2}')
    recent.of("agent:a", 3, b'{"n":3}')
    assert recent.of("agent:a", 1, b'{"n":1}') is not first  # the oldest went
    again = recent.of("agent:a", 3, b'{"n":"after a reset"}')
    assert again.payload == b'{"n":"after a reset"}'
