"""Fan-out of one room to many WebSocket subscribers: the full path, a bare Tornado
broadcast and two peers, with and without permessage-deflate, in one run.

Each server runs in a subprocess, one after the other, and the same subscribers
(``fanout_clients.py``, a process of their own) drive every one:

- ``full``: ``jupyter server`` with the ``vimax_nb.server`` extension (its default
  settings) and the benchmark-only extension ``fanout_producer`` (``benchmarks/`` on its
  path), which runs a tiny procedural workflow to have a real room, then emits
  ``ProgressEvent``s for that room through ``coordinator.events.emit``: the broadcaster
  appends each to the durable event log (SQLite), the hub fans it out after the commit
  through bounded per-connection queues;
- ``bare``: ``fanout_bare.py``, one Tornado ``WebSocketHandler`` whose clients sit in a
  set; each event is serialized once and ``write_message`` is called for every client
  (no log, no rooms, no queues): the reference;
- ``websockets``: ``fanout_wsbroadcast.py``, the ``websockets`` library's own
  ``broadcast()``, the fastest pure-Python broadcast;
- ``socketio``: ``fanout_socketio.py``, python-socketio rooms (``await sio.emit(...,
  room=...)``) on aiohttp (``--socketio-mode tornado`` for its Tornado driver).

``--compression deflate`` has the subscribers offer permessage-deflate as
``websockets.connect`` does by default (``permessage-deflate; client_max_window_bits``),
``none`` offers nothing, ``both`` (the default) runs both. The full path keeps its
default settings either way (it accepts deflate when offered: what users run); the
bare server and the peers are started with their compression on for ``deflate`` and off
for ``none``. Every cell is run with each client implementation of ``--impl``
(``raw``: hand-written and cheap, so that the server is what is measured;
``websockets``: the library's client; ``connection``: ``vimax_nb.client.
ClientConnection``, the kernel's client, asked for deflate or not through its
``SocketOptions``; see ``fanout_clients.py``). Socket.IO is spoken by the ``raw`` and
``websockets`` clients (Engine.IO v4 framing, written in ``fanout_clients.py``); the
vimax client does not speak it.

For each row: ``--clients`` connections subscribe to the room; ``--rate`` events a
second are emitted for ``--seconds`` (p50/p99 of the emit-to-receipt latency of every
``--sample``-th message of each client), then ``--events`` events as fast as possible
(deliveries per second = deliveries / (last receipt - first emit)), best of
``--repeat``. Each client checks that its seqs arrive contiguous with no duplicate,
and reconnects and resumes from its last seq when it is closed (reported as a
problem). The servers' own figures come with it: CPU per delivery, garbage-collector
pauses, how late the pacing ran, and for the full path the time from emit to the
commit's delivery on the loop and to the end of the socket writes.

Targets (issue 15; the ``raw`` rows, ratios from this run): with deflate, the full
path at least 1.0 x bare Tornado's deliveries/s and p99 at most 20 ms (at 200 events/s
x 100 subscribers); without it, today's figures: at least 0.80 x bare Tornado's and
p99 at most 20 ms and at most 1.25 x bare Tornado's; both, at least 1.5 x the best
peer's deliveries/s.

The events are progress events of about 800 bytes of JSON, as a default Idea2Video
run's are (310 bytes of fields and ``--pad`` 480 characters of filler text from a small
vocabulary, 256 variants), so with deflate they go compressed (the full path's
threshold is 512 bytes); ``--pad 0`` measures small events, which go uncompressed.
One second of paced events (``--warmup``) precedes each row's figures.

Run: ``python benchmarks/fanout.py [--quick] [--servers full,bare,websockets,socketio]
[--compression both|deflate|none] [--impl raw,websockets,connection|all] [--clients 100]
[--events 2500] [--rate 200] [--seconds 6] [--repeat 1] [--pad 480] [--profile 25]
[--json PATH] [--strict]``. About 2.5 minutes by default (8 rows); ``--quick`` (1,000
events, 3 s paced) about half that; ``--impl all`` runs 22 rows. The peers need
``pip install -e ".[bench]"`` (python-socketio, aiohttp).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import pstats
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _table import print_table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVERS = ("full", "bare", "websockets", "socketio")
PEERS = ("websockets", "socketio")
IMPLS = ("raw", "websockets", "connection")
COMPRESSIONS = ("none", "deflate")
LABELS = {
    "full": "full path",
    "bare": "bare Tornado",
    "websockets": "websockets broadcast()",
    "socketio": "python-socketio rooms",
}
TARGET_DEFLATE_RATIO = 1.0  # full path / bare Tornado, deliveries/s, deflate
TARGET_PLAIN_RATIO = 0.80  # full path / bare Tornado, deliveries/s, no deflate
TARGET_P99_MS = 20.0
TARGET_PLAIN_P99_RATIO = 1.25  # full path / bare Tornado, at the same pace, no deflate
TARGET_PEER_RATIO = 1.5  # full path / the best peer, deliveries/s
CLIENTS_BUSY = 0.85  # of a core: above it the clients process may be what is measured
QUICK = {"events": 1_000, "seconds": 3.0}
DEFAULT = {"events": 2_500, "seconds": 6.0}


@dataclass
class Server:
    """A running server subprocess and how to reach it."""

    kind: str
    process: subprocess.Popen[bytes]
    http_url: str  # the base of emit, stats, profile
    ws_url: str
    token: str
    log: Path
    framing: str = "vimax"
    room: str = "workflow:bare"
    workflow: str = "bare"
    note: str = ""


@dataclass
class Row:
    """One cell of the matrix: a server, a compression, a client implementation."""

    server: str
    compression: str
    impl: str
    result: dict[str, Any] | None = None
    skipped: str = ""  # why it was not run
    failure: str = ""  # why it did not finish
    profile: str | None = None
    server_note: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{LABELS[self.server]} / {self.compression} / {self.impl}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def request(url: str, token: str, method: str = "GET", timeout: float = 10) -> Any:
    headers = {"Authorization": f"token {token}"} if token else {}
    data = b"" if method == "POST" else None
    req = urllib.request.Request(url, method=method, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as response:
        return json.loads(response.read())


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 15 s; only this process, by its id."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_ready(server: Server, deadline: float) -> None:
    """Poll ``stats`` until it answers (at most until ``deadline``, monotonic)."""
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.kind} exited:\n{log_tail(server.log)}")
        try:
            request(f"{server.http_url}/stats", server.token, timeout=2)
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and "extension failed loading" in log_tail(server.log, 400):
                raise RuntimeError(
                    f"{server.kind}: an extension failed to load:\n{log_tail(server.log)}"
                ) from exc
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.kind} did not answer in time:\n{log_tail(server.log)}")


def server_env(args: argparse.Namespace, profile: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("VIMAX_BENCH_"):
            del env[name]
    if profile is not None:
        env["VIMAX_BENCH_PROFILE"] = str(profile)
    if args.gc_freeze:
        env["VIMAX_BENCH_GC_FREEZE"] = "1"
    if args.switch_interval:
        env["VIMAX_BENCH_SWITCH_INTERVAL"] = str(args.switch_interval)
    return env


@contextmanager
def reference_server(
    kind: str, compression: str, args: argparse.Namespace, workdir: Path, profile: Path | None
) -> Iterator[Server]:
    """The bare server or a peer, its compression on for ``deflate``, off for ``none``."""
    port, control_port = free_port(), free_port()
    switch = "on" if compression == "deflate" else "off"
    log = workdir / f"{kind}-{compression}.log"
    if kind == "bare":
        command = ["fanout_bare.py", f"--port={port}"]
        http_url, ws_url, framing = (
            f"http://127.0.0.1:{port}",
            f"ws://127.0.0.1:{port}/vimax/ws",
            "vimax",
        )
        note = f"get_compression_options() {'{}' if switch == 'on' else 'None'}"
    elif kind == "websockets":
        command = ["fanout_wsbroadcast.py", f"--port={port}", f"--control-port={control_port}"]
        http_url, ws_url, framing = (
            f"http://127.0.0.1:{control_port}",
            f"ws://127.0.0.1:{port}/vimax/ws",
            "vimax",
        )
        note = f"compression={'deflate' if switch == 'on' else None!r}"
    else:
        command = [
            "fanout_socketio.py",
            f"--port={port}",
            f"--control-port={control_port}",
            f"--mode={args.socketio_mode}",
        ]
        http_url = f"http://127.0.0.1:{control_port}"
        ws_url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        framing = "socketio"
        note = f"{args.socketio_mode} driver, compression {switch}"
    command = [sys.executable, str(HERE / command[0]), *command[1:], f"--compression={switch}"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=server_env(args, profile),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(kind, process, http_url, ws_url, "", log, framing=framing, note=note)
    try:
        wait_ready(server, time.monotonic() + 30)
        yield server
    finally:
        stop(process)


@contextmanager
def full_server(args: argparse.Namespace, workdir: Path, profile: Path | None) -> Iterator[Server]:
    """``jupyter server`` with vimax_nb.server (default settings) and ``fanout_producer``,
    its benchmark room set up."""
    port = free_port()
    token = secrets.token_hex(16)
    root = workdir / "root"
    for folder in (root, workdir / "config", workdir / "runtime", workdir / "data"):
        folder.mkdir(parents=True, exist_ok=True)
    log = workdir / "jupyter.log"
    env = server_env(args, profile)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["JUPYTER_CONFIG_DIR"] = str(workdir / "config")
    env["JUPYTER_RUNTIME_DIR"] = str(workdir / "runtime")
    env["JUPYTER_DATA_DIR"] = str(workdir / "data")
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
        "--ServerApp.jpserver_extensions={'vimax_nb.server': True, 'fanout_producer': True}",
        "--ServerApp.log_level=WARN",
        *args.server_arg,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(
        "full",
        process,
        f"http://127.0.0.1:{port}/vimax-bench",
        f"ws://127.0.0.1:{port}/vimax/ws",
        token,
        log,
        note="default settings" + (f" + {' '.join(args.server_arg)}" if args.server_arg else ""),
    )
    try:
        wait_ready(server, time.monotonic() + 60)
        setup = request(f"{server.http_url}/setup", server.token, "POST", timeout=150)
        server.room, server.workflow = setup["room"], setup["workflow"]
        progress(
            f"full path: workflow {setup['workflow']} {setup['state']}, room top "
            f"{setup['top']}; {setup['gc_objects']:,} objects tracked by the collector, "
            f"{setup['gc_frozen']:,} frozen; experiments {setup['experiments'] or 'none'}"
        )
        yield server
    finally:
        stop(process)


def progress(text: str) -> None:
    print(f"... {text}", file=sys.stderr, flush=True)


def burst_deadline(args: argparse.Namespace) -> float:
    """As ``fanout_clients.py`` bounds a fast phase: at 2,000 deliveries/s, + 30 s."""
    return args.events * args.clients / 2_000 + 30


def run_clients(
    server: Server, args: argparse.Namespace, compression: str, impl: str
) -> dict[str, Any]:
    command = [
        sys.executable,
        str(HERE / "fanout_clients.py"),
        f"--ws-url={server.ws_url}",
        f"--http-url={server.http_url}",
        f"--token={server.token}",
        f"--room={server.room}",
        f"--workflow={server.workflow}",
        f"--clients={args.clients}",
        f"--events={args.events}",
        f"--repeat={args.repeat}",
        f"--rate={args.rate}",
        f"--seconds={args.seconds}",
        f"--sample={args.sample}",
        f"--impl={impl}",
        f"--compression={compression}",
        f"--framing={server.framing}",
        f"--pad={args.pad}",
        f"--warmup={args.warmup}",
    ]
    if args.profile:
        command.append(f"--profile={args.profile_phase}")
    phases = args.repeat + (2 if args.profile else 1) + (1 if args.warmup > 0 else 0)
    timeout = 150 + phases * (burst_deadline(args) + 30) + 2 * (args.seconds + 60)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(command, capture_output=True, timeout=timeout, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(
            f"the clients failed (status {done.returncode}):\n"
            f"{done.stderr.decode(errors='replace')[-3000:]}\n"
            f"server log:\n{log_tail(server.log)}"
        )
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def measure_server(
    kind: str, compressions: Sequence[str], args: argparse.Namespace, workdir: Path
) -> list[Row]:
    """Every row of server ``kind``: one server for all compressions (the full path, at
    its default settings) or one per compression (the others)."""
    rows: list[Row] = []
    groups = [list(compressions)] if kind == "full" else [[c] for c in compressions]
    for group in groups:
        profile = workdir / f"{kind}-{'-'.join(group)}.prof" if args.profile else None
        progress(f"{LABELS[kind]}: starting the server ({', '.join(group)})")
        if kind == "full":
            context = full_server(args, workdir, profile)
        else:
            context = reference_server(kind, group[0], args, workdir, profile)
        try:
            with context as server:
                for compression in group:
                    for impl in args.impl:
                        row = Row(kind, compression, impl, server_note=server.note)
                        rows.append(row)
                        if impl == "connection" and server.framing != "vimax":
                            row.skipped = "vimax_nb.client speaks the vimax protocol only"
                            continue
                        progress(f"{row.label}: {args.clients} clients")
                        began = time.monotonic()
                        try:
                            row.result = run_clients(server, args, compression, impl)
                        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                            row.failure = str(exc)
                            progress(f"{row.label}: FAILED: {str(exc)[:300]}")
                            continue
                        progress(f"{row.label}: {time.monotonic() - began:.0f} s")
                        if profile is not None and profile.exists():
                            kept = workdir / f"{kind}-{compression}-{impl}.prof"
                            profile.replace(kept)
                            row.profile = str(kept)
        except (RuntimeError, OSError) as exc:  # the server did not start or set up
            for compression in group:
                for impl in args.impl:
                    if not any(r.compression == compression and r.impl == impl for r in rows):
                        rows.append(Row(kind, compression, impl, failure=str(exc)))
            progress(f"{LABELS[kind]}: FAILED to start: {str(exc)[:300]}")
    return rows


# -- figures of a row ---------------------------------------------------------------


def best_burst(result: dict[str, Any]) -> dict[str, Any]:
    bursts = [p for p in result["phases"] if p["phase"] == "throughput"]
    best: dict[str, Any] = max(bursts, key=lambda p: p["deliveries_per_second"])
    return best


def paced(result: dict[str, Any]) -> dict[str, Any]:
    phase: dict[str, Any] = next(p for p in result["phases"] if p["phase"] == "latency")
    return phase


def problems(result: dict[str, Any]) -> list[str]:
    """Correctness failures of a row's run: gaps, duplicates, lost or closed clients."""
    found = []
    for phase in result["phases"]:
        name = phase["phase"]
        if phase["gaps"] or phase["duplicates"]:
            found.append(f"{name}: {phase['gaps']} gaps, {phase['duplicates']} duplicates")
        if phase["deliveries"] != phase["expected"]:
            found.append(f"{name}: {phase['deliveries']:,} of {phase['expected']:,} delivered")
        if phase["closes"] or phase["slow_consumer_closes"]:
            found.append(
                f"{name}: {phase['closes']} connections closed (codes {phase['closed']}; "
                f"the server counted {phase['slow_consumer_closes']} slow-consumer closes), "
                f"{phase['incomplete_clients']} clients incomplete; the clients reconnected "
                f"and resumed ({phase['unrecovered']} not recovered)"
            )
        if phase["bad_events"]:
            found.append(f"{name}: {phase['bad_events']} events without their emit time")
    found.extend(result.get("errors") or [])
    return found


def fmt(value: float, digits: int = 1) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def find(rows: Sequence[Row], server: str, compression: str, impl: str) -> Row | None:
    for row in rows:
        if (row.server, row.compression, row.impl) == (server, compression, impl):
            return row if row.result is not None else None
    return None


def throughput(row: Row | None) -> float:
    if row is None or row.result is None:
        return float("nan")
    value: float = best_burst(row.result)["deliveries_per_second"]
    return value


def best_peer(rows: Sequence[Row], compression: str, impl: str) -> Row | None:
    """The peer with the most deliveries/s for ``compression`` and ``impl``."""
    peers = [find(rows, peer, compression, impl) for peer in PEERS]
    measured = [row for row in peers if row is not None]
    return max(measured, key=throughput, default=None)


def ratio(a: float, b: float) -> str:
    if math.isnan(a) or math.isnan(b) or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def gc_max(result: dict[str, Any]) -> float:
    return max((p["server_gc"]["gc_max_ms"] for p in result["phases"]), default=0.0)


def short_extension(result: dict[str, Any]) -> str:
    """What the rows' clients negotiated, briefly: ``-`` for nothing, else the
    permessage-deflate parameters (``nct``: server_no_context_takeover)."""
    answers = set(result.get("negotiated") or {})
    if not answers:
        return "?"
    shorts = set()
    for answer in answers:
        if answer in ("none", "not opened", "unknown", ""):
            shorts.add("-" if answer == "none" else "?")
            continue
        params = [p.strip() for p in answer.split(";")[1:]]
        tags = []
        if "server_no_context_takeover" in params:
            tags.append("nct")
        tags += [
            "w" + p.partition("=")[2] for p in params if p.startswith("server_max_window_bits=")
        ]
        shorts.add("deflate" + (f" {'/'.join(tags)}" if tags else ""))
    return ", ".join(sorted(shorts))


# -- the report -----------------------------------------------------------------------


def report(args: argparse.Namespace, rows: list[Row]) -> bool:
    """Print the table, the targets and the diagnostics; whether every target that could
    be judged is met and nothing went wrong."""
    deliveries = args.events * args.clients
    print(
        f"fan-out of one room to {args.clients} WebSocket subscribers in a separate process; "
        f"{os.cpu_count()} cores"
    )
    print(
        f"  burst: {args.events:,} events = {deliveries:,} deliveries as fast as possible, "
        f"best of {args.repeat}; paced: {fmt(args.rate, 0)} events/s for "
        f"{fmt(args.seconds, 0)} s ({fmt(args.rate * args.clients, 0)} deliveries/s), latency "
        f"of every {args.sample}th message per client"
    )
    experiments = [
        name
        for name, on in (
            ("gc.freeze() in every server", args.gc_freeze),
            (f"sys.setswitchinterval({args.switch_interval:g})", args.switch_interval),
            (" ".join(args.server_arg), args.server_arg),
        )
        if on
    ]
    size = "about 310 bytes" + (f" + {args.pad} of filler text" if args.pad else "")
    print(
        f"  events: progress events of {size}; {fmt(args.warmup, 0)} s of paced events "
        "before each row, not counted"
    )
    print(f"  experiments: {'; '.join(experiments)}" if experiments else "  no experiment")
    print()
    header = [
        "server",
        "offered",
        "negotiated",
        "client",
        "deliveries/s",
        "p50 ms",
        "p99 ms",
        "CPU us/dlv",
        "GC max ms",
        "x bare",
        "x best peer",
        "clients CPU",
    ]
    lines: list[list[str]] = []
    for row in rows:
        cells = [LABELS[row.server], row.compression, "", row.impl]
        if row.result is None:
            why = "(skipped)" if row.skipped else "FAILED"
            lines.append([*cells, why, "", "", "", "", "", "", ""])
            continue
        result = row.result
        burst, steady = best_burst(result), paced(result)
        mine = throughput(row)
        bare = throughput(find(rows, "bare", row.compression, row.impl))
        peer = throughput(best_peer(rows, row.compression, row.impl))
        busy = max(burst["clients_cpu"], steady["clients_cpu"])
        cells[2] = short_extension(result)
        lines.append(
            [
                *cells,
                fmt(mine, 0),
                fmt(steady["p50_ms"], 2),
                fmt(steady["p99_ms"], 2),
                fmt(burst["server_cpu_us_per_delivery"]),
                fmt(gc_max(result)),
                ratio(mine, bare),
                ratio(mine, peer),
                f"{burst['clients_cpu']:.0%}" + (" *" if busy > CLIENTS_BUSY else ""),
            ]
        )
    print_table(header, lines, right=range(4, len(header)))
    print(
        "  deliveries/s: the burst; p50/p99: emit to receipt at the paced rate; CPU us/dlv: "
        "the server process's CPU per delivery in the burst; x bare, x best peer: "
        "deliveries/s over bare Tornado's and the best peer's, same compression and client; "
        "* the clients process used over "
        f"{CLIENTS_BUSY:.0%} of a core: the clients may be what is measured"
    )
    for skipped in sorted({r.skipped for r in rows if r.skipped}):
        print(f"  (skipped): {skipped}")
    print()
    ok = print_targets(args, rows)
    print_details(rows)
    failures = False
    for row in rows:
        if row.failure:
            failures = True
            print(f"  FAILED: {row.label}: {row.failure[:1500]}")
        elif row.result is not None:
            for found in problems(row.result):
                failures = True
                print(f"  PROBLEM: {row.label}: {found}")
    return ok and not failures


def print_targets(args: argparse.Namespace, rows: list[Row]) -> bool:
    """The targets of issue 15, judged on the ``raw`` rows (or the first client kind
    run); a target whose rows were not run is shown, not judged."""
    impl = "raw" if "raw" in args.impl else args.impl[0]
    pace = f"{fmt(args.rate, 0)} events/s x {args.clients}"
    if (args.rate, args.clients) != (200, 100):
        pace += " (the target's pace is 200 x 100)"
    judged: list[bool] = []
    lines: list[list[str]] = []

    def judge(what: str, measured: str, target: str, met: bool | None) -> None:
        verdict = "n/a" if met is None else ("PASS" if met else "BELOW")
        if met is not None:
            judged.append(met)
        lines.append([what, measured, target, verdict])

    for compression in args.compression:
        full = find(rows, "full", compression, impl)
        bare = find(rows, "bare", compression, impl)
        peer = best_peer(rows, compression, impl)
        mine = throughput(full)
        to_bare = mine / throughput(bare) if full and bare else float("nan")
        to_peer = mine / throughput(peer) if full and peer else float("nan")
        need = TARGET_DEFLATE_RATIO if compression == "deflate" else TARGET_PLAIN_RATIO
        judge(
            f"{compression}: full path deliveries/s / bare Tornado's",
            ratio(mine, throughput(bare)),
            f">= {need:.2f}",
            None if math.isnan(to_bare) else to_bare >= need,
        )
        p99 = paced(full.result)["p99_ms"] if full and full.result else float("nan")
        target = f"<= {TARGET_P99_MS:g} ms at {pace}"
        met: bool | None = None if math.isnan(p99) else p99 <= TARGET_P99_MS
        measured = f"{fmt(p99, 2)} ms"
        if compression == "none":
            bare_p99 = paced(bare.result)["p99_ms"] if bare and bare.result else float("nan")
            target += f", <= {TARGET_PLAIN_P99_RATIO:g} x bare's"
            measured += f" ({ratio(p99, bare_p99)} x bare)"
            if met is not None and not math.isnan(bare_p99):
                met = met and p99 <= TARGET_PLAIN_P99_RATIO * bare_p99
        judge(f"{compression}: full path p99 latency", measured, target, met)
        judge(
            f"{compression}: full path deliveries/s / the best peer's"
            + (f" ({LABELS[peer.server]})" if peer else ""),
            ratio(mine, throughput(peer)),
            f">= {TARGET_PEER_RATIO:.2f}",
            None if math.isnan(to_peer) else to_peer >= TARGET_PEER_RATIO,
        )
    print(f"targets (issue 15), on the {impl} clients' rows:")
    print_table(["", "measured", "target", ""], lines, right=(1,))
    print()
    return all(judged)


def print_details(rows: list[Row]) -> None:
    print("  what was negotiated, per server and compression (the clients' answers):")
    seen: set[tuple[str, str]] = set()
    for row in rows:
        if row.result is None or (row.server, row.compression) in seen:
            continue
        seen.add((row.server, row.compression))
        answers: dict[str, int] = {}
        compressed = ""
        for other in rows:
            if (other.server, other.compression) == (row.server, row.compression) and (
                other.result is not None
            ):
                for answer, count in (other.result.get("negotiated") or {}).items():
                    answers[answer] = answers.get(answer, 0) + count
                if other.impl == "raw" and other.result["messages"]:
                    share = other.result["compressed"] / other.result["messages"]
                    compressed = f"; raw clients: {share:.0%} of the messages compressed"
        listed = "; ".join(f"{a!r} x {n}" for a, n in sorted(answers.items()))
        print(
            f"  {LABELS[row.server]:24} {row.compression:8} {listed}{compressed} "
            f"[server: {row.server_note}]"
        )
    offers = {r.result["offer"] for r in rows if r.result and r.result.get("offer")}
    for offer in sorted(offers):
        print(f"  vimax_nb.client asked with {offer}")
    print()
    print("  per row and phase:")
    for row in rows:
        if row.result is None:
            continue
        for phase in row.result["phases"]:
            gc = phase["server_gc"]
            line = (
                f"  {row.label:44} {phase['phase']:10} {phase['deliveries']:>9,} in "
                f"{phase['seconds']:6.2f} s ({phase['deliveries_per_second']:>8,.0f}/s; emit "
                f"{phase['emit_seconds']:.2f} s, pacing lag p99/max "
                f"{phase['pacing_p99_lag_ms']:.1f}/{phase['worst_pacing_lag_ms']:.1f} ms; "
                f"GC {gc['gc_collections']} runs, {gc['gc_gen2']} gen2, longest "
                f"{gc['gc_max_ms']:.1f} ms; clients {phase['clients_cpu']:.0%} of a core, "
                f"{phase['clients_cpu_us_per_message']:.0f} us/msg"
            )
            log = phase.get("server_log")
            if log and log["batches"]:
                stored, written = log["stored"], log["written"]
                line += (
                    f"; log: {log['batches']} commits ({log['batch_events'] / log['batches']:.1f}"
                    f" events each), emit->stored p50/p99 {stored['p50_ms']:.2f}/"
                    f"{stored['p99_ms']:.2f} ms, emit->written {written['p50_ms']:.2f}/"
                    f"{written['p99_ms']:.2f} ms"
                )
            print(line + ")")
    print()


def print_profile(row: Row, top: int, phase: str) -> None:
    if not row.profile:
        return
    print(
        f"\ncProfile of the {row.label} server's loop thread, in an extra {phase} phase "
        f"that is not counted (top {top}):"
    )
    stats = pstats.Stats(row.profile, stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)


def choices(value: str, allowed: Sequence[str], what: str) -> list[str]:
    """``value`` (comma-separated, or ``all``) as a list of ``allowed`` names, in order."""
    names = list(allowed) if value == "all" else [v.strip() for v in value.split(",") if v]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{what}: {', '.join(unknown) or 'none given'}; choose from {', '.join(allowed)}"
        )
    return list(dict.fromkeys(names))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Fan-out to WebSocket subscribers: the full path, bare Tornado and peers."
    )
    parser.add_argument(
        "--servers",
        default="all",
        help=f"comma-separated, of {', '.join(SERVERS)} (default all)",
    )
    parser.add_argument(
        "--compression",
        choices=["both", "deflate", "none"],
        default="both",
        help="the subscribers offer permessage-deflate, or not, or both in turn (default both)",
    )
    parser.add_argument(
        "--impl",
        default="raw",
        help=f"the clients' WebSocket code, comma-separated, of {', '.join(IMPLS)} or all "
        "(default raw; see fanout_clients.py)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"--events {QUICK['events']} --seconds {QUICK['seconds']:g} unless given",
    )
    parser.add_argument("--clients", type=int, default=100, help="subscribers (default 100)")
    parser.add_argument(
        "--events",
        type=int,
        default=None,
        help=f"events of the burst (default {DEFAULT['events']}, --quick {QUICK['events']})",
    )
    parser.add_argument(
        "--rate", type=float, default=200.0, help="events/s of the paced phase (default 200)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help=f"length of the paced phase (default {DEFAULT['seconds']:g}, "
        f"--quick {QUICK['seconds']:g})",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="bursts per row, best kept (default 1)"
    )
    parser.add_argument(
        "--sample", type=int, default=10, help="latency of every Nth message (default 10)"
    )
    parser.add_argument(
        "--pad",
        type=int,
        default=480,
        metavar="BYTES",
        help="characters of filler text in each event (default 480: events of about 800 "
        "bytes, as a real run's progress events; 0: about 310, under the full path's "
        "compression threshold of 512)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds of paced events before each row's figures, not counted (default 1)",
    )
    parser.add_argument(
        "--socketio-mode",
        choices=["aiohttp", "tornado"],
        default="aiohttp",
        help="python-socketio's server driver (default aiohttp)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="cProfile each server's loop thread in an extra phase per row; print the top N",
    )
    parser.add_argument(
        "--profile-phase",
        choices=["fast", "paced"],
        default="fast",
        help="the kind of phase --profile adds (default fast)",
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra jupyter server argument, e.g. --VimaxApp.send_queue_limit=16777216",
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="experiment: gc.freeze() in every server once it is up",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=0.0,
        metavar="S",
        help="experiment: sys.setswitchinterval(S) in every server",
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write every row's figures to PATH"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    try:
        args.servers = choices(args.servers, SERVERS, "unknown server")
        args.impl = choices(args.impl, IMPLS, "unknown client implementation")
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    args.compression = list(COMPRESSIONS) if args.compression == "both" else [args.compression]
    preset = QUICK if args.quick else DEFAULT
    args.events = preset["events"] if args.events is None else args.events
    args.seconds = preset["seconds"] if args.seconds is None else args.seconds
    if min(args.clients, args.events, args.repeat, args.sample) < 1 or args.rate <= 0:
        parser.error("--clients, --events, --repeat, --sample and --rate must be positive")
    if "socketio" in args.servers and importlib.util.find_spec("socketio") is None:
        parser.error(
            'the socketio peer needs python-socketio: pip install -e ".[bench]" '
            "(or leave it out with --servers)"
        )
    workdir = Path(tempfile.mkdtemp(prefix="vimax-fanout-"))
    try:
        started = time.monotonic()
        rows: list[Row] = []
        for kind in args.servers:
            rows += measure_server(kind, args.compression, args, workdir)
        ok = report(args, rows)
        if args.json is not None:
            settings = {k: v for k, v in vars(args).items() if k != "json"}
            args.json.write_text(
                json.dumps(
                    {"settings": settings, "rows": [dataclasses.asdict(r) for r in rows]},
                    indent=1,
                    default=str,
                )
            )
        if args.profile:
            for row in rows:
                with contextlib.suppress(OSError):
                    print_profile(row, args.profile, args.profile_phase)
        print(f"\n(whole run {time.monotonic() - started:.0f} s)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
