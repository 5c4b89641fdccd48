"""How many events a second one ``vimax_nb.client.ClientConnection`` (a kernel's) takes in.

A stand-in server in a process of its own (``websockets.asyncio.server``) speaks the
hub's protocol for one workflow room: ``welcome``, ``subscribed``, then progress events
of a real run's size (about 800 bytes, each stamped with the time it was sent), written
with ``broadcast`` so the server is never what is measured. Phases, each on a fresh
connection:

- burst: ``--events`` events as fast as the server writes them: events/s from the
  first receipt to the last, and the client process's CPU time per event (the
  connection's thread does all the work; the main thread only waits);
- paced: ``--rates`` events/s for ``--seconds`` each: the lag (receipt time less the
  event's send time) at p50 and p99, and whether it grew from the first half of the
  phase to the second, which is what a queue that grows looks like. The ceiling is the
  highest rate the client keeps up with, and every lower one: p99 lag under 50 ms and
  not growing (a rate the stand-in server could not send is ``not reached``).

``--compression deflate`` has the server agree to permessage-deflate as the hub does
(no context takeover either way) and the client offer it (``SocketOptions(
compression="deflate")``); ``none`` (the default on loopback) sends plain frames.
Every event reaches the subscription's callback (``Run`` and the widgets sit behind
it), which counts it and checks its seq.

Run: ``python benchmarks/client_ceiling.py [--events 50000] [--rates 2000,5000,10000,
20000,40000] [--seconds 3] [--compression none|deflate|both]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from _table import print_table

ROOM = "workflow:0123456789ab"
CEILING_P99_MS = 50.0
TARGET_EVENTS_PER_S = 10_000  # a burst a kernel should swallow without its queue growing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def event_text(seq: int, sent: float) -> str:
    """A progress event as the hub sends it (a default run's are about 800 bytes)."""
    stage = ("story", "characters", "script", "storyboard", "frames", "clips")[seq % 6]
    return json.dumps(
        {
            "type": "progress",
            "room": ROOM,
            "seq": seq,
            "timestamp": "2026-12-06T02:00:00.000Z",
            "workflow_id": "0123456789ab",
            "state": "running",
            "progress": round((seq % 1000) / 1000, 4),
            "stage": stage,
            "stage_index": seq % 6,
            "total_stages": 6,
            "message": f"{stage}: {seq % 30}/30 done (sent {sent:.6f})",
            "details": {
                "event": "task_completed",
                "task": f"{stage}/shot-{seq % 30}",
                "agent": f"{stage}_artist",
                "stages": [
                    {"name": name, "done": 30, "total": 30}
                    for name in ("story", "characters", "script", "storyboard", "frames")
                ],
                "artifact": f"frames/scene-1/shot-{seq % 30}.png",
            },
        },
        separators=(",", ":"),
    )


# -- the stand-in server (its own process) ----------------------------------------------


def serve(port: int, deflate: bool, ready: Any) -> None:
    asyncio.run(_serve(port, deflate, ready))


async def _serve(port: int, deflate: bool, ready: Any) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast
    from websockets.asyncio.server import serve as ws_serve
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

    async def handler(ws: ServerConnection) -> None:
        await ws.send(
            json.dumps(
                {"type": "welcome", "client_id": "c1", "epoch": "e1", "heartbeat_interval": 30}
            )
        )
        request = json.loads(await ws.recv())
        await ws.send(
            json.dumps(
                {
                    "type": "subscribed",
                    "room": request["room"],
                    "recovered": True,
                    "top": 0,
                    "id": request.get("id"),
                }
            )
        )
        # the phase is in the path the client was given: /<count>/<rate>/vimax/ws
        count, rate = ws.request.path.strip("/").split("/")[:2]
        await send_events(ws, int(count), float(rate), broadcast)
        await ws.wait_closed()

    extensions = (
        [
            ServerPerMessageDeflateFactory(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                compress_settings={"memLevel": 3},
            )
        ]
        if deflate
        else None
    )
    async with ws_serve(
        handler, "127.0.0.1", port, compression=None, extensions=extensions, max_queue=None
    ):
        ready.set()
        await asyncio.Future()


async def send_events(ws: Any, count: int, rate: float, broadcast: Any) -> None:
    """``count`` events at ``rate`` a second (0: as fast as they can be written)."""
    start = time.perf_counter()
    batch = 50 if rate == 0 else max(1, int(rate / 1000))  # one write a millisecond
    for first in range(1, count + 1, batch):
        now = time.time()
        last = min(first + batch, count + 1) - 1
        for seq in range(first, last):
            broadcast([ws], event_text(seq, now))
        await ws.send(event_text(last, now))  # waits while the socket's buffer is full
        if rate:
            due = start + (first + batch - 1) / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)


# -- the client (this process) ----------------------------------------------------------


@dataclass
class Received:
    """What the subscription's callback saw."""

    expected: int
    seqs_ok: bool = True
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    lags: list[float] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def __call__(self, event: Any) -> None:
        now = time.time()
        self.count += 1
        if event.seq != self.count:
            self.seqs_ok = False
        if self.count == 1:
            self.first = now
        self.last = now
        sent = float(event.message.rsplit("(sent ", 1)[1][:-1])
        self.lags.append(now - sent)
        if self.count >= self.expected:
            self.done.set()


def run_phase(port: int, deflate: bool, count: int, rate: float) -> dict[str, Any]:
    from vimax_nb.client import ClientConnection, SocketOptions

    received = Received(count)
    options = SocketOptions(compression="deflate" if deflate else "none")
    conn = ClientConnection(f"http://127.0.0.1:{port}/{count}/{rate}", None, options)
    cpu = time.process_time()
    conn.subscribe(ROOM, received)
    finished = received.done.wait(60 + count / max(rate, 1000))
    cpu = time.process_time() - cpu
    conn.close()
    if not finished:
        raise RuntimeError(f"only {received.count} of {count} events arrived")
    lags = sorted(received.lags)
    half = len(received.lags) // 2
    return {
        "events": received.count,
        "in_order": received.seqs_ok,
        "events_per_s": received.count / max(received.last - received.first, 1e-9),
        "cpu_us": cpu / received.count * 1e6,
        "p50_ms": lags[len(lags) // 2] * 1e3,
        "p99_ms": lags[int(len(lags) * 0.99)] * 1e3,
        "first_half_ms": statistics.mean(received.lags[:half]) * 1e3,
        "second_half_ms": statistics.mean(received.lags[half:]) * 1e3,
    }


def verdict(result: dict[str, Any], rate: float) -> str:
    """``keeps up``, ``falls behind``, or ``not reached`` (the stand-in server sent
    under 95 % of the rate: nothing is known of the client at it)."""
    if result["events_per_s"] < 0.95 * rate:
        return "not reached"
    growing = result["second_half_ms"] > 2 * result["first_half_ms"] + 5
    return "keeps up" if result["p99_ms"] <= CEILING_P99_MS and not growing else "falls behind"


def measure(deflate: bool, args: argparse.Namespace) -> list[list[str]]:
    port = free_port()
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    server = context.Process(target=serve, args=(port, deflate, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the stand-in server did not start")
        label = "deflate" if deflate else "none"
        rows = []
        burst = max(
            (run_phase(port, deflate, args.events, 0) for _ in range(args.repeat)),
            key=lambda r: r["events_per_s"],
        )
        rows.append(
            [
                label,
                "burst",
                f"{burst['events_per_s']:,.0f}",
                f"{burst['cpu_us']:.1f}",
                "-",
                "-",
                "yes" if burst["in_order"] else "NO",
                "PASS" if burst["events_per_s"] >= TARGET_EVENTS_PER_S else "BELOW",
            ]
        )
        ceiling, fell_behind = 0.0, False
        for rate in sorted(args.rates):
            paced = run_phase(port, deflate, int(rate * args.seconds), rate)
            said = verdict(paced, rate)
            fell_behind = fell_behind or said != "keeps up"
            if not fell_behind:
                ceiling = rate
            rows.append(
                [
                    label,
                    f"{rate:,.0f}/s",
                    f"{paced['events_per_s']:,.0f}",
                    f"{paced['cpu_us']:.1f}",
                    f"{paced['p50_ms']:.1f} / {paced['p99_ms']:.1f}",
                    f"{paced['first_half_ms']:.1f} -> {paced['second_half_ms']:.1f}",
                    "yes" if paced["in_order"] else "NO",
                    said,
                ]
            )
        rows.append([label, "ceiling", f"{ceiling:,.0f}", "", "", "", "", ""])
        return rows
    finally:
        server.kill()
        server.join(5)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="burst size (50,000)")
    parser.add_argument(
        "--rates",
        default="2000,5000,10000,20000,40000",
        help="paced phases, events/s (2000,5000,10000,20000,40000)",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds a paced phase")
    parser.add_argument("--repeat", type=int, default=2, help="bursts; the best is kept")
    parser.add_argument(
        "--compression", choices=("none", "deflate", "both"), default="both", help="(both)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",") if r]
    print(f"one ClientConnection, {os.cpu_count()} cores; stand-in server in its own process")
    rows: list[list[str]] = []
    for deflate in {"none": [False], "deflate": [True], "both": [False, True]}[args.compression]:
        rows += measure(deflate, args)
    print_table(
        [
            "deflate",
            "phase",
            "events/s",
            "CPU us/event",
            "lag p50 / p99 ms",
            "mean lag 1st -> 2nd half ms",
            "in order",
            f"target (burst >= {TARGET_EVENTS_PER_S:,}/s)",
        ],
        rows,
        right=(2, 3),
    )
    missed = any(row[-1] == "BELOW" or row[-2] == "NO" for row in rows)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
