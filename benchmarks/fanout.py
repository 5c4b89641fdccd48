"""Fan-out of one workflow room to many WebSocket subscribers: the full path against a
bare Tornado broadcast, in the same run.

Two servers run one after the other, each in a subprocess, and the same subscribers
(``fanout_clients.py``, a third process) drive both:

- the full path: ``jupyter server`` with the ``vimax_nb.server`` extension and the
  benchmark-only extension ``fanout_producer`` (``benchmarks/`` on its path), which
  runs a tiny procedural workflow to have a real room, then emits ``ProgressEvent``s
  for that room through ``coordinator.events.emit``: the broadcaster appends each to
  the durable event log (SQLite), the hub fans it out after the commit, framed once,
  through bounded per-connection queues;
- the ceiling: ``fanout_bare.py``, one Tornado ``WebSocketHandler`` whose clients sit
  in a set; each message is serialized once and ``write_message`` is called for every
  client (no log, no rooms, no queues).

For each: ``--clients`` connections (no ``permessage-deflate`` offered: the hub's
framed-once fast path) subscribe to the room; ``--rate`` events a second are emitted
for ``--seconds`` (p50/p99 of the emit-to-receipt latency of every ``--sample``-th
message of each client), then ``--events`` events as fast as possible (deliveries per
second = deliveries / (last receipt - first emit)), best of ``--repeat``. Each client
checks that its seqs arrive contiguous with no duplicate, and reconnects and resumes
from its last seq when it is closed (a 4008 among others: reported as a problem).
The servers' own figures come with it: CPU per delivery (process and loop thread),
garbage-collector pauses, how late the pacing ran, and for the full path the time
from emit to the commit's delivery on the loop and to the end of the socket writes.

Targets: full-path throughput at least 80% of bare Tornado's; p99 at the steady rate
at most 20 ms and at most 1.25 x bare Tornado's.

Run: ``python benchmarks/fanout.py [--clients 100] [--events 20000] [--rate 200]
[--seconds 20] [--repeat 1] [--impl raw|websockets] [--profile 25] [--strict]``.
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET_THROUGHPUT_RATIO = 0.80  # full path / bare Tornado
TARGET_P99_MS = 20.0
TARGET_P99_RATIO = 1.25  # full path / bare Tornado, at the same pace
CLIENTS_BUSY = 0.85  # of a core: above it the clients process may be what is measured


@dataclass
class Server:
    """A running server subprocess and how to reach it."""

    name: str
    process: subprocess.Popen[bytes]
    http_url: str  # the base of emit, stats, profile
    ws_url: str
    token: str
    log: Path


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
            raise RuntimeError(f"{server.name} exited:\n{log_tail(server.log)}")
        try:
            request(f"{server.http_url}/stats", server.token, timeout=2)
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and "extension failed loading" in log_tail(server.log, 400):
                raise RuntimeError(
                    f"{server.name}: an extension failed to load:\n{log_tail(server.log)}"
                ) from exc
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{server.name} did not answer in time:\n{log_tail(server.log)}")


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
def bare_server(args: argparse.Namespace, workdir: Path, profile: Path | None) -> Iterator[Server]:
    port = free_port()
    log = workdir / "bare.log"
    env = server_env(args, profile)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "fanout_bare.py"), "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(
        "bare Tornado", process, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws", "", log
    )
    try:
        wait_ready(server, time.monotonic() + 30)
        yield server
    finally:
        stop(process)


@contextmanager
def full_server(args: argparse.Namespace, workdir: Path, profile: Path | None) -> Iterator[Server]:
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
        "full path",
        process,
        f"http://127.0.0.1:{port}/vimax-bench",
        f"ws://127.0.0.1:{port}/vimax/ws",
        token,
        log,
    )
    try:
        wait_ready(server, time.monotonic() + 60)
        yield server
    finally:
        stop(process)


def run_clients(
    server: Server, args: argparse.Namespace, room: str, after: int | None, workflow: str
) -> dict[str, Any]:
    command = [
        sys.executable,
        str(HERE / "fanout_clients.py"),
        f"--ws-url={server.ws_url}",
        f"--http-url={server.http_url}",
        f"--token={server.token}",
        f"--room={room}",
        f"--workflow={workflow}",
        f"--clients={args.clients}",
        f"--events={args.events}",
        f"--repeat={args.repeat}",
        f"--rate={args.rate}",
        f"--seconds={args.seconds}",
        f"--sample={args.sample}",
        f"--impl={args.impl}",
    ]
    if after is not None:
        command.append(f"--after={after}")
    if args.profile:
        command.append(f"--profile={args.profile_phase}")
    burst_deadline = args.events * args.clients / 10_000 + 30  # as fanout_clients sets it
    timeout = 120 + (args.repeat + 1) * (burst_deadline + 30) + 2 * (args.seconds + 60)
    done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"the clients failed against {server.name} (status {done.returncode}):\n"
            f"{done.stderr.decode(errors='replace')[-3000:]}\n"
            f"server log:\n{log_tail(server.log)}"
        )
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def measure(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    profile = workdir / f"{name}.prof" if args.profile else None
    print(f"... {name}: starting the server", file=sys.stderr, flush=True)
    if name == "bare":
        with bare_server(args, workdir, profile) as server:
            print(f"... {name}: {args.clients} clients", file=sys.stderr, flush=True)
            result = run_clients(server, args, "workflow:bare", None, "bare")
    else:
        with full_server(args, workdir, profile) as server:
            setup = request(f"{server.http_url}/setup", server.token, "POST", timeout=150)
            print(
                f"... {name}: workflow {setup['workflow']} {setup['state']}, "
                f"room top {setup['top']}; {setup['gc_objects']:,} objects tracked by the "
                f"collector, {setup['gc_frozen']:,} frozen; experiments "
                f"{setup['experiments'] or 'none'}; {args.clients} clients",
                file=sys.stderr,
                flush=True,
            )
            result = run_clients(server, args, setup["room"], setup["top"], setup["workflow"])
    result["profile"] = str(profile) if profile is not None and profile.exists() else None
    return result


def best_burst(result: dict[str, Any]) -> dict[str, Any]:
    bursts = [p for p in result["phases"] if p["phase"] == "throughput"]
    best: dict[str, Any] = max(bursts, key=lambda p: p["deliveries_per_second"])
    return best


def paced(result: dict[str, Any]) -> dict[str, Any]:
    phase: dict[str, Any] = next(p for p in result["phases"] if p["phase"] == "latency")
    return phase


def problems(result: dict[str, Any]) -> list[str]:
    """Correctness failures of a server's run: gaps, duplicates, lost or closed clients."""
    found = []
    for phase in result["phases"]:
        name = phase["phase"]
        if phase["gaps"] or phase["duplicates"]:
            found.append(f"{name}: {phase['gaps']} gaps, {phase['duplicates']} duplicates")
        if phase["deliveries"] != phase["expected"]:
            found.append(f"{name}: {phase['deliveries']} of {phase['expected']} delivered")
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


def report(args: argparse.Namespace, bare: dict[str, Any], full: dict[str, Any]) -> bool:
    """Print the table; return whether every target is met and nothing went wrong."""
    bb, fb, bp, fp = best_burst(bare), best_burst(full), paced(bare), paced(full)
    ratio = fb["deliveries_per_second"] / bb["deliveries_per_second"]
    p99_ratio = fp["p99_ms"] / bp["p99_ms"]
    p50_ratio = fp["p50_ms"] / bp["p50_ms"]
    throughput_ok = ratio >= TARGET_THROUGHPUT_RATIO
    latency_ok = fp["p99_ms"] <= TARGET_P99_MS and p99_ratio <= TARGET_P99_RATIO
    rows: list[Sequence[str]] = [
        ("", "bare Tornado", "full path", "full/bare", "target", ""),
        (
            f"deliveries/s, {args.events:,} events as fast as possible",
            fmt(bb["deliveries_per_second"], 0),
            fmt(fb["deliveries_per_second"], 0),
            f"{ratio:.2f}",
            f">= {TARGET_THROUGHPUT_RATIO:.2f} x bare",
            "PASS" if throughput_ok else "BELOW",
        ),
        (
            f"p50 latency ms, {fmt(args.rate, 0)} events/s",
            fmt(bp["p50_ms"], 2),
            fmt(fp["p50_ms"], 2),
            f"{p50_ratio:.2f}",
            "",
            "",
        ),
        (
            f"p99 latency ms, {fmt(args.rate, 0)} events/s",
            fmt(bp["p99_ms"], 2),
            fmt(fp["p99_ms"], 2),
            f"{p99_ratio:.2f}",
            f"<= {TARGET_P99_MS:g} ms, <= {TARGET_P99_RATIO:g} x bare",
            "PASS" if latency_ok else "BELOW",
        ),
        (
            "max latency ms, paced",
            fmt(bp["max_ms"], 2),
            fmt(fp["max_ms"], 2),
            "",
            "",
            "",
        ),
        (
            "deliveries/s, paced",
            fmt(bp["deliveries_per_second"], 0),
            fmt(fp["deliveries_per_second"], 0),
            "",
            "",
            "",
        ),
        (
            "p50 / p99 latency ms, as fast as possible",
            f"{fmt(bb['p50_ms'])} / {fmt(bb['p99_ms'])}",
            f"{fmt(fb['p50_ms'])} / {fmt(fb['p99_ms'])}",
            "",
            "",
            "",
        ),
        (
            "server CPU us/delivery, fast / paced",
            f"{fmt(bb['server_cpu_us_per_delivery'])} / {fmt(bp['server_cpu_us_per_delivery'])}",
            f"{fmt(fb['server_cpu_us_per_delivery'])} / {fmt(fp['server_cpu_us_per_delivery'])}",
            "",
            "",
            "",
        ),
        (
            "  of which the loop thread",
            f"{fmt(bb['server_loop_us_per_delivery'])} / {fmt(bp['server_loop_us_per_delivery'])}",
            f"{fmt(fb['server_loop_us_per_delivery'])} / {fmt(fp['server_loop_us_per_delivery'])}",
            "",
            "",
            "",
        ),
        (
            "server loop thread, % of a core, fast / paced",
            f"{bb['server_loop_cpu']:.0%} / {bp['server_loop_cpu']:.0%}",
            f"{fb['server_loop_cpu']:.0%} / {fp['server_loop_cpu']:.0%}",
            "",
            "",
            "",
        ),
        (
            "clients process, % of a core, fast / paced",
            f"{bb['clients_cpu']:.0%} / {bp['clients_cpu']:.0%}",
            f"{fb['clients_cpu']:.0%} / {fp['clients_cpu']:.0%}",
            "",
            "",
            "",
        ),
        (
            "seq gaps / duplicates (all phases)",
            f"{sum(p['gaps'] for p in bare['phases'])} / "
            f"{sum(p['duplicates'] for p in bare['phases'])}",
            f"{sum(p['gaps'] for p in full['phases'])} / "
            f"{sum(p['duplicates'] for p in full['phases'])}",
            "",
            "0 / 0",
            "",
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    deliveries = args.events * args.clients
    print(
        f"fan-out: {args.clients} subscribers of one room in a separate process "
        f"({full['impl']} clients, compression=None: no permessage-deflate offered, so the "
        "hub's framed-once fast path is used)"
    )
    print(
        f"  fast: {args.events:,} events = {deliveries:,} deliveries, best of {args.repeat}; "
        f"paced: {fmt(args.rate, 0)} events/s for {fmt(args.seconds, 0)} s "
        f"({fmt(args.rate * args.clients, 0)} deliveries/s); latency of every "
        f"{args.sample}th message per client"
    )
    experiments = [
        name
        for name, on in (
            ("gc.freeze() in both servers", args.gc_freeze),
            (f"sys.setswitchinterval({args.switch_interval:g}) in both", args.switch_interval),
            (" ".join(args.server_arg), args.server_arg),
        )
        if on
    ]
    print(f"  experiments: {'; '.join(experiments)}" if experiments else "  no experiment")
    print()
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(widths[i]) for i, cell in enumerate(row[1:4], 1)]
        cells += [row[4].ljust(widths[4]), row[5]]
        print("  ".join(cells).rstrip())
    print()
    for label, result in (("bare Tornado", bare), ("full path", full)):
        for phase in result["phases"]:
            print(
                f"  {label:12}  {phase['phase']:10}  {phase['deliveries']:>9,} deliveries in "
                f"{phase['seconds']:6.2f} s  ({phase['deliveries_per_second']:>8,.0f}/s; "
                f"emit {phase['emit_seconds']:.2f} s, pacing lag <= "
                f"{phase['worst_pacing_lag_ms']:.1f} ms, "
                f"{phase['incomplete_clients']} clients short)"
            )
    print()
    print("  server-side diagnostics per phase:")
    for label, result in (("bare Tornado", bare), ("full path", full)):
        for phase in result["phases"]:
            gc = phase["server_gc"]
            line = (
                f"  {label:12}  {phase['phase']:10}  pacing lag p99 "
                f"{phase['pacing_p99_lag_ms']:.1f} ms, worst {phase['worst_pacing_lag_ms']:.1f} ms"
                f" (event {phase['worst_pacing_lag_at']}); GC {gc['gc_collections']} runs, "
                f"{gc['gc_gen2']} gen2, longest {gc['gc_max_ms']:.1f} ms"
            )
            log = phase.get("server_log")
            if log and log["batches"]:
                stored, written = log["stored"], log["written"]
                line += (
                    f"; log: {log['batches']} commits ({log['batch_events'] / log['batches']:.1f}"
                    f" events each); emit->stored p50/p99/max {stored['p50_ms']:.2f}/"
                    f"{stored['p99_ms']:.2f}/{stored['max_ms']:.1f} ms, emit->written "
                    f"{written['p50_ms']:.2f}/{written['p99_ms']:.2f}/{written['max_ms']:.1f} ms"
                )
            print(line)
    failures = problems(bare) + problems(full)
    for failure in failures:
        print(f"  PROBLEM: {failure}")
    for label, result in (("bare Tornado", bare), ("full path", full)):
        for phase in result["phases"]:
            if phase["clients_cpu"] > CLIENTS_BUSY:
                print(
                    f"  NOTE: {label} {phase['phase']}: the clients process used "
                    f"{phase['clients_cpu']:.0%} of a core; this figure may be bound by the "
                    "clients rather than the server"
                )
    return throughput_ok and latency_ok and not failures


def print_profile(path: str | None, label: str, top: int, phase: str) -> None:
    if not path:
        return
    print(
        f"\ncProfile of the {label} server's loop thread, in an extra {phase} phase that is "
        f"not counted (top {top}):"
    )
    stats = pstats.Stats(path, stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Fan-out to WebSocket subscribers: the full path against bare Tornado."
    )
    parser.add_argument("--clients", type=int, default=100, help="subscribers (default 100)")
    parser.add_argument(
        "--events", type=int, default=20_000, help="events of the fast phase (default 20000)"
    )
    parser.add_argument(
        "--rate", type=float, default=200.0, help="events/s of the paced phase (default 200)"
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="length of the paced phase (default 20)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="fast phases per server, best kept (default 1)"
    )
    parser.add_argument(
        "--sample", type=int, default=10, help="latency of every Nth message (default 10)"
    )
    parser.add_argument(
        "--impl",
        choices=["raw", "websockets"],
        default="raw",
        help="the clients' WebSocket code (default raw; see fanout_clients.py)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="cProfile each server's loop thread in an extra phase; print the top N",
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
        help="experiment: gc.freeze() in both servers once they are up",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=0.0,
        metavar="S",
        help="experiment: sys.setswitchinterval(S) in both servers",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if min(args.clients, args.events, args.repeat, args.sample) < 1 or args.rate <= 0:
        parser.error("--clients, --events, --repeat, --sample and --rate must be positive")
    workdir = Path(tempfile.mkdtemp(prefix="vimax-fanout-"))
    try:
        started = time.monotonic()
        bare = measure("bare", args, workdir)
        full = measure("full", args, workdir)
        ok = report(args, bare, full)
        if args.profile:
            print_profile(bare.get("profile"), "bare Tornado", args.profile, args.profile_phase)
            print_profile(full.get("profile"), "full-path", args.profile, args.profile_phase)
        print(f"\n(whole run {time.monotonic() - started:.0f} s)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
