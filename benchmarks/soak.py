"""Soak: many WebSocket clients, many workflows, random disconnects; nothing lost or doubled.

Starts a real ``jupyter server`` with vimax-nb (a subprocess: a token, a free port, a
temporary root, the procedural providers, quotas on active workflows off), opens
``--connections`` WebSocket connections to ``/vimax/ws`` (the ``websockets`` library,
one asyncio process, no compression) and keeps ``--workflows`` tiny Idea2Video
workflows running (128x72, 4 fps, one shot of one second; a new one is submitted as
each ends) for ``--seconds``. Every client follows the coordinator room and about
``--rooms-per-client`` workflow rooms at a time: each new workflow is followed by the
clients that follow the fewest, from its first event (``after`` null), and a client
unsubscribes from a workflow's room once it has seen the workflow's final state event.
Meanwhile clients are disconnected at random (``--disconnect-rate`` of them a second;
half close the connection, half drop it) and reconnect after up to 0.3 s, resuming
every room they follow with ``after`` = their last seq and the epoch, as
docs/protocol.md says; a close by the server (4008 slow consumer among others) is
resumed the same way.

At the end no workflow is submitted, the running ones finish (or are canceled after
``--finish-timeout`` s), every client reconnects and catches up, and each client's seqs
per room are compared with the server's event log: a workflow room with
``GET /vimax/api/workflows/{id}/events`` (up to the final state event for a client
that unsubscribed after it), the coordinator room with the seqs 1..top (top from a
last subscribe). Lost: a seq in the log the client never got. Doubled: a seq it got
twice. Also counted as problems: a resume answered ``recovered: false``, an event of a
room after its ``unsubscribed``, an ``error`` frame, a changed epoch.

Prints connections, events delivered, lost, doubled, reconnects (by close code),
workflows run, the server's counters and its resident memory (psutil) before the
clients connect, at its peak and after every client has left. Exits 1 if an event
was lost or doubled, a problem was seen, or the server's memory grew by more than
``--memory-limit`` MB.

    python benchmarks/soak.py [--seconds 60] [--connections 500] [--workflows 20]
        [--rooms-per-client 2] [--disconnect-rate 0.02] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

ROOT = Path(__file__).resolve().parents[1]
COORDINATOR = "coordinator"
FINAL_STATES = ("completed", "failed", "canceled")
PARAMS = {
    "width": 128,
    "height": 72,
    "fps": 4,
    "seconds_per_shot": 1,
    "shots_per_scene": 1,
    "scenes": 1,
}
IDEAS = (
    "A lighthouse keeper befriends a whale",
    "Two cats race across the rooftops at night",
    "A robot learns to paint in a quiet studio",
    "A girl and her dog find a map in the attic",
)


# -- the server ----------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str  # http://127.0.0.1:PORT
    token: str
    log: Path

    def get(self, path: str, timeout: float = 30) -> Any:
        return self._call("GET", path, None, timeout)

    def post(self, path: str, body: dict[str, Any], timeout: float = 30) -> Any:
        return self._call("POST", path, body, timeout)

    def _call(self, method: str, path: str, body: dict[str, Any] | None, timeout: float) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path,
            method=method,
            data=data,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return json.loads(response.read())

    def rss(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def jupyter_server(folder: Path, extra: list[str]) -> Iterator[Server]:
    """A ``jupyter server`` with vimax-nb in ``folder``, stopped (SIGTERM, then SIGKILL,
    by its process id) on exit."""
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    for name in list(env):  # the procedural providers, whatever this shell configures
        if name.startswith(("VIMAX_", "GEMINI_", "GOOGLE_API", "REPLICATE_")):
            del env[name]
    for sub in ("root", "config", "runtime", "data"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    env.update(
        JUPYTER_CONFIG_DIR=str(folder / "config"),
        JUPYTER_RUNTIME_DIR=str(folder / "runtime"),
        JUPYTER_DATA_DIR=str(folder / "data"),
        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])]),
    )
    command = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--allow-root",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={folder / 'root'}",
        "--ServerApp.jpserver_extensions={'vimax_nb.server': True}",
        "--ServerApp.log_level=WARN",
        "--VimaxApp.chat_provider=procedural",
        "--VimaxApp.image_provider=procedural",
        "--VimaxApp.video_provider=procedural",
        "--VimaxApp.max_active_workflows_per_user=0",
        "--VimaxApp.max_active_workflows=0",
        *extra,
    ]
    log = folder / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=out)
    server = Server(process, f"http://127.0.0.1:{port}", token, log)
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server exited at start:\n{log_tail(log)}")
            try:
                server.get("/vimax/api/coordinator", timeout=2)
                break
            except (OSError, urllib.error.HTTPError) as exc:
                if time.monotonic() > deadline:
                    message = f"the server did not answer in 90 s:\n{log_tail(log)}"
                    raise SystemExit(message) from exc
                time.sleep(0.25)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


# -- the clients ---------------------------------------------------------------------


@dataclass
class RoomView:
    """What one client got of one room."""

    seqs: list[int] = field(default_factory=list)
    last: int | None = None  # the highest seq received
    session: int = -1  # the connection (by number) its subscribe was sent on
    end: int | None = None  # the final state event's seq, once seen (then unsubscribed)
    gone: bool = False  # unsubscribe sent: not resumed any more
    unsubscribed: bool = False  # ... and answered


class Client:
    """One WebSocket client: follows rooms, resumes them after every close, keeps seqs."""

    def __init__(self, soak: Soak, index: int) -> None:
        self.soak = soak
        self.index = index
        self.rooms: dict[str, RoomView] = {COORDINATOR: RoomView()}
        self.ws: ClientConnection | None = None
        self.ready = False  # welcome received and every followed room subscribed
        self.session = 0
        self.epoch: str | None = None
        self.reconnects = 0
        self.closes: Counter[str] = Counter()
        self.delivered = 0
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        self.soak.problem_count += 1
        if len(self.problems) < 5:
            self.problems.append(text)

    async def run(self) -> None:
        rng = self.soak.rng
        while not self.soak.closing:
            try:
                async with self.soak.handshakes:
                    ws = await connect(
                        self.soak.ws_url,
                        additional_headers={"Authorization": f"token {self.soak.server.token}"},
                        compression=None,
                        ping_interval=None,
                        max_queue=None,
                        open_timeout=60,
                        close_timeout=5,
                    )
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self.closes[f"connect failed: {type(exc).__name__}"] += 1
                await asyncio.sleep(0.5 + rng.random())
                continue
            self.ws = ws
            code = await self._session(ws)
            self.ws, self.ready = None, False
            self.closes[str(code)] += 1
            if self.soak.closing:
                break
            self.reconnects += 1
            await asyncio.sleep(rng.random() * 0.3)

    async def _session(self, ws: ClientConnection) -> int:
        self.session += 1
        try:
            welcome = json.loads(await ws.recv())
            if welcome.get("type") != "welcome":
                self.problem(f"first frame is not welcome: {welcome}")
            epoch = welcome.get("epoch")
            if self.epoch is not None and epoch != self.epoch:
                self.problem(f"the epoch changed from {self.epoch} to {epoch}")
            self.epoch = epoch
            await self._subscribe_all(ws)
            async for raw in ws:
                await self._on_message(ws, json.loads(raw))
        except ConnectionClosed:
            pass
        return ws.close_code if ws.close_code is not None else 1006

    async def _subscribe_all(self, ws: ClientConnection) -> None:
        while True:
            pending = [
                (room, view)
                for room, view in self.rooms.items()
                if not view.gone and view.session != self.session
            ]
            if not pending:
                self.ready = True
                return
            for room, view in pending:
                await self._subscribe(ws, room, view)

    async def _subscribe(self, ws: ClientConnection, room: str, view: RoomView) -> None:
        view.session = self.session
        message = {"type": "subscribe", "room": room, "after": view.last, "epoch": self.epoch}
        await ws.send(json.dumps(message))

    async def follow(self, room: str) -> None:
        """Follow ``room`` from its first event."""
        view = self.rooms.setdefault(room, RoomView())
        if self.ready and self.ws is not None and view.session != self.session:
            with contextlib.suppress(ConnectionClosed):
                await self._subscribe(self.ws, room, view)

    async def _on_message(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        kind, room = message.get("type"), message.get("room")
        seq = message.get("seq")
        if seq is not None and isinstance(room, str):
            self.delivered += 1
            view = self.rooms.get(room)
            if view is None or view.unsubscribed:
                self.problem(f"event {room}#{seq} of a room not subscribed")
                return
            view.seqs.append(seq)
            view.last = seq if view.last is None else max(view.last, seq)
            final = (
                kind == "progress"
                and message.get("state") in FINAL_STATES
                and (message.get("details") or {}).get("event") == "state"
            )
            if final and room != COORDINATOR and view.end is None:
                view.end, view.gone = seq, True
                await ws.send(json.dumps({"type": "unsubscribe", "room": room}))
        elif kind == "subscribed":
            view = self.rooms.get(str(room))
            if view is not None and not message.get("recovered", True) and view.last is not None:
                self.problem(f"resuming {room} after {view.last} was not recovered")
        elif kind == "unsubscribed":
            view = self.rooms.get(str(room))
            if view is not None:
                view.unsubscribed = True
        elif kind == "error":
            self.problem(f"error frame: {message.get('code')}: {message.get('message')}")

    def disconnect(self) -> None:
        """Close the connection (half the time) or drop it (the other half)."""
        ws = self.ws
        if ws is None:
            return
        if self.soak.rng.random() < 0.5:
            task = asyncio.get_running_loop().create_task(ws.close())
            self.soak.background.add(task)
            task.add_done_callback(self.soak.background.discard)
        else:
            ws.transport.abort()


# -- the soak ------------------------------------------------------------------------


class Soak:
    def __init__(self, server: Server, args: argparse.Namespace) -> None:
        self.server = server
        self.args = args
        self.ws_url = server.base.replace("http", "ws", 1) + "/vimax/ws"
        self.rng = random.Random(args.seed)
        self.closing = False
        self.handshakes = asyncio.Semaphore(50)
        self.clients = [Client(self, i) for i in range(args.connections)]
        self.workflows: dict[str, str] = {}  # id -> last known state
        self.followers: dict[str, list[Client]] = {}
        self.problem_count = 0
        self.peak_rss = server.rss()
        self.submitted = 0
        self.background: set[asyncio.Task[None]] = set()

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if method == "GET":
            return await asyncio.to_thread(self.server.get, path)
        return await asyncio.to_thread(self.server.post, path, body or {})

    async def submit(self) -> None:
        idea = f"{IDEAS[self.submitted % len(IDEAS)]} (soak {self.submitted})"
        record = await self.call(
            "POST",
            "/vimax/api/workflows",
            {"kind": "idea2video", "params": {"idea": idea, "seed": self.submitted, **PARAMS}},
        )
        self.submitted += 1
        workflow_id = record["id"]
        self.workflows[workflow_id] = record["state"]
        per_room = max(1, len(self.clients) * self.args.rooms_per_client // self.args.workflows)
        following = sorted(
            self.clients,
            key=lambda c: (sum(1 for v in c.rooms.values() if not v.gone), self.rng.random()),
        )[:per_room]
        self.followers[workflow_id] = following
        room = f"workflow:{workflow_id}"
        await asyncio.gather(*(c.follow(room) for c in following))

    def active(self) -> list[str]:
        return [w for w, state in self.workflows.items() if state not in FINAL_STATES]

    async def refresh_states(self) -> None:
        listing = await self.call("GET", f"/vimax/api/workflows?limit={4 * self.args.workflows}")
        for record in listing["workflows"]:
            if record["id"] in self.workflows:
                self.workflows[record["id"]] = record["state"]
        for workflow_id in self.active():  # older than the listing's page
            if not any(r["id"] == workflow_id for r in listing["workflows"]):
                record = await self.call("GET", f"/vimax/api/workflows/{workflow_id}")
                self.workflows[workflow_id] = record["state"]
        self.peak_rss = max(self.peak_rss, self.server.rss())

    async def keep_workflows_running(self, until: float) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() < until:
            await self.refresh_states()
            for _ in range(self.args.workflows - len(self.active())):
                await self.submit()
            await asyncio.sleep(0.25)

    async def finish_workflows(self, timeout: float) -> None:
        """Poll the workflows' states until none is active, or for ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        await self.refresh_states()
        while self.active() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.25)
            await self.refresh_states()

    async def chaos(self, until: float) -> None:
        loop = asyncio.get_running_loop()
        tick = 0.1
        while loop.time() < until:
            await asyncio.sleep(tick)
            for client in self.clients:
                if client.ready and self.rng.random() < self.args.disconnect_rate * tick:
                    client.disconnect()

    async def wait_for(self, what: str, done: Any, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            if loop.time() > deadline:
                print(f"gave up waiting for {what} after {timeout:.0f} s", file=sys.stderr)
                return False
            await asyncio.sleep(0.1)
        return True

    async def workflow_log(self, workflow_id: str) -> list[int]:
        seqs: list[int] = []
        after = 0
        while True:
            page = await self.call(
                "GET", f"/vimax/api/workflows/{workflow_id}/events?after={after}&limit=1000"
            )
            seqs += [e["seq"] for e in page["events"]]
            if not page["events"] or seqs[-1] >= page["top"]:
                return seqs
            after = seqs[-1]

    async def coordinator_top(self) -> int:
        headers = {"Authorization": f"token {self.server.token}"}
        async with connect(self.ws_url, additional_headers=headers, compression=None) as ws:
            await ws.recv()  # welcome
            await ws.send(json.dumps({"type": "subscribe", "room": COORDINATOR, "after": None}))
            while True:
                message = json.loads(await ws.recv())
                if message.get("type") == "subscribed":
                    return int(message["top"])


def fmt_mb(value: float) -> str:
    return f"{value / 1e6:.0f} MB"


async def soak(server: Server, args: argparse.Namespace) -> int:
    started = time.monotonic()
    rss_before = server.rss()
    run = Soak(server, args)
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(c.run()) for c in run.clients]
    connected = await run.wait_for(
        "every client to connect", lambda: all(c.ready for c in run.clients), 120
    )
    connect_time = time.monotonic() - started
    if not connected:
        print(f"only {sum(c.ready for c in run.clients)} clients connected", file=sys.stderr)
    until = loop.time() + args.seconds
    await asyncio.gather(run.keep_workflows_running(until), run.chaos(until))

    # The end: let the workflows finish, every client reconnect and catch up.
    await run.finish_workflows(args.finish_timeout)
    canceled = run.active()
    for workflow_id in canceled:
        with contextlib.suppress(urllib.error.HTTPError):
            await run.call("POST", f"/vimax/api/workflows/{workflow_id}/cancel")
    await run.finish_workflows(args.finish_timeout)
    await run.wait_for("every client to reconnect", lambda: all(c.ready for c in run.clients), 60)
    logs = {f"workflow:{w}": await run.workflow_log(w) for w in run.workflows}
    coordinator_top = await run.coordinator_top()

    def expected(room: str, view: RoomView) -> list[int]:
        if room == COORDINATOR:
            return list(range(1, coordinator_top + 1))
        return [s for s in logs[room] if view.end is None or s <= view.end]

    def caught_up() -> bool:
        return all(
            view.last is not None and view.last >= max(expected(room, view), default=0)
            for c in run.clients
            for room, view in c.rooms.items()
            if expected(room, view)
        )

    await run.wait_for("every client to catch up", caught_up, args.catch_up_timeout)
    catch_up_time = time.monotonic() - started

    lost = doubled = out_of_order = 0
    examples: list[str] = []
    for client in run.clients:
        for room, view in client.rooms.items():
            want = expected(room, view)
            got = Counter(view.seqs)
            missing = [s for s in want if s not in got]
            twice = sum(n - 1 for n in got.values() if n > 1)
            disorder = sum(1 for a, b in zip(view.seqs, view.seqs[1:], strict=False) if b <= a)
            lost += len(missing)
            doubled += twice
            out_of_order += disorder
            if (missing or twice) and len(examples) < 10:
                examples.append(
                    f"client {client.index} {room}: missing {missing[:8]}"
                    f"{'...' if len(missing) > 8 else ''}, doubled "
                    f"{sorted(s for s, n in got.items() if n > 1)[:8]}, reconnects "
                    f"{client.reconnects}, closes {dict(client.closes)}"
                )

    stats = await run.call("GET", "/vimax/ws/stats")
    run.closing = True
    await asyncio.gather(*(c.ws.close() for c in run.clients if c.ws is not None))
    await asyncio.gather(*tasks, return_exceptions=True)

    async def no_connections() -> bool:
        return bool((await run.call("GET", "/vimax/ws/stats"))["connections"] == 0)

    for _ in range(100):
        if await no_connections():
            break
        await asyncio.sleep(0.1)
    rss_after = server.rss()
    run.peak_rss = max(run.peak_rss, rss_after)

    closes: Counter[str] = Counter()
    for client in run.clients:
        closes.update(client.closes)
    delivered = sum(c.delivered for c in run.clients)
    reconnects = sum(c.reconnects for c in run.clients)
    subscriptions = sum(len(c.rooms) for c in run.clients)
    wall = time.monotonic() - started
    growth = rss_after - rss_before
    memory_ok = growth <= args.memory_limit * 1e6
    print(f"connections            {len(run.clients)} (all connected in {connect_time:.1f} s)")
    print(
        f"workflows              {len(run.workflows)} run, {args.workflows} at a time"
        + (f", {len(canceled)} canceled at the end" if canceled else "")
    )
    print(f"rooms followed         {subscriptions} (client, room) pairs checked")
    print(f"events delivered       {delivered} ({delivered / wall:.0f}/s over the run)")
    print(f"lost                   {lost}")
    print(f"doubled                {doubled}")
    print(f"out of order           {out_of_order}")
    print(f"reconnects             {reconnects}")
    print("closes by code         " + ", ".join(f"{k}: {v}" for k, v in sorted(closes.items())))
    print(f"problems               {run.problem_count}")
    print(
        "server counters        "
        + ", ".join(
            f"{k} {stats.get(k)}"
            for k in (
                "events",
                "deliveries",
                "slow_consumer_closes",
                "replay_gap_closes",
                "rate_limit_closes",
                "messages_dropped",
            )
        )
    )
    print(
        f"server RSS             before {fmt_mb(rss_before)}, peak {fmt_mb(run.peak_rss)}, "
        f"after {fmt_mb(rss_after)} (growth {growth / 1e6:+.0f} MB, limit "
        f"{args.memory_limit:.0f} MB: {'PASS' if memory_ok else 'FAIL'})"
    )
    print(f"wall time              {wall:.1f} s (caught up at {catch_up_time:.1f} s)")
    for example in examples:
        print("  " + example)
    for client in run.clients:
        for text in client.problems:
            print(f"  client {client.index}: {text}")
    failed = lost or doubled or out_of_order or run.problem_count or not memory_ok
    print("FAIL" if failed else "PASS")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the churn lasts")
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--workflows", type=int, default=20, help="workflows running at once")
    parser.add_argument(
        "--rooms-per-client", type=int, default=2, help="workflow rooms a client follows at once"
    )
    parser.add_argument(
        "--disconnect-rate",
        type=float,
        default=0.02,
        help="share of the connected clients disconnected each second",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--memory-limit",
        type=float,
        default=200.0,
        help="MB the server's resident memory may grow from before the clients to after",
    )
    parser.add_argument("--finish-timeout", type=float, default=60.0)
    parser.add_argument("--catch-up-timeout", type=float, default=60.0)
    parser.add_argument(
        "--server-arg", action="append", default=[], help="extra argument for jupyter server"
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="vimax-soak-") as tmp,
        jupyter_server(Path(tmp), args.server_arg) as server,
    ):
        try:
            return asyncio.run(soak(server, args))
        finally:
            if server.process.poll() is not None:
                print(f"the server exited:\n{log_tail(server.log)}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
