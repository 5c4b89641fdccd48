"""A client resuming many rooms at once, reading as fast as it can: events/s and 4008s.

The event log is filled first (``--rooms`` agent rooms of ``--events`` progress events
of about 550 bytes each), then a ``jupyter server`` with ``vimax_nb.server`` from this
checkout is started on it (a subprocess, ``--send-queue-limit`` bytes per client). A
client in this process (tornado's, no compression) subscribes ``after: null`` to every
room at once and reads as fast as it can; when it is closed with 4008 it reconnects and
resumes each room from its last seq with the epoch, as docs/protocol.md says. Each room's
seqs must arrive contiguous, each once. Reported, best of ``--repeat`` (a new connection
each time, same server): the events received, the seconds from the first subscribe to
the last room's top, events/s, the 4008 closes and the connections it took.

Target: no 4008 close (a client that reads is never a slow consumer) and at least
``TARGET_RATE`` events/s. The client, one Python process decoding every frame's JSON, is
what limits the rate on a 2-core machine (15,000-27,000 events/s there, both before and
after replays were paced per connection; before, the same resume was closed 7-11 times).

Run: ``python benchmarks/replay_resume.py [--rooms 4] [--events 20000]
[--send-queue-limit 1048576] [--repeat 3] [--strict]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from _table import print_table  # noqa: E402
from tornado.httpclient import HTTPRequest  # noqa: E402
from tornado.websocket import websocket_connect  # noqa: E402

from vimax_nb.protocol import (  # noqa: E402
    ProgressDetails,
    ProgressEvent,
    StageProgress,
    WorkflowState,
    agent_room,
    event_payload,
)
from vimax_nb.store import Store  # noqa: E402

TARGET_RATE = 10_000  # events/s received by one Python client resuming its rooms
AGENTS = (
    "screenwriter",
    "character_extractor",
    "portrait_painter",
    "storyboard_artist",
    "camera_director",
    "frame_painter",
    "video_generator",
    "editor",
)
STAGES = ("story", "characters", "portraits", "storyboard", "camera", "frames", "videos", "edit")


def payload(i: int, workflow_id: str | None = None) -> Any:
    """A progress event's fields (of ``workflow_id``; default: one made of ``i``) as the
    event log takes them, about 550 bytes of JSON once stored."""
    stage = i % len(STAGES)
    done = i % 30
    return event_payload(
        ProgressEvent(
            room="workflow:bench",
            workflow_id=workflow_id or f"{i:012x}",
            state=WorkflowState.running,
            progress=round((stage + done / 30) / len(STAGES), 4),
            stage=STAGES[stage],
            stage_index=stage,
            total_stages=len(STAGES),
            message=f"{STAGES[stage]}: {done}/30 done",
            details=ProgressDetails(
                event="task_completed",
                task=f"{STAGES[stage]}/shot-{done}",
                agent=f"{STAGES[stage]}-agent",
                stages=[
                    StageProgress(
                        name=name,
                        done=30 if k < stage else done if k == stage else 0,
                        total=30,
                    )
                    for k, name in enumerate(STAGES)
                ],
            ),
        )
    )


async def fill(database: Path, rooms: Sequence[str], events: int) -> None:
    """Store ``events`` progress events in each of ``rooms``."""
    store = await Store.open(database)
    try:
        payloads = [payload(i) for i in range(64)]
        for i in range(events):
            for room in rooms:
                store.events.append_nowait(room, "progress", payloads[i % 64])
            if i % 500 == 0:
                await asyncio.sleep(0)
        await store.events.flush()
    finally:
        await store.close()


# -- the server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    http_url: str
    ws_url: str
    token: str
    log: Path


@contextmanager
def server(
    workdir: Path,
    vimax_work: Path,
    send_queue_limit: int,
    options: Sequence[str] = (),
    extensions: Sequence[str] = (),
) -> Iterator[Server]:
    """A jupyter server with vimax_nb.server (this checkout) on ``vimax_work``, stopped on
    exit; ``options`` are more command-line options, ``extensions`` more server extension
    modules (importable from ``benchmarks/``, which is then on the server's path)."""
    port = free_port()
    token = secrets.token_hex(16)
    root = workdir / "root"
    for folder in (root, workdir / "config", workdir / "runtime", workdir / "data"):
        folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    paths = [str(ROOT), *([str(HERE)] if extensions else []), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    env["JUPYTER_CONFIG_DIR"] = str(workdir / "config")
    env["JUPYTER_RUNTIME_DIR"] = str(workdir / "runtime")
    env["JUPYTER_DATA_DIR"] = str(workdir / "data")
    log = workdir / "jupyter.log"
    enabled = dict.fromkeys(["vimax_nb.server", *extensions], True)
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
        f"--ServerApp.root_dir={root}",
        f"--ServerApp.jpserver_extensions={enabled!r}",
        "--ServerApp.log_level=WARN",
        f"--VimaxApp.workdir={vimax_work}",
        f"--VimaxApp.send_queue_limit={send_queue_limit}",
        "--VimaxApp.probe_providers=False",
        *options,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    running = Server(
        process, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/vimax/ws", token, log
    )
    try:
        wait_ready(running, time.monotonic() + 60)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def wait_ready(running: Server, deadline: float) -> None:
    """Poll ``/vimax/ws/stats`` until it answers (the extension has started)."""
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log_tail(running.log)}")
        try:
            req = urllib.request.Request(
                f"{running.http_url}/vimax/ws/stats",
                headers={"Authorization": f"token {running.token}"},
            )
            with urllib.request.urlopen(req, timeout=2) as response:
                json.loads(response.read())
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)
    raise RuntimeError(f"the server did not answer in time:\n{log_tail(running.log)}")


# -- the client ----------------------------------------------------------------------------


@dataclass
class Resume:
    events: int = 0
    bytes: int = 0
    seconds: float = 0.0
    connections: int = 0
    closes: Counter[int | None] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def resume_all(running: Server, rooms: Sequence[str], timeout: float) -> Resume:
    """Subscribe to every room from nothing at once; read everything up to each room's top
    (as first answered), reconnecting and resuming after any close."""
    result = Resume()
    last = dict.fromkeys(rooms, 0)
    target: dict[str, int] = {}
    done: set[str] = set()
    epoch: str | None = None
    headers = {"Authorization": f"token {running.token}"}
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while len(done) < len(rooms):
        if time.monotonic() > deadline:
            result.problems.append(f"not done in {timeout} s: {len(done)} rooms of {len(rooms)}")
            break
        conn = await websocket_connect(HTTPRequest(running.ws_url, headers=headers))
        result.connections += 1
        welcome = json.loads(await conn.read_message())
        if epoch is not None and welcome["epoch"] != epoch:
            result.problems.append("the epoch changed")
        epoch = welcome["epoch"]
        for room in rooms:
            if room in done:
                continue
            after = last[room]
            subscribe = {"type": "subscribe", "room": room, "after": after or None, "id": room}
            if after:
                subscribe["epoch"] = epoch
            await conn.write_message(json.dumps(subscribe))
        while len(done) < len(rooms):
            raw = await conn.read_message()
            if raw is None:
                result.closes[conn.close_code] += 1
                break
            result.bytes += len(raw)
            message = json.loads(raw)
            room = message.get("room")
            if "seq" in message:
                seq = message["seq"]
                if seq != last[room] + 1:
                    result.problems.append(f"{room}: seq {seq} after {last[room]}")
                last[room] = seq
                result.events += 1
                if seq >= target.get(room, 1 << 62):
                    done.add(room)
            elif message["type"] == "subscribed":
                target.setdefault(room, message["top"])
                if not message["recovered"]:
                    result.problems.append(f"{room}: not recovered")
                if last[room] >= target[room]:
                    done.add(room)
        conn.close()
    result.seconds = time.perf_counter() - started
    return result


# -- main ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rooms", type=int, default=4, help="rooms resumed at once (1-8)")
    parser.add_argument("--events", type=int, default=20_000, help="events per room")
    parser.add_argument(
        "--send-queue-limit",
        type=int,
        action="append",
        help="the server's send_queue_limit in bytes; repeat for more servers "
        "(default: 1048576 and 65536)",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per resume")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    rooms = [agent_room(name) for name in AGENTS[: max(1, min(args.rooms, len(AGENTS)))]]
    limits = args.send_queue_limit or [1024 * 1024, 64 * 1024]
    workdir = Path(tempfile.mkdtemp(prefix="vimax-replay-bench-"))
    rows: list[list[str]] = []
    ok = True
    try:
        vimax_work = workdir / "vimax-work"
        vimax_work.mkdir()
        asyncio.run(fill(vimax_work / "vimax.sqlite3", rooms, args.events))
        for limit in limits:
            with server(workdir / f"server-{limit}", vimax_work, limit) as running:
                runs = [
                    asyncio.run(resume_all(running, rooms, args.timeout))
                    for _ in range(args.repeat)
                ]
            best = max(runs, key=lambda r: r.rate)
            closes = sum(r.closes[4008] for r in runs)
            problems = [p for r in runs for p in r.problems]
            passed = not problems and closes == 0 and best.rate >= TARGET_RATE
            ok = ok and passed
            rows.append(
                [
                    f"{len(rooms)} rooms x {args.events}, limit {limit // 1024} KiB",
                    f"{best.events:,}",
                    f"{best.seconds:.2f}",
                    f"{best.rate:,.0f}",
                    f"{best.bytes / best.seconds / 1e6:.1f}",
                    f"{closes} in {len(runs)} runs",
                    str(best.connections),
                    f">= {TARGET_RATE:,}/s, no 4008",
                    "PASS" if passed else "BELOW",
                ]
            )
            for problem in problems[:10]:
                print("problem:", problem)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(
        [
            "resume after: null, reading at full speed",
            "events",
            "s",
            "events/s",
            "MB/s",
            "4008 closes",
            "connections (best)",
            "target",
            "",
        ],
        rows,
        right=(1, 2, 3, 4, 5, 6),
    )
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
