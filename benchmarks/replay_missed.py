"""Missed events replayed to resuming clients: one client, then many at once.

The event log is filled first through ``vimax_nb.store`` (one stored workflow, completed,
and ``--seen`` + ``--events`` (10,000) progress events of about 550 bytes in its room),
then a ``jupyter server`` with ``vimax_nb.server`` from this checkout is started on it
(defaults: 1 MiB send queue, deflate agreed when offered). A client that has seen the
first ``--seen`` events resumes the room (``subscribe`` with ``after`` = ``--seen`` and
the epoch, on an open connection): the time from sending the subscribe to the last
missed event, each seq once and in order (``replay_clients.py``), with

- ``raw``: a raw client, no deflate: byte-level framing, seqs found by byte search;
- ``raw-deflate``: the same offering permessage-deflate as ``websockets`` does, inflating
  with zlib;
- ``websockets``: ``websockets.connect`` with its default deflate offer, as our client
  connects to a remote server, ``json.loads`` per message; ``websockets-none`` without;
- ``client``: ``vimax_nb.client.ClientConnection`` with its default options (what users
  run; from a kernel beside the server), and ``client-deflate`` with
  ``SocketOptions(compression="deflate")`` when this checkout's client has the option
  (as to a remote server);

best of ``--repeat``. Then ``--clients`` (100) raw clients (``--many``: ``raw``,
``raw-deflate``) in ``--processes`` processes connect, and on one signal resume the same
events at once: the time until every one has them all, the events/s delivered in all.
Each row gives the server's CPU seconds over the run and the clients', and what the
server agreed (for ``vimax_nb``'s client, as ``GET /vimax/ws/client/{id}`` tells it).
``--profile N`` prints cProfile's top ``N`` functions of the server's loop (the
benchmark-only extension ``replay_probe.py``) during each many-client run.

Target: a single client has the missed events within ``TARGET_SECONDS`` (0.3 s).

Run: ``python benchmarks/replay_missed.py [--events 10000] [--seen 100]
[--impl raw,raw-deflate,websockets,websockets-none,client,client-deflate]
[--clients 100] [--many raw,raw-deflate] [--processes 2] [--repeat 3] [--profile 25]
[--strict]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from _table import print_table  # noqa: E402
from replay_clients import (  # noqa: E402
    ManyClients,
    ManySpec,
    Resumed,
    client_resume,
    raw_resume,
    websockets_resume,
)
from replay_resume import Server, payload, server  # noqa: E402

from vimax_nb.client.reconnecting import SocketOptions  # noqa: E402
from vimax_nb.protocol import WorkflowRecord, WorkflowState, workflow_room  # noqa: E402
from vimax_nb.store import Store  # noqa: E402

TARGET_SECONDS = 0.3  # one client resuming 10,000 missed events
WORKFLOW_ID = "0123456789ab"
ROOM = workflow_room(WORKFLOW_ID)
SINGLE_IMPLS = ("raw", "raw-deflate", "websockets", "websockets-none", "client", "client-deflate")
MANY_IMPLS = ("raw", "raw-deflate")
SEND_QUEUE_LIMIT = 1024 * 1024  # VimaxApp.send_queue_limit's default


async def fill(database: Path, events: int) -> None:
    """Store the workflow (completed) and ``events`` progress events in its room."""
    store = await Store.open(database)
    try:
        now = datetime.now(UTC).isoformat()
        await store.workflows.save(
            WorkflowRecord(
                id=WORKFLOW_ID,
                kind="idea2video",
                params={"idea": "a replay benchmark"},
                state=WorkflowState.completed,
                progress=1.0,
                created_at=now,
                updated_at=now,
                finished_at=now,
            )
        )
        payloads = [payload(i, WORKFLOW_ID) for i in range(64)]
        for i in range(events):
            store.events.append_nowait(ROOM, "progress", payloads[i % 64])
            if i % 500 == 0:
                await asyncio.sleep(0)
        await store.events.flush()
    finally:
        await store.close()


def client_options(compression: Literal["deflate", "none"] | None) -> SocketOptions | None:
    """``SocketOptions`` asking for ``compression`` (None: the defaults); None as well when
    this checkout's client has no such option and ``compression`` was asked."""
    if compression is None:
        return SocketOptions()
    if "compression" not in {f.name for f in dataclasses.fields(SocketOptions)}:
        return None
    return dataclasses.replace(SocketOptions(), compression=compression)


@dataclass
class Run:
    """One row: a kind of client, how many, and their resumes."""

    impl: str
    clients: int
    resumed: list[Resumed] = field(default_factory=list)
    seconds: float = 0.0  # from the first subscribe sent to the last client done
    server_cpu: float = 0.0
    client_cpu: float = 0.0

    @property
    def events(self) -> int:
        return sum(r.events for r in self.resumed)

    @property
    def problems(self) -> list[str]:
        return [p for r in self.resumed for p in r.problems]

    @property
    def agreed(self) -> str:
        kinds = sorted({r.extensions for r in self.resumed})
        return ", ".join(short_extensions(k) for k in kinds) or "-"


def short_extensions(header: str) -> str:
    """``none``, ``deflate`` or deflate with the sides without context takeover (``?``:
    not known)."""
    if not header or header == "?":
        return header or "none"
    sides = [s for s in ("server", "client") if f"{s}_no_context_takeover" in header]
    return "deflate" + (f" nct {'+'.join(s[0] for s in sides)}" if sides else "")


def get_json(running: Server, path: str) -> Any:
    """GET ``path`` of the server, with its token; the decoded JSON answer."""
    request = urllib.request.Request(
        running.http_url + path, headers={"Authorization": f"token {running.token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def post_json(running: Server, path: str) -> Any:
    """POST to ``path`` of the server, with its token; the decoded JSON answer."""
    request = urllib.request.Request(
        running.http_url + path,
        data=b"",
        method="POST",
        headers={"Authorization": f"token {running.token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def agreed_by(running: Server) -> str:
    """What the one connection in ``ROOM`` agreed, as the server tells it
    (``GET /vimax/ws/client/{id}``, ``compression``): ``permessage-deflate``, ``""`` for
    none, ``?`` if the server does not say."""
    members = get_json(running, "/vimax/ws/stats")["rooms"].get(ROOM, [])
    if len(members) != 1:
        return "?"
    info = get_json(running, f"/vimax/ws/client/{members[0]}")
    if "compression" not in info:
        return "?"
    return str(info["compression"] or "")


def single(running: Server, impl: str, after: int, last: int) -> Run | None:
    """One client of kind ``impl`` resuming after ``after`` up to ``last`` (None: this
    checkout's client cannot be asked for that kind)."""
    process = psutil.Process(running.process.pid)
    base = running.http_url + "/"
    resume: Callable[[], Resumed]
    if impl in ("raw", "raw-deflate"):
        deflate = impl == "raw-deflate"

        def resume() -> Resumed:
            return asyncio.run(
                raw_resume(running.ws_url, running.token, deflate, ROOM, after, last)
            )

    elif impl in ("websockets", "websockets-none"):
        compression = "deflate" if impl == "websockets" else None

        def resume() -> Resumed:
            return asyncio.run(
                websockets_resume(running.ws_url, running.token, compression, ROOM, after, last)
            )

    else:
        options = client_options("deflate" if impl == "client-deflate" else None)
        if options is None:
            return None

        def resume() -> Resumed:
            return client_resume(
                base, running.token, options, ROOM, after, last, lambda: agreed_by(running)
            )

    server_cpu = sum(process.cpu_times()[:2])
    client_cpu = time.process_time()
    resumed = resume()
    run = Run(impl, 1, [resumed], resumed.seconds)
    run.server_cpu = sum(process.cpu_times()[:2]) - server_cpu
    run.client_cpu = time.process_time() - client_cpu
    return run


def many(
    running: Server, impl: str, clients: int, processes: int, after: int, last: int, profile: int
) -> Run:
    """``clients`` raw clients resuming after ``after`` up to ``last`` at once; with
    ``profile`` > 0, the server loop's top functions are printed."""
    process = psutil.Process(running.process.pid)
    spec = ManySpec(
        running.ws_url, running.token, impl == "raw-deflate", clients, ROOM, after, last
    )
    pool = ManyClients(spec, processes)
    pool.ready()
    if profile:
        post_json(running, "/vimax-replay/profile?action=start")
    server_cpu = sum(process.cpu_times()[:2])
    started = time.time()
    resumed, client_cpu = pool.go()
    if profile:
        text = post_json(running, f"/vimax-replay/profile?action=stop&top={profile}")["text"]
        print(f"cProfile of the server's loop, {clients} x {impl} resuming:\n{text}")
    run = Run(impl, clients, resumed, client_cpu=client_cpu)
    run.seconds = max((r.done_at or float("inf")) for r in resumed) - started
    run.server_cpu = sum(process.cpu_times()[:2]) - server_cpu
    return run


def row(run: Run, expected: int, target: bool) -> tuple[list[str], bool]:
    """The table row of ``run`` and whether it passed (rows without target pass)."""
    complete = run.events == expected * run.clients and not run.problems
    passed = complete and (not target or run.seconds <= TARGET_SECONDS)
    rate = run.events / run.seconds if run.seconds > 0 else 0.0
    megabytes = sum(r.bytes for r in run.resumed) / 1e6
    return [
        f"{run.clients} x {run.impl}",
        run.agreed,
        f"{run.events:,}",
        f"{run.seconds:.3f}",
        f"{rate:,.0f}",
        f"{megabytes / run.seconds:.1f}" if megabytes and run.seconds > 0 else "-",
        f"{run.server_cpu:.2f}",
        f"{run.client_cpu:.2f}",
        f"<= {TARGET_SECONDS} s" if target else "-",
        ("PASS" if passed else "BELOW") if target else ("" if complete else "INCOMPLETE"),
    ], passed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="missed events to replay")
    parser.add_argument("--seen", type=int, default=100, help="events the clients had seen")
    parser.add_argument("--impl", default=",".join(SINGLE_IMPLS), help="single-client kinds")
    parser.add_argument("--clients", type=int, default=100, help="clients resuming at once")
    parser.add_argument("--many", default=",".join(MANY_IMPLS), help="their kind(s); '' none")
    parser.add_argument("--processes", type=int, default=2, help="processes of those clients")
    parser.add_argument("--repeat", type=int, default=3, help="single-client runs (best kept)")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        help="print the server loop's N top functions (cProfile) for each many-client run",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    singles = [i for i in args.impl.split(",") if i]
    manies = [i for i in args.many.split(",") if i]
    for impl in singles:
        if impl not in SINGLE_IMPLS:
            parser.error(f"--impl: {impl!r} is not one of {', '.join(SINGLE_IMPLS)}")
    for impl in manies:
        if impl not in MANY_IMPLS:
            parser.error(f"--many: {impl!r} is not one of {', '.join(MANY_IMPLS)}")
    after, last = args.seen, args.seen + args.events
    workdir = Path(tempfile.mkdtemp(prefix="vimax-replay-missed-"))
    runs: list[tuple[Run, bool]] = []
    skipped: list[str] = []
    try:
        vimax_work = workdir / "vimax-work"
        vimax_work.mkdir()
        asyncio.run(fill(vimax_work / "vimax.sqlite3", last))
        with server(
            workdir / "server", vimax_work, SEND_QUEUE_LIMIT, extensions=["replay_probe"]
        ) as running:
            single(running, "raw", after, last)  # starts the service, warms the log's pages
            for impl in singles:
                tries = [single(running, impl, after, last) for _ in range(args.repeat)]
                done = [t for t in tries if t is not None]
                if not done:
                    skipped.append(impl)
                    continue
                best = min(done, key=lambda r: r.seconds)
                best.resumed[0].problems.extend(
                    p for t in done if t is not best for p in t.problems
                )
                runs.append((best, True))
            for impl in manies:
                run = many(running, impl, args.clients, args.processes, after, last, args.profile)
                runs.append((run, False))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows: list[list[str]] = []
    ok = True
    for run, target in runs:
        cells, passed = row(run, args.events, target)
        rows.append(cells)
        ok = ok and passed
    print_table(
        [
            f"resume {args.events:,} missed events of one room",
            "agreed",
            "events",
            "s",
            "events/s",
            "MB/s",
            "server CPU s",
            "client CPU s",
            "target",
            "",
        ],
        rows,
        right=(2, 3, 4, 5, 6, 7),
    )
    print(
        f"\nsingle clients: best of {args.repeat}; "
        f"{args.clients} clients at once in {args.processes} processes; "
        "s: from the subscribe to the last client's last event"
    )
    for impl in skipped:
        print(f"{impl}: skipped, this checkout's SocketOptions has no compression option")
    for run, _ in runs:
        for problem in run.problems[:5]:
            print(f"problem ({run.clients} x {run.impl}): {problem}")
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
