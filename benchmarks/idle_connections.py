"""Idle WebSocket connections: the server memory each costs, and the CPU of its heartbeats.

For each ``--compression`` (``deflate`` and ``none``) a ``jupyter server`` with
``vimax_nb.server`` from this checkout is started (a token, a temporary root and Jupyter
directories, ``--VimaxApp.heartbeat_interval`` = ``--heartbeat`` s, and the benchmark-only
extension ``idle_probe.py``), and ``--connections`` (5,000) connections are opened to
``/vimax/ws`` the way our client opens them (``idle_clients.py``: ``websockets.connect``
with ``Authorization: token``, offering permessage-deflate with the library's defaults or
``compression=None``, pinging at the server's interval), each subscribed to the
coordinator room, from ``--processes`` client processes. The same is done against a bare
Tornado WebSocket server (``idle_bare.py``: one welcome, subscribe answered, Tornado's
pings at the same interval) for each ``--bare`` compression. Every process involved
raises its open-file limit (RLIMIT_NOFILE) to the hard limit.

Measured on each server:

- memory: the server's resident memory after a full collection (``gc.collect()`` in the
  server), with a few connections opened and closed first (so the service and Tornado's
  WebSocket code are loaded), then again with the connections open; (after - before) /
  connections open then is the memory per idle connection. The same after glibc's ``malloc_trim``
  is printed beside it (freed heap the allocator kept);
- heartbeats: the server's CPU time (user + system, psutil) over ``--window`` s with the
  connections idle and the coordinator's timed metrics silenced, less its CPU over a
  window with no connection; scaled from ``--heartbeat`` to the default 30 s interval
  (the cost is one ping and one pong each way per interval and connection) and given per
  minute;
- on the vimax server, the coordinator room's timed ``coordinator_metrics`` event (every
  ``metrics_interval``, 5 s by default) fanned out to every idle subscriber: the extra
  CPU of a window in which the probe emits ``--metrics-events`` of them, per minute at
  the coordinator's interval;
- connections that ended before the end (a heartbeat missed, on either side: a short
  ``--heartbeat`` on a loaded machine can do it) are reported, by close code, and make
  the vimax row miss its target.

``--tracemalloc N`` adds a server for each row on which tracemalloc traces what ``N``
connections allocate (its own overhead makes the server slower and bigger, so these
servers give no other figure), and prints the files and source lines that allocated
most, per connection: what dominates the memory of a connection.

Target: at most ``TARGET_BYTES`` (20 KB) per idle connection on the vimax server, the
way our client connects. Bare Tornado rows are the reference (no target).

Run: ``python benchmarks/idle_connections.py [--connections 5000] [--processes 4]
[--compression deflate,none] [--bare none,deflate] [--heartbeat 5] [--window 10]
[--tracemalloc 1000] [--strict]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from _table import print_table  # noqa: E402
from idle_clients import ClientPool, ClientSpec, IdleClients, Opened  # noqa: E402
from idle_common import raise_fd_limit  # noqa: E402
from replay_resume import free_port, log_tail  # noqa: E402
from replay_resume import server as vimax_server  # noqa: E402

TARGET_BYTES = 20 * 1024  # server memory per idle connection
DEFAULT_HEARTBEAT = 30.0  # VimaxApp.heartbeat_interval's default, seconds
WARMUP_CONNECTIONS = 20
SILENT_METRICS = 1e9  # a metrics_interval that never comes during the benchmark


@dataclass
class Measured:
    """One server's figures."""

    server: str
    compression: str
    connections: int = 0
    opened: Opened = field(default_factory=Opened)
    rss_before: int = 0
    rss_after: int = 0
    trimmed_before: int = 0
    trimmed_after: int = 0
    idle_cpu: float = 0.0  # CPU seconds a second with no connection
    heartbeat_cpu: float = 0.0  # CPU seconds a second with the connections, at --heartbeat
    metrics_cpu_per_event: float | None = None
    metrics_interval: float | None = None
    open_at_memory: int = 0  # connections open when the memory was read
    closed: dict[str, int] = field(default_factory=dict)  # by close code, by the end
    still_open: int = 0
    tracemalloc: dict[str, Any] | None = None

    def per_connection(self, trimmed: bool = False) -> float:
        """Bytes of server memory per open connection beyond the baseline."""
        if not self.open_at_memory:
            return 0.0
        if trimmed:
            return (self.trimmed_after - self.trimmed_before) / self.open_at_memory
        return (self.rss_after - self.rss_before) / self.open_at_memory

    def heartbeat_cpu_per_minute(self, heartbeat: float) -> float:
        """CPU seconds a minute the heartbeats of all connections cost at the default 30 s
        interval (measured at ``heartbeat`` s)."""
        return max(0.0, self.heartbeat_cpu - self.idle_cpu) * 60 * heartbeat / DEFAULT_HEARTBEAT


# -- talking to the servers ----------------------------------------------------------------


def post_json(url: str, token: str | None = None, timeout: float = 120) -> dict[str, Any]:
    """POST to ``url`` (with the token, if any) and decode the JSON answer."""
    headers = {"Authorization": f"token {token}"} if token else {}
    request = urllib.request.Request(url, data=b"", method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def cpu_seconds(process: psutil.Process) -> float:
    """The process's CPU time so far, user and system, every thread."""
    times = process.cpu_times()
    return float(times.user + times.system)


def cpu_rate(process: psutil.Process, seconds: float) -> float:
    """The process's CPU seconds a second over the next ``seconds`` of wall time."""
    cpu, started = cpu_seconds(process), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(process) - cpu) / (time.perf_counter() - started)


def warm_up(spec: ClientSpec) -> None:
    """Open ``spec.count`` connections in this process and drop them: the server has
    loaded and started everything a connection needs when this returns."""
    import asyncio

    async def run() -> None:
        clients = IdleClients(spec)
        opened = await clients.open_all()
        if opened.failed:
            raise RuntimeError(f"warm-up connections failed: {opened.errors}")
        clients.abort_all()
        await asyncio.sleep(0.5)

    asyncio.run(run())


@contextmanager
def bare_server(workdir: Path, compression: str, heartbeat: float) -> Iterator[tuple[Any, str]]:
    """A running ``idle_bare.py``: its process and its base URL; stopped on exit."""
    port = free_port()
    log = workdir / f"bare-{compression}.log"
    command = [
        sys.executable,
        str(HERE / "idle_bare.py"),
        f"--port={port}",
        f"--compression={compression}",
        f"--heartbeat={heartbeat}",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=HERE, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the bare server exited:\n{log_tail(log)}")
            try:
                post_json(f"{base}/settle", timeout=2)
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the bare server did not start:\n{log_tail(log)}") from None
                time.sleep(0.2)
        yield process, base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


# -- one server ----------------------------------------------------------------------------


Call = Callable[[str], dict[str, Any]]


def measure_connections(
    measured: Measured,
    process: psutil.Process,
    call: Call,
    spec: ClientSpec,
    args: argparse.Namespace,
    metrics: bool = False,
) -> None:
    """Fill ``measured``: baseline memory and CPU, open ``spec.count`` connections,
    memory and heartbeat CPU with them, and with ``metrics`` the vimax server's fan-out of
    ``coordinator_metrics``; the connections are dropped before this returns. ``call``
    posts to the server's ``settle`` and ``emit-metrics`` endpoints."""
    call("settle")
    before = call("settle")
    measured.rss_before, measured.trimmed_before = before["rss"], before["rss_trimmed"]
    measured.idle_cpu = cpu_rate(process, args.idle_window)
    pool = ClientPool(spec, args.processes)
    try:
        measured.opened = pool.open()
        measured.connections = spec.count
        time.sleep(args.settle)
        measured.open_at_memory = pool.status()["open"]
        after = call("settle")
        measured.rss_after, measured.trimmed_after = after["rss"], after["rss_trimmed"]
        measured.heartbeat_cpu = cpu_rate(process, args.window)
        if metrics and args.metrics_events:
            spacing = args.window / args.metrics_events
            cpu, started = cpu_seconds(process), time.perf_counter()
            call(f"emit-metrics?count={args.metrics_events}&spacing={spacing}")
            time.sleep(max(0.0, args.window - (time.perf_counter() - started)))
            spent = cpu_seconds(process) - cpu
            elapsed = time.perf_counter() - started
            extra = spent - measured.heartbeat_cpu * elapsed
            measured.metrics_cpu_per_event = max(0.0, extra) / args.metrics_events
        status = pool.status()
        measured.still_open = status["open"]
        measured.closed = dict(status["closes"])
    finally:
        pool.stop()


def trace_connections(
    measured: Measured, call: Call, spec: ClientSpec, args: argparse.Namespace
) -> None:
    """Fill ``measured.tracemalloc`` with what the server allocated for ``spec.count``
    connections (tracemalloc running from before the first to after the last)."""
    call("settle")
    call("tracemalloc?action=start")
    pool = ClientPool(spec, args.processes)
    try:
        measured.opened = pool.open()
        measured.connections = spec.count
        time.sleep(args.settle)
        measured.open_at_memory = pool.status()["open"]
        measured.tracemalloc = call("tracemalloc?action=stop&top=15")
    finally:
        pool.stop()


def measure_vimax(
    workdir: Path, compression: str, args: argparse.Namespace, tracemalloc: int = 0
) -> Measured:
    """The vimax server's figures with ``compression`` offered by the clients (with
    ``tracemalloc`` > 0: only tracemalloc's findings for that many connections)."""
    measured = Measured("vimax_nb.server", compression)
    vimax_work = workdir / "vimax-work"
    vimax_work.mkdir(parents=True, exist_ok=True)
    options = [f"--VimaxApp.heartbeat_interval={args.heartbeat}"]
    with vimax_server(workdir, vimax_work, 1024 * 1024, options, ["idle_probe"]) as running:
        process = psutil.Process(running.process.pid)

        def call(path: str) -> dict[str, Any]:
            return post_json(f"{running.http_url}/vimax-idle/{path}", running.token)

        def spec(count: int) -> ClientSpec:
            offered = None if compression == "none" else compression
            return ClientSpec(
                running.ws_url, running.token, count, offered, args.heartbeat, args.concurrency
            )

        warm_up(spec(WARMUP_CONNECTIONS))
        measured.metrics_interval = call(f"metrics?interval={SILENT_METRICS}")["previous"]
        if tracemalloc:
            trace_connections(measured, call, spec(tracemalloc), args)
        else:
            measure_connections(measured, process, call, spec(args.connections), args, True)
    return measured


def measure_bare(
    workdir: Path, compression: str, args: argparse.Namespace, tracemalloc: int = 0
) -> Measured:
    """The bare Tornado server's figures with ``compression`` agreed when offered (with
    ``tracemalloc`` > 0: only tracemalloc's findings for that many connections)."""
    measured = Measured("bare tornado", compression)
    with bare_server(workdir, compression, args.heartbeat) as (popen, base):
        process = psutil.Process(popen.pid)
        ws_url = base.replace("http://", "ws://") + "/ws"

        def call(path: str) -> dict[str, Any]:
            return post_json(f"{base}/{path}")

        def spec(count: int) -> ClientSpec:
            offered = None if compression == "none" else compression
            return ClientSpec(ws_url, None, count, offered, args.heartbeat, args.concurrency)

        warm_up(spec(WARMUP_CONNECTIONS))
        if tracemalloc:
            trace_connections(measured, call, spec(tracemalloc), args)
        else:
            measure_connections(measured, process, call, spec(args.connections), args)
    return measured


# -- the report ----------------------------------------------------------------------------


def agreed(extensions: dict[str, int]) -> str:
    """What the server agreed to, in short: ``none``, ``deflate``, or deflate with the
    sides that take no context over (``nct s+c``); several kinds are joined."""
    kinds = []
    for header in sorted(extensions):
        if not header:
            kinds.append("none")
            continue
        sides = [s for s in ("server", "client") if f"{s}_no_context_takeover" in header]
        kinds.append("deflate" + (f" nct {'+'.join(s[0] for s in sides)}" if sides else ""))
    return ", ".join(kinds) or "-"


def report(results: Sequence[Measured], args: argparse.Namespace) -> bool:
    """Print the table and the notes; whether every vimax row met the target."""
    bare_none = next(
        (r for r in results if r.server == "bare tornado" and r.compression == "none"), None
    )
    rows: list[list[str]] = []
    ok = True
    for r in results:
        per = r.per_connection()
        closed = sum(r.closed.values())
        if r.server == "vimax_nb.server":
            passed = per <= TARGET_BYTES and not r.opened.failed and closed == 0
            ok = ok and passed
            target = [f"<= {TARGET_BYTES // 1024} KB", "PASS" if passed else "BELOW"]
        else:
            target = ["reference", ""]
        ratio = (
            f"{per / bare_none.per_connection():.1f}x"
            if bare_none is not None and bare_none.per_connection() > 0
            else "-"
        )
        metrics = "-"
        if r.metrics_cpu_per_event is not None and r.metrics_interval:
            per_minute = r.metrics_cpu_per_event * 60 / r.metrics_interval
            metrics = f"{r.metrics_cpu_per_event * 1000:.1f} / {per_minute:.2f}"
        failed = f" ({r.opened.failed} failed)" if r.opened.failed else ""
        rows.append(
            [
                f"{r.server}, offered {r.compression}",
                agreed(dict(r.opened.extensions)),
                f"{r.opened.opened:,}{failed}",
                f"{r.opened.seconds:.1f}",
                f"{r.rss_before / 2**20:.1f}",
                f"{r.rss_after / 2**20:.1f}",
                f"{per / 1024:.1f}",
                f"{r.per_connection(trimmed=True) / 1024:.1f}",
                ratio,
                f"{r.heartbeat_cpu_per_minute(args.heartbeat):.2f}",
                metrics,
                f"{closed}",
                *target,
            ]
        )
    print_table(
        [
            f"{args.connections:,} idle connections to",
            "agreed",
            "opened",
            "open s",
            "RSS before MB",
            "RSS after MB",
            "KB/conn",
            "KB/conn trimmed",
            "x bare",
            "heartbeat CPU s/min @30 s",
            "metrics event ms / CPU s/min",
            "ended early",
            "target",
            "",
        ],
        rows,
        right=(2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
    )
    print()
    print(
        f"heartbeats measured at {args.heartbeat:g} s (server and client pings) over "
        f"{args.window:g} s, less {args.idle_window:g} s with no connection, scaled to "
        f"{DEFAULT_HEARTBEAT:g} s; client processes: {args.processes}"
    )
    for r in results:
        headers = "; ".join(f"{h or '(none)'} x{n}" for h, n in sorted(r.opened.extensions.items()))
        print(f"{r.server}, offered {r.compression}: Sec-WebSocket-Extensions {headers}")
        if r.closed:
            print(f"  ended before the end (by close code): {r.closed}")
        for error in r.opened.errors:
            print(f"  error: {error}")
    return ok


def short_path(where: str, root: str) -> str:
    """``where`` (a file:line) without the checkout's or an environment's prefix."""
    for prefix in (root, sys.prefix + os.sep, sys.base_prefix + os.sep):
        if where.startswith(prefix):
            return where[len(prefix) :]
    return where


def print_tracemalloc(measured: Measured) -> None:
    """tracemalloc's top lines, per connection."""
    traced = measured.tracemalloc
    count = measured.open_at_memory
    if traced is None or not count:
        return
    root = str(ROOT) + os.sep
    print()
    print(
        f"tracemalloc, {measured.server}, {count:,} connections offering {measured.compression}: "
        f"{traced['total'] / count / 1024:.1f} KB/conn traced in all"
    )
    for key, title in (("files", "allocated in (top files)"), ("lines", "at (top lines)")):
        print_table(
            [title, "KB/conn", "blocks/conn"],
            [
                [
                    short_path(line["where"], root),
                    f"{line['size'] / count / 1024:.2f}",
                    f"{line['count'] / count:.1f}",
                ]
                for line in traced[key]
            ],
            right=(1, 2),
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=5_000)
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="handshakes in flight per client process"
    )
    parser.add_argument(
        "--compression",
        default="deflate,none",
        help="what the clients of the vimax server offer: deflate, none, or both (comma)",
    )
    parser.add_argument(
        "--bare", default="none,deflate", help="bare Tornado servers: none, deflate, both, or ''"
    )
    parser.add_argument(
        "--heartbeat", type=float, default=5.0, help="the servers' (and clients') ping interval"
    )
    parser.add_argument("--window", type=float, default=10.0, help="seconds of each CPU window")
    parser.add_argument(
        "--idle-window", type=float, default=5.0, help="seconds of the no-connection window"
    )
    parser.add_argument(
        "--metrics-events",
        type=int,
        default=5,
        help="coordinator_metrics events emitted in the metrics window (0: skip it)",
    )
    parser.add_argument(
        "--settle", type=float, default=2.0, help="seconds to wait after opening, before memory"
    )
    parser.add_argument(
        "--tracemalloc", type=int, default=0, help="connections traced by tracemalloc (0: none)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    compressions = [c for c in args.compression.split(",") if c]
    bares = [c for c in args.bare.split(",") if c]
    for choice in (*compressions, *bares):
        if choice not in ("deflate", "none"):
            parser.error(f"compression must be deflate or none, not {choice!r}")
    limit = raise_fd_limit()
    needed = args.connections + 100
    if limit < needed:
        print(f"warning: the open-file limit is {limit}; {needed} are needed", file=sys.stderr)
    workdir = Path(tempfile.mkdtemp(prefix="vimax-idle-bench-"))
    results: list[Measured] = []
    traced: list[Measured] = []
    try:
        for compression in compressions:
            results.append(measure_vimax(workdir / f"vimax-{compression}", compression, args))
        for compression in bares:
            results.append(measure_bare(workdir, compression, args))
        if args.tracemalloc:
            traced = [
                measure_vimax(
                    workdir / f"vimax-traced-{compression}", compression, args, args.tracemalloc
                )
                for compression in compressions
            ]
            traced += [measure_bare(workdir, c, args, args.tracemalloc) for c in bares]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ok = report(results, args)
    for measured in traced:
        print_tracemalloc(measured)
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
