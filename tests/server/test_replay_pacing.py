"""Replays paced per connection, across all its rooms; one stream per room; unsubscribe
stops a replay at once (docs/protocol.md, "Subscribing, and resuming without a gap").

Rooms are agent rooms (their snapshot is the agent's record) filled straight into the
event log; the agents' own status events may land in them too, so each room's seqs are
checked to be contiguous from 1, each once, rather than counted exactly.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vimax_nb.protocol import agent_room
from vimax_nb.server.hub import Hub, HubLimits
from vimax_nb.store import Store

from .conftest import vimax
from .ws_helpers import OP_CLOSE, OP_TEXT, Client, Frame, RawWebSocket

PAD = "x" * 500  # an event of about 600 bytes
ROOMS = [
    agent_room(name)
    for name in ("screenwriter", "character_extractor", "portrait_painter", "storyboard_artist")
]


async def fill(service: Any, rooms: list[str], count: int, first: int = 0) -> None:
    """Store ``count`` events ("tick <n>") in each room, through the log, and wait until
    they are all stored (and fanned out)."""
    log = service.store.events
    for i in range(first, first + count):
        for room in rooms:
            log.append_nowait(room, "progress", {"message": f"tick {i}", "details": {"pad": PAD}})
        if i % 200 == 0:
            await asyncio.sleep(0)
    await log.flush()


async def connect(jp_ws_fetch: Any) -> tuple[Client, dict[str, Any]]:
    client = Client(await jp_ws_fetch("vimax", "ws"))
    return client, await client.expect("welcome")


async def raw_connect(
    port: int, base_url: str, headers: dict[str, str], rcvbuf: int | None = 4096
) -> tuple[RawWebSocket, dict[str, Any]]:
    """A client on a bare socket, by default with a small receive buffer, and its
    ``welcome``: its kernel takes little for it, so the server's send queue is what holds
    its backlog."""
    raw = await RawWebSocket.connect(
        port, base_url.rstrip("/") + "/vimax/ws", headers, rcvbuf=rcvbuf
    )
    assert raw.status == 101
    first = await raw.read_frame()
    assert first is not None
    return raw, first.json()


async def raw_read_until(
    raw: RawWebSocket, done: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> list[dict[str, Any]]:
    """Text messages up to and including the first for which ``done`` is true; a close
    first fails with its code and reason."""
    messages: list[dict[str, Any]] = []
    while True:
        frame = await raw.read_frame(timeout)
        assert frame is not None, f"end of stream after {messages[-2:]}"
        if frame.opcode == OP_CLOSE:
            raise AssertionError(
                f"closed {frame.close_code} ({frame.close_reason}) after {len(messages)} "
                f"messages: {messages[-2:]}"
            )
        if frame.opcode != OP_TEXT:
            continue  # the server's pings
        messages.append(frame.json())
        if done(messages[-1]):
            return messages


def masked_text_frame(message: dict[str, Any]) -> bytes:
    """A client's text frame carrying ``message`` (masked with a zero key)."""
    payload = json.dumps(message).encode()
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def by_room(messages: list[dict[str, Any]]) -> dict[str, list[int]]:
    """The seqs of the events in ``messages``, per room, in the order they came."""
    seqs: dict[str, list[int]] = defaultdict(list)
    for message in messages:
        if "seq" in message:
            seqs[message["room"]].append(message["seq"])
    return seqs


def contiguous(seqs: list[int]) -> bool:
    return seqs == list(range(1, len(seqs) + 1))


async def hub_stats(jp_fetch: Any) -> dict[str, Any]:
    stats: dict[str, Any] = json.loads((await jp_fetch("vimax/ws/stats")).body)
    return stats


# -- many rooms at once --------------------------------------------------------------------


@vimax(send_queue_limit=16 * 1024)
async def test_a_client_that_reads_resumes_many_rooms_at_once_without_a_4008(
    jp_fetch: Any,
    jp_http_port: int,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    service: Any,
) -> None:
    # 4 rooms of 2,265 events, about 5.5 MB: 340 times the send queue limit
    await fill(service, ROOMS, 2265)
    raw, _ = await raw_connect(jp_http_port, jp_base_url, jp_auth_header)
    try:
        for room in ROOMS:  # all at once, before reading anything
            await raw.send_json({"type": "subscribe", "room": room, "after": 0, "id": room})
        tops: dict[str, int] = {}
        reached: set[str] = set()

        def all_read(message: dict[str, Any]) -> bool:
            if message["type"] == "subscribed":
                tops[message["room"]] = message["top"]
            elif message.get("seq") == tops.get(message.get("room", "")):
                reached.add(message["room"])
            return len(reached) == len(ROOMS)

        messages = await raw_read_until(raw, all_read, timeout=60)
        answers = [m for m in messages if m["type"] == "subscribed"]
        assert sorted(a["id"] for a in answers) == sorted(ROOMS)
        assert all(a["recovered"] for a in answers)
        seqs = by_room(messages)
        for room in ROOMS:
            assert tops[room] >= 2265
            assert contiguous(seqs[room]), room  # every event once, in order
            assert len(seqs[room]) >= tops[room]
        stats = await hub_stats(jp_fetch)
        assert stats["slow_consumer_closes"] == 0
        assert stats["connections"] == 1
    finally:
        raw.close()


@vimax(send_queue_limit=64 * 1024)
async def test_a_client_that_stops_reading_is_closed_by_the_live_events_held_for_it(
    jp_fetch: Any,
    jp_http_port: int,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    service: Any,
) -> None:
    await fill(service, ROOMS, 2265)
    raw, _ = await raw_connect(jp_http_port, jp_base_url, jp_auth_header)
    try:
        for room in ROOMS:
            await raw.send_json({"type": "subscribe", "room": room, "after": 0, "id": room})
        answered: set[str] = set()

        def all_answered(message: dict[str, Any]) -> bool:
            if message["type"] == "subscribed":
                answered.add(message["room"])
            return len(answered) == len(ROOMS)

        read = await raw_read_until(raw, all_answered)
        # From now on it reads nothing. Its replays stop once the kernel's buffers are
        # full and its send queue holds the window; the live events of its rooms are
        # held for it, never more than the hold limit (8 x 64 KiB), until they pass it
        # while its socket takes nothing.
        hold_limit = 8 * 64 * 1024
        held: list[int] = []
        for chunk in range(50):  # up to 12 MB of live events; the kernel takes a few
            await fill(service, ROOMS, 100, first=10_000 + 100 * chunk)
            stats = await hub_stats(jp_fetch)
            held.append(stats["held_bytes"])
            if stats["slow_consumer_closes"]:
                break
        assert stats["slow_consumer_closes"] == 1
        assert stats["connections"] == 0
        assert max(held) <= hold_limit

        frames: list[Frame] = []
        while (frame := await raw.read_frame()) is not None and frame.opcode != OP_CLOSE:
            frames.append(frame)
        assert frame is not None
        assert frame.close_code == 4008
        assert frame.close_reason.startswith(
            f"slow consumer: more than {hold_limit} bytes of live events waiting behind your replay"
        ), frame.close_reason
        # what it was sent before: each room's events contiguous from 1, far from all
        texts = read + [f.json() for f in frames if f.opcode == OP_TEXT]
        for room, seqs in by_room(texts).items():
            assert contiguous(seqs), room
            assert len(seqs) < 2265
    finally:
        raw.close()


# -- unsubscribe and subscribe again -------------------------------------------------------


@vimax(send_queue_limit=16 * 1024)
async def test_unsubscribe_stops_a_replay_at_once(
    jp_fetch: Any, jp_ws_fetch: Any, service: Any
) -> None:
    room = ROOMS[0]
    await fill(service, [room], 2265)
    client, _ = await connect(jp_ws_fetch)
    try:
        subscribed = await client.request(
            {"type": "subscribe", "room": room, "after": 0}, "subscribed"
        )
        top = subscribed["top"]
        await client.read_until(lambda m: m.get("seq") == 20)
        await client.send({"type": "unsubscribe", "room": room, "id": "u"})
        before = await client.read_until(lambda m: m["type"] == "unsubscribed")
        sent = by_room(before)[room]
        assert sent == list(range(21, 21 + len(sent)))
        assert 20 + len(sent) < top  # it was stopped in the middle
        # Subscribe again from the top: its answer is the next message (no event of the
        # stopped replay comes after ``unsubscribed``), then only what comes next.
        again = await client.request(
            {"type": "subscribe", "room": room, "after": top, "id": "s2"}, "subscribed"
        )
        assert again["recovered"] is True
        await fill(service, [room], 1, first=99_999)
        after = await client.read_until(lambda m: m.get("message") == "tick 99999")
        late = [m["seq"] for m in after if "seq" in m]
        assert late == list(range(again["top"] + 1, again["top"] + 1 + len(late))), late[:10]
        assert min(late) > top
    finally:
        client.close()


async def test_two_subscribes_of_a_room_arriving_together_replay_it_once(
    jp_fetch: Any,
    jp_http_port: int,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    service: Any,
) -> None:
    room = ROOMS[0]
    await fill(service, [room], 2265)
    raw, _ = await raw_connect(jp_http_port, jp_base_url, jp_auth_header, rcvbuf=None)
    try:
        # one write: the server reads both before it has sent anything of the room
        await asyncio.get_running_loop().sock_sendall(
            raw.sock,
            b"".join(
                masked_text_frame({"type": "subscribe", "room": room, "after": 0, "id": i})
                for i in ("s1", "s2")
            ),
        )
        answers: list[dict[str, Any]] = []

        def replayed(message: dict[str, Any]) -> bool:
            if message["type"] == "subscribed":
                answers.append(message)
            return len(answers) == 2 and message.get("seq") == answers[0]["top"]

        messages = await raw_read_until(raw, replayed)
        # nothing of a second replay after it: the next answer comes with live events only
        await raw.send_json({"type": "ping", "ts": 1})
        messages += await raw_read_until(raw, lambda m: m["type"] == "pong")
        assert [a["id"] for a in answers] == ["s1", "s2"]
        # the second finds the room's stream where it asks to start: the same answer, and
        # the stream goes on
        assert [(a["recovered"], a["top"]) for a in answers] == [(True, answers[0]["top"])] * 2
        assert answers[1]["snapshot"]["name"] == "screenwriter"
        seqs = by_room(messages)[room]
        assert contiguous(seqs), seqs[:20]  # 2,265 events once each, not twice interleaved
        assert len(seqs) >= answers[0]["top"] >= 2265
    finally:
        raw.close()


@vimax(send_queue_limit=16 * 1024)
async def test_subscribing_again_from_further_back_restarts_the_stream(
    jp_fetch: Any, jp_ws_fetch: Any, service: Any
) -> None:
    room = ROOMS[0]
    await fill(service, [room], 2265)
    client, _ = await connect(jp_ws_fetch)
    try:
        first = await client.request({"type": "subscribe", "room": room, "after": 0}, "subscribed")
        await client.read_until(lambda m: m.get("seq") == 100)
        await client.send({"type": "subscribe", "room": room, "after": 50, "id": "back"})
        await client.read_until(lambda m: m["type"] == "subscribed")
        assert client.frames[-1]["id"] == "back"
        assert client.frames[-1]["recovered"] is True
        top = client.frames[-1]["top"]
        assert top >= first["top"]
        # After the answer: 51, 52, ... in order, the replay that was running stopped
        # (no page of it interleaved), then live events.
        events = await client.read_until(lambda m: m.get("seq") == top)
        seqs = by_room(events)[room]
        assert seqs == list(range(51, top + 1)), seqs[:20]
    finally:
        client.close()


# -- in the process: live events let go during a long replay -------------------------------


class PacedSocket:
    """A frame writer whose socket takes the bytes written to it only when told to
    (:meth:`take`): a client that reads at the pace the test sets."""

    remote = "in-process"

    def __init__(self) -> None:
        self.waiting: deque[tuple[asyncio.Future[None], bytes]] = deque()
        self.taken = bytearray()
        self.closes: list[tuple[int, str]] = []
        self._wrote: asyncio.Future[None] | None = None

    def deflate(self) -> None:
        return None

    def write_frames(self, data: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((future, data))
        if self._wrote is not None and not self._wrote.done():
            self._wrote.set_result(None)
        return future

    def close_with(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))

    def take(self) -> None:
        """The client reads everything written so far."""
        while self.waiting:
            future, data = self.waiting.popleft()
            self.taken += data
            future.set_result(None)

    async def next_write(self) -> None:
        """Return at the next write."""
        self._wrote = asyncio.get_running_loop().create_future()
        await asyncio.wait_for(self._wrote, 10)

    def messages(self) -> list[dict[str, Any]]:
        """The text frames taken, decoded."""
        data, messages, at = bytes(self.taken), [], 0
        while at < len(data):
            assert data[at] == 0x81, data[at : at + 8]
            length, at = data[at + 1], at + 2
            if length == 126:
                length, at = struct.unpack("!H", data[at : at + 2])[0], at + 2
            elif length == 127:
                length, at = struct.unpack("!Q", data[at : at + 8])[0], at + 8
            messages.append(json.loads(data[at : at + length]))
            at += length
        return messages


async def test_live_events_held_past_the_limit_are_read_back_from_the_log_for_a_reader(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "s.db")
    try:
        log = store.events
        hub = Hub(HubLimits(send_queue_limit=8192))  # a window of 4 KiB, 64 KiB held
        hub.bind(log)
        room = "workflow:w1"
        for i in range(1000):  # about 600 KB to replay
            log.append_nowait(room, "progress", {"message": f"tick {i}", "pad": PAD})
        await log.flush()
        socket = PacedSocket()
        connection = hub.register(socket, "tester")
        answers: list[tuple[bool, int]] = []
        subscribing = asyncio.ensure_future(
            hub.subscribe(connection, room, None, None, lambda *answer: answers.append(answer))
        )
        held = []
        # The client takes one window's worth a turn; 3 live events (2 KB) come in each:
        # it reads faster than they come, but the replay is far behind them.
        for i in range(1000, 1300):
            for j in range(3):
                log.append_nowait(room, "progress", {"message": f"live {i}.{j}", "pad": PAD})
            await log.flush()
            held.append(connection.held_bytes)
            socket.take()
            if not connection.rooms[room].live:  # caught up, it is written to on events
                await socket.next_write()
        while not connection.rooms[room].live:
            socket.take()
            await socket.next_write()
        await asyncio.wait_for(subscribing, 10)
        while connection.pending_bytes:  # the last live events are not written yet
            await socket.next_write()
        socket.take()

        assert socket.closes == []
        assert answers == [(True, 1000)]
        seqs = [m["seq"] for m in socket.messages()]
        assert seqs == list(range(1, 1000 + 900 + 1))  # every event once, in order
        assert max(held) <= hub.limits.hold_limit
        stats = hub.stats()
        assert stats["held_let_go"] >= 2
        assert (stats["slow_consumer_closes"], stats["held_bytes"]) == (0, 0)
    finally:
        await store.close()
