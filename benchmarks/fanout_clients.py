"""The subscribers of ``fanout.py``, in a process of their own.

Opens ``--clients`` WebSocket connections to ``--ws-url`` (``Authorization: token``
header; no ``permessage-deflate`` offered, so the server's frames are written once
and sent as they are), subscribes each to ``--room`` after ``--after``, waits until
every one is ``subscribed``, then runs the phases: ``--repeat`` throughput phases
(``--events`` events emitted as fast as the server can) and one latency phase
(``--rate`` events a second for ``--seconds``), each triggered with
``POST <--http-url>/emit``. Each client counts its events, checks that their seqs
are contiguous with no duplicate, and records the emit-to-receipt latency
(``time.time() - details.emitted_at``) of every ``--sample``-th one. Prints one JSON
line with the figures of every phase, this process's CPU use among them.

Two client implementations (``--impl``):

- ``raw`` (default): the handshake is written by hand with ``websockets.utils``'s
  key functions, the client's frames are made by ``websockets.frames.Frame``, and
  the server's frames are parsed by a few lines of byte slicing in an
  ``asyncio.Protocol``: about 3 µs of client CPU a message, so that one process can
  take 100,000 messages a second and the server is what is measured;
- ``websockets``: ``websockets.asyncio.client.connect(compression=None)`` and
  ``recv()`` per message, the ordinary client (about 4 times the CPU a message).
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

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.utils import accept_key, generate_key

EVENT_PREFIX = b'{"type":"progress"'
SEQ_KEY = b'"seq":'


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
    close_code: int | None = None
    errors: list[str] = field(default_factory=list)
    welcome: asyncio.Future[dict[str, Any]] | None = None
    subscribed: asyncio.Future[dict[str, Any]] | None = None
    done: asyncio.Future[None] | None = None

    def start_phase(self, target: int) -> None:
        self.count = 0
        self.target = target
        self.latencies = []
        self.done = asyncio.get_running_loop().create_future()
        if self.close_code is not None:
            self.done.set_result(None)

    def on_text(self, payload: bytes, now: float) -> None:
        """One text message from the server, received at ``now``."""
        if payload.startswith(EVENT_PREFIX):
            at = payload.find(SEQ_KEY) + len(SEQ_KEY)
            seq = int(payload[at : payload.find(b",", at)])
            last = self.last_seq
            if last and seq != last + 1:
                if seq <= last:
                    self.duplicates += 1
                else:
                    self.gaps += 1
            self.last_seq = seq
            self.count += 1
            self.last_receipt = now
            if self.count % self.sample == 1 or self.sample == 1:
                details = json.loads(payload).get("details") or {}
                if "emitted_at" in details:
                    self.latencies.append(now - details["emitted_at"])
                else:
                    self.bad_events += 1
            if self.count == self.target and self.done is not None and not self.done.done():
                self.done.set_result(None)
            return
        message = json.loads(payload)
        kind = message.get("type")
        if kind == "welcome" and self.welcome is not None and not self.welcome.done():
            self.welcome.set_result(message)
        elif kind == "subscribed" and self.subscribed is not None and not self.subscribed.done():
            self.last_seq = int(message.get("top") or 0)  # live events follow from top + 1
            self.subscribed.set_result(message)
        elif kind == "error":
            self.errors.append(str(message.get("message")))
            if self.subscribed is not None and not self.subscribed.done():
                self.subscribed.set_exception(RuntimeError(f"subscribe failed: {message}"))

    def closed(self, code: int | None) -> None:
        self.close_code = code if code is not None else 1006
        for future in (self.welcome, self.subscribed):
            if future is not None and not future.done():
                future.set_exception(ConnectionError(f"closed with {self.close_code}"))
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


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
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def send_text(self, text: str) -> None:
        assert self.transport is not None
        self.transport.write(Frame(Opcode.TEXT, text.encode()).serialize(mask=True))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):
                self.transport.write(
                    Frame(Opcode.CLOSE, (1000).to_bytes(2, "big")).serialize(mask=True)
                )
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.tally.close_code is None:
            self.tally.closed(None)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer + data if self.buffer else data
        if not self.opened:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            head = buffer[:end].decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head)}
            if not head[0].startswith("HTTP/1.1 101") or headers.get(
                "sec-websocket-accept"
            ) != accept_key(self.key):
                self.tally.errors.append(f"handshake refused: {head[0]}")
                self.tally.closed(1002)
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
                self.tally.closed(code)
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
    profile: bool


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
    loop = asyncio.get_running_loop()
    tallies = [Tally(i, options.sample) for i in range(options.clients)]
    closers: list[Any] = []
    readers: list[asyncio.Task[None]] = []
    url = urllib.parse.urlsplit(options.ws_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    gate = asyncio.Semaphore(20)
    senders: list[Any] = []

    async def open_one(tally: Tally) -> None:
        tally.welcome = loop.create_future()
        tally.subscribed = loop.create_future()
        async with gate:
            if options.impl == "raw":
                _, protocol = await loop.create_connection(
                    lambda: RawClient(tally, f"{host}:{port}", url.path, options.token), host, port
                )
                closers.append(protocol.close)
                senders.append(protocol.send_text)
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
                closers.append(ws.close)
                readers.append(asyncio.ensure_future(_websockets_reader(ws, tally)))

                def send(text: str, ws: ClientConnection = ws) -> None:
                    readers.append(asyncio.ensure_future(ws.send(text)))

                senders.append(send)
            await asyncio.wait_for(asyncio.shield(tally.welcome), 30)

    results: dict[str, Any] = {"impl": options.impl, "clients": options.clients, "phases": []}
    try:
        started = time.time()
        await asyncio.wait_for(asyncio.gather(*(open_one(t) for t in tallies)), 60)
        subscribe = json.dumps({"type": "subscribe", "room": options.room, "after": options.after})
        for send in senders:
            send(subscribe)
        answers = await asyncio.wait_for(
            asyncio.gather(*(t.subscribed for t in tallies if t.subscribed is not None)), 60
        )
        results["connect_seconds"] = time.time() - started
        results["subscribed_top"] = sorted({a.get("top") for a in answers})
        phases = [("throughput", options.events, 0.0)] * options.repeat
        phases.append(("latency", round(options.rate * options.seconds), options.rate))
        for number, (name, count, rate) in enumerate(phases):
            profile = options.profile and number == 0
            results["phases"].append(
                await run_phase(options, tallies, name, count, rate, profile=profile)
            )
    finally:
        for close in closers:
            with contextlib.suppress(Exception):
                outcome = close()
                if asyncio.iscoroutine(outcome):
                    await asyncio.wait_for(outcome, 5)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
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
    deadline = (count / rate if rate > 0 else count / 2000) + 30
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
        "closed": sorted({t.close_code for t in tallies if t.close_code is not None}),
        "clients_cpu": (cpu1 - cpu0) / max(wall1 - wall0, 1e-9),
        "clients_cpu_us_per_message": (cpu1 - cpu0) / max(deliveries, 1) * 1e6,
        "server_cpu": server_cpu / span,
        "server_loop_cpu": loop_cpu / span,
        "server_cpu_us_per_delivery": server_cpu / max(server_deliveries, 1) * 1e6,
        "server_loop_us_per_delivery": loop_cpu / max(server_deliveries, 1) * 1e6,
        "server_deliveries": server_deliveries,
        "slow_consumer_closes": after["slow_consumer_closes"] - before["slow_consumer_closes"],
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
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    options = Options(**vars(args))
    results = asyncio.run(run(options))
    sys.stdout.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
