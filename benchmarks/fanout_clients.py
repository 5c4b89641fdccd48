"""The subscribers of ``fanout.py``, in a process of their own.

Opens ``--clients`` WebSocket connections to ``--ws-url`` (``Authorization: token``
header; no ``permessage-deflate`` offered, so the server's frames are written once
and sent as they are), subscribes each to ``--room`` after ``--after``, waits until
every one is ``subscribed``, then runs the phases: one latency phase (``--rate``
events a second for ``--seconds``) and ``--repeat`` throughput phases (``--events``
events emitted as fast as the server can), each triggered with
``POST <--http-url>/emit``. Each client counts its events, checks that their seqs
are contiguous with no duplicate, and records the emit-to-receipt latency (the time
of receipt less the emit time in the event's message) of every ``--sample``-th one.
Prints one JSON line with the figures of every phase, this process's CPU use among them.

Two client implementations (``--impl``):

- ``raw`` (default): the handshake is written by hand with ``websockets.utils``'s
  key functions, the client's frames are made by ``websockets.frames.Frame``, and
  the server's frames are parsed by a few lines of byte slicing in an
  ``asyncio.Protocol``, with one clock reading per socket read;
- ``websockets``: ``websockets.asyncio.client.connect(compression=None)`` and
  ``recv()`` per message, the ordinary client.

On the 2-core machine against the bare server, ``raw`` costs about 12 us of client
CPU a message in a burst and 26 us at 200 events/s (one message per read, so mostly
the system calls); ``websockets`` about 14 us and 38 us, and its own queueing raised
the measured p99 at 200 events/s from about 4 ms to 15 ms: the clients would have
been measured instead of the server.

After a close (4008 slow consumer, among others) a client reconnects and resumes
from its last seq, as the protocol asks; the closes are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from fanout_common import emit_time_of
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.utils import accept_key, generate_key

EVENT_PREFIX = b'{"type":"progress"'
SEQ_KEY = b'"seq":'


MAX_RECONNECTS = 20  # per client, over the whole run
RECONNECT_DELAY = 0.1  # seconds before a reconnection, growing with each


@dataclass(slots=True)
class Tally:
    """One client's view: its events, their order, their latency samples."""

    index: int
    sample: int
    last_seq: int = 0
    count: int = 0
    target: int = 0
    gaps: int = 0
    duplicates: int = 0
    bad_events: int = 0
    last_receipt: float = 0.0
    latencies: list[float] = field(default_factory=list)
    closes: list[int] = field(default_factory=list)
    unrecovered: int = 0
    errors: list[str] = field(default_factory=list)
    welcome: asyncio.Future[dict[str, Any]] | None = None
    subscribed: asyncio.Future[dict[str, Any]] | None = None
    done: asyncio.Future[None] | None = None
    on_close: Any = None  # called with the close code
    after: int | None = None  # of the subscribe request last sent

    def start_phase(self, target: int) -> None:
        self.count = 0
        self.target = target
        self.latencies = []
        self.closes = []
        self.gaps = self.duplicates = self.bad_events = self.unrecovered = 0
        self.done = asyncio.get_running_loop().create_future()

    def finish(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def on_text(self, payload: bytes, now: float) -> None:
        """One text message from the server, received at ``now``."""
        if payload.startswith(EVENT_PREFIX):
            at = payload.find(SEQ_KEY) + len(SEQ_KEY)
            seq = int(payload[at : payload.find(b",", at)])
            last = self.last_seq
            if seq != last + 1:
                if seq <= last:
                    self.duplicates += 1
                else:
                    self.gaps += 1
                if len(self.errors) < 5:
                    self.errors.append(f"seq {seq} after {last} (count {self.count})")
            self.last_seq = seq
            self.count += 1
            self.last_receipt = now
            if self.count % self.sample == 1 or self.sample == 1:
                emitted = emit_time_of(json.loads(payload).get("message"))
                if emitted is not None:
                    self.latencies.append(now - emitted)
                else:
                    self.bad_events += 1
            if self.count == self.target:
                self.finish()
            return
        message = json.loads(payload)
        kind = message.get("type")
        if kind == "welcome" and self.welcome is not None and not self.welcome.done():
            self.welcome.set_result(message)
        elif kind == "subscribed" and self.subscribed is not None and not self.subscribed.done():
            # Set here, not where the answer is awaited: the replayed events may be in the
            # same read as the answer, and are counted before that await resumes.
            top = int(message.get("top") or 0)
            if self.after is None:
                self.last_seq = top  # live events follow the top
            elif message.get("recovered", True):
                self.last_seq = self.after  # the replay follows from after + 1
            else:
                self.unrecovered += 1
                self.last_seq = top
            self.subscribed.set_result(message)
        elif kind == "error":
            self.errors.append(str(message.get("message")))
            if self.subscribed is not None and not self.subscribed.done():
                self.subscribed.set_exception(RuntimeError(f"subscribe failed: {message}"))

    def closed(self, code: int | None) -> None:
        code = code if code is not None else 1006
        self.closes.append(code)
        for future in (self.welcome, self.subscribed):
            if future is not None and not future.done():
                future.set_exception(ConnectionError(f"closed with {code}"))
        if self.on_close is not None:
            self.on_close(code)


# -- the raw client -------------------------------------------------------------------


class RawClient(asyncio.Protocol):
    """A WebSocket client reduced to what the benchmark needs (server frames are
    unmasked and unfragmented; no extension is negotiated)."""

    def __init__(self, tally: Tally, host: str, path: str, token: str) -> None:
        self.tally = tally
        self.key = generate_key()
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: token {token}\r\n\r\n"
        ).encode()
        self.transport: asyncio.Transport | None = None
        self.opened = False
        self.ended = False
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def send_text(self, text: str) -> None:
        assert self.transport is not None
        self.transport.write(Frame(Opcode.TEXT, text.encode()).serialize(mask=True))

    def _end(self, code: int | None) -> None:
        if not self.ended:
            self.ended = True
            self.tally.closed(code)

    def close(self) -> None:
        self.ended = True  # a close of ours is not the server's
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):
                self.transport.write(
                    Frame(Opcode.CLOSE, (1000).to_bytes(2, "big")).serialize(mask=True)
                )
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(None)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer + data if self.buffer else data
        if not self.opened:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            lines = buffer[:end].decode("latin-1").split("\r\n")
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)
            }
            if not lines[0].startswith("HTTP/1.1 101") or headers.get(
                "sec-websocket-accept"
            ) != accept_key(self.key):
                self.tally.errors.append(f"handshake refused: {lines[0]}")
                self._end(1002)
                assert self.transport is not None
                self.transport.close()
                return
            if "sec-websocket-extensions" in headers:
                self.tally.errors.append("an extension was negotiated; none was offered")
            self.opened = True
            buffer = buffer[end + 4 :]
        on_text = self.tally.on_text
        size = len(buffer)
        pos = 0
        while size - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            length = second & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > size:
                break
            payload = buffer[pos + head : end]
            pos = end
            opcode = first & 0x0F
            if opcode == 1 and first & 0x80 and not second & 0x80:
                on_text(payload, now)
            elif opcode == 9:  # ping: answer pong
                assert self.transport is not None
                self.transport.write(Frame(Opcode.PONG, payload).serialize(mask=True))
            elif opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._end(code)
                self.close()
                return
            elif opcode != 10:
                self.tally.errors.append(f"unexpected frame {first:#x} {second:#x}")
        self.buffer = buffer[pos:]


# -- the websockets client -----------------------------------------------------------


async def _websockets_reader(ws: ClientConnection, tally: Tally) -> None:
    try:
        while True:
            payload = await ws.recv(decode=False)
            tally.on_text(payload, time.time())
    except ConnectionClosed as exc:
        tally.closed(exc.rcvd.code if exc.rcvd is not None else None)


class Subscriber:
    """One subscriber: connects, subscribes, and after a close (4008 among others)
    reconnects and resumes from its last seq, as the protocol asks of clients."""

    def __init__(self, tally: Tally, options: Options, gate: asyncio.Semaphore) -> None:
        self.tally = tally
        self.options = options
        self.gate = gate
        self.epoch: str | None = None
        self.reconnects = 0
        self.stopping = False
        self._close: Any = None
        self._send: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        tally.on_close = self._closed

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def connect(self, after: int | None) -> None:
        """Open, wait for ``welcome``, subscribe after ``after``, wait for ``subscribed``."""
        options, tally = self.options, self.tally
        loop = asyncio.get_running_loop()
        tally.welcome = loop.create_future()
        tally.subscribed = loop.create_future()
        url = urllib.parse.urlsplit(options.ws_url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        async with self.gate:
            if options.impl == "raw":
                _, protocol = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: RawClient(tally, f"{host}:{port}", url.path, options.token),
                        host,
                        port,
                    ),
                    30,
                )
                self._close, self._send = protocol.close, protocol.send_text
            else:
                ws = await connect(
                    options.ws_url,
                    compression=None,
                    additional_headers={"Authorization": f"token {options.token}"},
                    max_size=None,
                    ping_interval=None,
                    open_timeout=30,
                )
                if ws.response is not None and "Sec-WebSocket-Extensions" in ws.response.headers:
                    tally.errors.append("an extension was negotiated; none was offered")
                self._spawn(_websockets_reader(ws, tally))
                self._close = ws.close
                self._send = lambda text: self._spawn(ws.send(text))
            welcome = await asyncio.wait_for(asyncio.shield(tally.welcome), 30)
        self.epoch = welcome.get("epoch") or self.epoch
        request: dict[str, Any] = {"type": "subscribe", "room": options.room, "after": after}
        if self.epoch is not None and after:
            request["epoch"] = self.epoch
        tally.after = after
        self._send(json.dumps(request))
        await asyncio.wait_for(asyncio.shield(tally.subscribed), 60)

    def _closed(self, code: int) -> None:
        if self.stopping:
            return
        if self.reconnects >= MAX_RECONNECTS:
            self.tally.errors.append(f"gave up after {MAX_RECONNECTS} reconnections")
            self.tally.finish()
            return
        self.reconnects += 1
        self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        await asyncio.sleep(RECONNECT_DELAY * self.reconnects)
        if self.stopping:
            return
        try:
            await self.connect(self.tally.last_seq)
        except Exception as exc:  # its close triggered the next attempt, or it failed
            self.tally.errors.append(f"reconnection failed: {exc!r}"[:200])
            if not self.tally.closes or self.reconnects >= MAX_RECONNECTS:
                self.tally.finish()

    async def stop(self) -> None:
        self.stopping = True
        if self._close is not None:
            with contextlib.suppress(Exception):
                outcome = self._close()
                if asyncio.iscoroutine(outcome):
                    await asyncio.wait_for(outcome, 5)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# -- the run ----------------------------------------------------------------------------


@dataclass
class Options:
    ws_url: str
    http_url: str
    token: str
    room: str
    after: int | None
    workflow: str
    clients: int
    events: int
    repeat: int
    rate: float
    seconds: float
    sample: int
    impl: str
    profile: str | None


def http(options: Options, method: str, path: str, timeout: float, **query: Any) -> Any:
    """A request to the server's benchmark endpoints; the decoded JSON answer."""
    url = f"{options.http_url}/{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(
        url,
        method=method,
        data=b"" if method == "POST" else None,
        headers={"Authorization": f"token {options.token}"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def run(options: Options) -> dict[str, Any]:
    tallies = [Tally(i, options.sample) for i in range(options.clients)]
    gate = asyncio.Semaphore(20)
    subscribers = [Subscriber(t, options, gate) for t in tallies]
    results: dict[str, Any] = {"impl": options.impl, "clients": options.clients, "phases": []}
    try:
        started = time.time()
        await asyncio.wait_for(asyncio.gather(*(s.connect(options.after) for s in subscribers)), 90)
        results["connect_seconds"] = time.time() - started
        # The paced phase first: its latency is then measured in a steady state, not in
        # the wake of a burst (heap grown, connections resuming after a 4008).
        phases = [("latency", round(options.rate * options.seconds), options.rate)]
        phases += [("throughput", options.events, 0.0)] * options.repeat
        if options.profile == "fast":  # an extra phase under cProfile, not counted
            phases.insert(0, ("profiled", options.events, 0.0))
        elif options.profile == "paced":
            phases.insert(0, ("profiled", phases[0][1], options.rate))
        for name, count, rate in phases:
            results["phases"].append(
                await run_phase(options, tallies, name, count, rate, profile=name == "profiled")
            )
            results["phases"][-1]["reconnects_so_far"] = sum(s.reconnects for s in subscribers)
    finally:
        await asyncio.gather(*(s.stop() for s in subscribers), return_exceptions=True)
    results["errors"] = sorted({e for t in tallies for e in t.errors})[:10]
    return results


async def run_phase(
    options: Options, tallies: list[Tally], name: str, count: int, rate: float, *, profile: bool
) -> dict[str, Any]:
    for tally in tallies:
        tally.start_phase(count)
    before = await asyncio.to_thread(http, options, "GET", "stats", 30)
    if profile:
        await asyncio.to_thread(http, options, "POST", "profile", 30, action="start")
    cpu0, wall0 = time.process_time(), time.time()
    # bounded: the paced phase's length, or the fast phase at 10,000 deliveries/s, + 30 s
    deadline = (count / rate if rate > 0 else count * len(tallies) / 10_000) + 30
    emit = asyncio.ensure_future(
        asyncio.to_thread(
            http,
            options,
            "POST",
            "emit",
            deadline,
            count=count,
            rate=rate,
            workflow=options.workflow,
        )
    )
    waiting = [t.done for t in tallies if t.done is not None]
    _, pending = await asyncio.wait(waiting, timeout=deadline)
    wall1 = time.time()
    cpu1 = time.process_time()
    emitted = await asyncio.wait_for(emit, 30)
    if profile:
        await asyncio.to_thread(http, options, "POST", "profile", 30, action="stop")
    after = await asyncio.to_thread(http, options, "GET", "stats", 30)
    deliveries = sum(t.count for t in tallies)
    last_receipt = max((t.last_receipt for t in tallies if t.count), default=wall1)
    span = max(last_receipt - emitted["first_emit"], 1e-9)
    latencies = [x for t in tallies for x in t.latencies]
    server_cpu = after["process_cpu"] - before["process_cpu"]
    loop_cpu = after["loop_cpu"] - before["loop_cpu"]
    server_deliveries = after["deliveries"] - before["deliveries"]
    return {
        "phase": name,
        "events": count,
        "rate": rate,
        "deliveries": deliveries,
        "expected": count * len(tallies),
        "incomplete_clients": len(pending),
        "seconds": span,
        "deliveries_per_second": deliveries / span,
        "emit_seconds": emitted["last_emit"] - emitted["first_emit"],
        "worst_pacing_lag_ms": emitted["worst_lag"] * 1000,
        "latency_samples": len(latencies),
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
        "gaps": sum(t.gaps for t in tallies),
        "duplicates": sum(t.duplicates for t in tallies),
        "bad_events": sum(t.bad_events for t in tallies),
        "closed": sorted({code for t in tallies for code in t.closes}),
        "closes": sum(len(t.closes) for t in tallies),
        "unrecovered": sum(t.unrecovered for t in tallies),
        "clients_cpu": (cpu1 - cpu0) / max(wall1 - wall0, 1e-9),
        "clients_cpu_us_per_message": (cpu1 - cpu0) / max(deliveries, 1) * 1e6,
        "server_cpu": server_cpu / span,
        "server_loop_cpu": loop_cpu / span,
        "server_cpu_us_per_delivery": server_cpu / max(server_deliveries, 1) * 1e6,
        "server_loop_us_per_delivery": loop_cpu / max(server_deliveries, 1) * 1e6,
        "server_deliveries": server_deliveries,
        "slow_consumer_closes": after["slow_consumer_closes"] - before["slow_consumer_closes"],
        "pacing_p99_lag_ms": emitted["p99_lag"] * 1000,
        "worst_pacing_lag_at": emitted["worst_lag_at"],
        "server_gc": {k: v for k, v in after.items() if k.startswith("gc_")},
        "server_log": after.get("log"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ws-url", required=True)
    parser.add_argument("--http-url", required=True, help="the base of emit, stats, profile")
    parser.add_argument("--token", default="")
    parser.add_argument("--room", required=True)
    parser.add_argument("--after", type=int, default=None)
    parser.add_argument("--workflow", default="")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sample", type=int, default=10)
    parser.add_argument("--impl", choices=["raw", "websockets"], default="raw")
    parser.add_argument(
        "--profile", choices=["fast", "paced"], help="add a phase like it under cProfile"
    )
    args = parser.parse_args()
    options = Options(**vars(args))
    results = asyncio.run(run(options))
    sys.stdout.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
