"""The Dask executor against the local one: films per hour, the cost of each task sent to
the cluster, and how the server answers while films render.

1. Throughput, the path users take: for each executor a real ``jupyter server`` with the
   extension (:class:`~vimax_nb.client.private.PrivateServer`; default settings but the
   executor) gets ``--workflows`` (8) Idea2Video workflows (``--scenes`` 2 x ``--shots``
   4 at ``--size`` 1280x720, other parameters default, procedural providers) submitted
   at once through :class:`vimax_nb.client.Client`, and the script waits for all of them
   (each ``Run.wait`` in a thread). Three servers: (a) the local executor (threads of
   the server), (b) ``executor=dask`` with a LocalCluster of 1 worker process, (c) 2
   worker processes. All use the same ``max_concurrent_tasks`` (the server's default
   unless ``--max-concurrent``); the clusters have the server's default threads per
   worker (the cores shared among the workers) unless ``--threads`` gives their total
   (``--threads 4``: 1 x 4, 2 x 2). Before the clock starts, the
   LocalCluster is up (its start is shown apart) and ``--warmup`` tiny films have run
   on each server, so imports and first-use costs in the server and in every worker
   are out of the figures. Wall time runs from the first submit to the last film done;
   films/hour = workflows / wall. CPU seconds are the server process's and its child
   processes' (the Dask nannies and workers) during that time, and the rest of the
   machine's busy CPU time apart from this script's: other work, which skews the run.
2. Responsiveness: a thread of this process GETs Jupyter's ``/api/status`` (with the
   token, ``urllib``, a new connection each time) every ``--interval`` ms: for
   ``--idle`` s before the submits (the baseline), then until the last film is done.
   p99 during / p99 idle says how much slower the server's event loop answers while it
   coordinates the films (and, with the local executor, while its own threads render).
3. Per-task overhead of the Dask path: a :class:`~vimax_nb.coordinator.Coordinator`
   built here (a store, a workdir) runs a toy pipeline: one planning task that expands
   to ``--noop-tasks`` (400) independent no-op tasks, then a join; every handler is a
   plain function, so each one is a Dask future on the cluster (a coroutine handler
   would stay on the loop). Once with the :class:`~vimax_nb.coordinator.LocalExecutor`,
   once with ``DaskExecutor(workers=2)`` (2 threads each), both with
   ``max_concurrent_tasks`` ``--noop-concurrency`` (8); best of ``--repeat``, after a
   warm-up workflow. Overhead per task = (Dask seconds - local seconds) / tasks: the
   wall time each task adds at that concurrency. Target: at most 5 ms. A reference row
   sends as many ``client.submit`` no-op futures (as many in flight) from a plain Dask
   client to the same cluster: what Dask itself costs, the floor of the executor's.

Reading the figures: on a machine with few cores the films are CPU-bound (drawing,
encoding), so worker processes help only as far as the local executor's threads were
held back by the GIL; the ratio dask-2 / local is that gain net of Dask's costs
(pickling each task, the events workers send back, the scheduler and nannies sharing
the same cores). Compare the CPU seconds: the same films take more CPU in workers than
in the server's threads when something in the workers is slower (Dask's default
``MALLOC_TRIM_THRESHOLD_=65536``, which the executor's LocalCluster leaves out, made
every frame-sized buffer fresh pages and cost 25% more worker CPU). The no-op overhead
falls as more tasks are in flight (``--noop-concurrency``): at 1 it is a round trip to a worker.
The default run takes about 5 minutes on 2 cores.

    python benchmarks/dask_scale.py [--workflows 8] [--scenes 2] [--shots 4]
        [--size 1280x720] [--configs local,dask-1,dask-2] [--noop-tasks 400]
    python benchmarks/dask_scale.py --workflows 2 --size 320x180 --noop-tasks 100  # quick
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import math
import os
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_table

from vimax_nb.client import Client
from vimax_nb.client.private import PrivateServer
from vimax_nb.coordinator import (
    Agent,
    Coordinator,
    Executor,
    Pipeline,
    Stage,
    TaskContext,
    TaskSpec,
    skill,
)
from vimax_nb.protocol import WorkflowState
from vimax_nb.store import Store

ROOT = Path(__file__).resolve().parents[1]
TARGET_OVERHEAD_MS = 5.0  # Dask's wall time per no-op task, above the local executor's
IDEA = "A lighthouse keeper befriends a whale"
CONFIGS = ("local", "dask-1", "dask-2")


# -- 1 and 2: films through a real server ---------------------------------------------


@dataclass
class Config:
    """One server: its executor and, for Dask, the LocalCluster's shape."""

    name: str
    workers: int = 0  # 0: the local executor
    threads: int = 0  # per worker; 0: the server's default

    @property
    def dask(self) -> bool:
        return self.workers > 0

    def shape(self, max_concurrent: int) -> str:
        if not self.dask:
            return f"{max_concurrent} threads in the server"
        if not self.threads:
            return f"{self.workers} proc x default threads"
        return f"{self.workers} proc x {self.threads} threads"

    def server_args(self, max_concurrent: int | None) -> list[str]:
        args = []
        if max_concurrent is not None:
            args.append(f"--VimaxApp.max_concurrent_tasks={max_concurrent}")
        if self.dask:
            args += [
                "--VimaxApp.executor=dask",
                f"--VimaxApp.dask_workers={self.workers}",
            ]
            if self.threads:
                args.append(f"--VimaxApp.dask_threads_per_worker={self.threads}")
        return args


@dataclass
class Throughput:
    config: Config
    wall: float = 0.0
    done_at: list[float] = field(default_factory=list)  # seconds from the first submit
    failures: list[str] = field(default_factory=list)
    startup: float = 0.0  # server start until it answers
    cluster_start: float = 0.0  # server start until the LocalCluster has every worker
    executor: str = ""
    server_cpu: float = 0.0
    children_cpu: float = 0.0
    other_cpu: float = 0.0  # other processes of the machine: not this benchmark's
    idle_ms: list[float] = field(default_factory=list)
    busy_ms: list[float] = field(default_factory=list)
    status_errors: int = 0


class StatusSampler(threading.Thread):
    """GETs ``/api/status`` every ``interval`` s (on a fixed schedule: a slow answer is
    followed by the next request at once) and keeps (start time, latency in ms)."""

    def __init__(self, url: str, token: str, interval: float) -> None:
        super().__init__(name="status-sampler", daemon=True)
        self.url = url.rstrip("/") + "/api/status"
        self.token = token
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self.errors = 0
        self._halt = threading.Event()

    def run(self) -> None:
        next_at = time.perf_counter()
        while not self._halt.is_set():
            request = urllib.request.Request(
                self.url, headers={"Authorization": f"token {self.token}"}
            )
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    json.loads(response.read())
                self.samples.append((started, (time.perf_counter() - started) * 1000.0))
            except OSError:
                self.errors += 1
            next_at += self.interval
            self._halt.wait(max(0.0, next_at - time.perf_counter()))

    def between(self, begin: float, end: float) -> list[float]:
        return [ms for at, ms in self.samples if begin <= at < end]

    def stop(self) -> None:
        self._halt.set()
        self.join()


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation; nan without values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def cpu_seconds(pid: int) -> tuple[float, float, float]:
    """User + system CPU seconds of process ``pid``, of its living descendants, and of
    every other process of the machine (all CPUs busy, minus those two and this one)."""
    try:
        import psutil  # distributed depends on it
    except ImportError:
        return math.nan, math.nan, math.nan
    machine = psutil.cpu_times()
    busy = (
        machine.user
        + machine.system
        + sum(getattr(machine, name, 0.0) for name in ("nice", "irq", "softirq"))
    )
    mine = psutil.Process().cpu_times()
    process = psutil.Process(pid)
    own = process.cpu_times()
    children = 0.0
    for child in process.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        children += times.user + times.system
    server = own.user + own.system
    return server, children, busy - server - children - mine.user - mine.system


def wait_for_executor(client: Client, config: Config, timeout: float) -> str:
    """Wait until the server's executor is ready (every LocalCluster worker up); how
    the server describes it."""
    deadline = time.monotonic() + timeout
    while True:
        info = client.coordinator().executor
        enough = info is not None and (not config.dask or info.workers >= config.workers)
        if info is not None and info.problem is None and enough:
            return f"{info.kind}, {info.workers} worker(s), {info.threads} threads"
        if time.monotonic() > deadline:
            raise TimeoutError(f"{config.name}: the executor is not ready: {info}")
        time.sleep(0.1)


def film_params(args: argparse.Namespace, index: int) -> dict[str, Any]:
    return {
        "idea": f"{IDEA} (film {index + 1})",
        "scenes": args.scenes,
        "shots_per_scene": args.shots,
        "width": args.width,
        "height": args.height,
    }


def run_films(client: Client, params: list[dict[str, Any]], timeout: float) -> Throughput:
    """Submit every film at once, wait for all; when each ended (from the first submit)."""
    result = Throughput(Config(""))
    started = time.perf_counter()
    runs = [client.idea2video(**p) for p in params]

    def wait(run: Any) -> float:
        run.wait(timeout)
        return time.perf_counter() - started

    with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
        for run, future in zip(runs, [pool.submit(wait, r) for r in runs], strict=True):
            try:
                result.done_at.append(future.result())
            except Exception as exc:
                result.failures.append(f"{run.id}: {type(exc).__name__}: {exc}")
    result.wall = time.perf_counter() - started
    return result


def throughput(config: Config, args: argparse.Namespace, tmp: Path) -> Throughput:
    root = tmp / config.name
    root.mkdir()
    server = PrivateServer(root, server_args=config.server_args(args.max_concurrent))
    began = time.perf_counter()
    client = server.start(timeout=60)
    try:
        startup = time.perf_counter() - began
        executor = wait_for_executor(client, config, timeout=120)
        cluster_start = time.perf_counter() - began
        if args.warmup:
            tiny = {"scenes": 1, "shots_per_scene": 2, "width": 128, "height": 72}
            warm = [{"idea": f"warm-up {i}", **tiny} for i in range(args.warmup)]
            done = run_films(client, warm, timeout=300)
            if done.failures:
                raise RuntimeError(f"{config.name}: warm-up failed: {done.failures}")
        sampler = StatusSampler(server.url, server.token, args.interval / 1000.0)
        sampler.start()
        idle_from = time.perf_counter()
        time.sleep(args.idle)
        assert server.pid is not None
        cpu_before = cpu_seconds(server.pid)
        busy_from = time.perf_counter()
        result = run_films(
            client, [film_params(args, i) for i in range(args.workflows)], args.timeout
        )
        busy_to = time.perf_counter()
        cpu_after = cpu_seconds(server.pid)
        sampler.stop()
    finally:
        client.close()
        server.stop(timeout=60)
    result.config = config
    result.startup = startup
    result.cluster_start = cluster_start if config.dask else math.nan
    result.executor = executor
    result.server_cpu = cpu_after[0] - cpu_before[0]
    result.children_cpu = cpu_after[1] - cpu_before[1]
    result.other_cpu = cpu_after[2] - cpu_before[2]
    result.idle_ms = sampler.between(idle_from, busy_from)
    result.busy_ms = sampler.between(busy_from, busy_to)
    result.status_errors = sampler.errors
    return result


# -- 3: no-op tasks through the executor ----------------------------------------------


class NoopWorker(Agent):
    """Plans, does nothing, joins: plain handlers, so they run on the executor."""

    @skill("plan")
    def plan(self, ctx: TaskContext) -> int:
        return int(ctx.workflow_params["n"])

    @skill("noop")
    def noop(self, ctx: TaskContext) -> None:
        return None

    @skill("join")
    def join(self, ctx: TaskContext) -> int:
        return len(ctx.inputs)


class FanOut(Pipeline):
    """plan -> ``n`` independent no-op tasks -> join."""

    kind = "fanout"
    stages = (Stage("plan"), Stage("work"), Stage("join"))

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"n": int(params["n"])}

    def plan(self, params: Mapping[str, Any]) -> Iterable[TaskSpec]:
        return [TaskSpec("plan", "plan", "plan", expand=self._expand)]

    @staticmethod
    def _expand(n: int) -> list[TaskSpec]:
        work = [TaskSpec(f"t{i}", "noop", "work", deps=("plan",)) for i in range(n)]
        return [*work, TaskSpec("join", "join", "join", deps=tuple(t.key for t in work))]


def nothing(i: int) -> int:
    """The task of the bare-Dask reference."""
    return i


@dataclass
class Noop:
    local: float  # seconds for the workflow's no-op tasks, best of --repeat
    dask: float
    bare: float  # the same number of plain client.submit futures on the same cluster


async def noop_seconds(
    executor: Executor | None, tasks: int, concurrency: int, repeat: int, root: Path
) -> tuple[float, float]:
    """Best seconds, ``repeat`` times, of one FanOut workflow of ``tasks`` no-op tasks,
    from submit until ``wait`` returns, after a warm-up workflow of 2 x concurrency;
    with a Dask executor, also the bare-Dask reference on its cluster (else nan)."""
    store = await Store.open(root / "vimax.sqlite3")
    coordinator = Coordinator(
        store=store, workdir=root, executor=executor, max_concurrent_tasks=concurrency
    )
    # This module imported by its name (not as __main__): workers unpickle the agent by
    # reference, as they do the pipelines' agents, instead of receiving its class each time.
    from dask_scale import FanOut, NoopWorker

    coordinator.register_agent(NoopWorker("noop", concurrency=concurrency))
    coordinator.register_pipeline(FanOut())
    await coordinator.start()
    try:
        ensure_ready = getattr(coordinator.executor, "ensure_ready", None)
        if ensure_ready is not None:
            await ensure_ready()  # the LocalCluster is up: its start is not timed
        best = math.inf
        for attempt, n in enumerate((2 * concurrency, *([tasks] * repeat))):
            started = time.perf_counter()
            record = await coordinator.submit("fanout", {"n": n})
            record = await coordinator.wait(record.id, timeout=600)
            seconds = time.perf_counter() - started
            if record.state != WorkflowState.completed:
                raise RuntimeError(f"the no-op workflow ended {record.state}: {record.message}")
            if attempt > 0:  # the first one is the warm-up
                best = min(best, seconds)
        address = getattr(coordinator.executor, "scheduler_address", None)
        bare = await bare_dask_seconds(address, tasks, concurrency, repeat) if address else math.nan
    finally:
        await coordinator.stop()
        await store.close()
    return best, bare


async def bare_dask_seconds(address: str, tasks: int, concurrency: int, repeat: int) -> float:
    """Best seconds of ``tasks`` ``client.submit(nothing, i)`` futures, at most
    ``concurrency`` in flight, from a plain asynchronous Client: Dask's own cost, the
    floor of the executor's."""
    from dask_scale import nothing
    from distributed import Client as DaskClient

    client = await DaskClient(address, asynchronous=True, set_as_default=False)
    try:
        slots = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with slots:
                await client.submit(nothing, i, pure=False)

        best = math.inf
        for attempt, n in enumerate((2 * concurrency, *([tasks] * repeat))):
            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(n)))
            if attempt > 0:
                best = min(best, time.perf_counter() - started)
    finally:
        await client.close()
    return best


async def noop_overhead(args: argparse.Namespace, tmp: Path) -> Noop:
    from vimax_nb.coordinator.dask import DaskExecutor

    local, _ = await noop_seconds(
        None, args.noop_tasks, args.noop_concurrency, args.repeat, tmp / "noop-local"
    )
    dask, bare = await noop_seconds(
        DaskExecutor(workers=2, threads_per_worker=2),
        args.noop_tasks,
        args.noop_concurrency,
        args.repeat,
        tmp / "noop-dask",
    )
    return Noop(local, dask, bare)


# -- report ---------------------------------------------------------------------------


def fmt(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def report(args: argparse.Namespace, runs: list[Throughput], noop: Noop | None) -> None:
    max_concurrent = args.max_concurrent_effective
    if runs:
        films = f"{args.workflows} x Idea2Video ({args.scenes} scenes x {args.shots} shots, "
        films += f"{args.width}x{args.height}, other parameters default, procedural providers)"
        print(f"\nThroughput: {films}, submitted at once")
        rows = []
        for run in runs:
            rate = len(run.done_at) / run.wall * 3600 if run.done_at else 0.0
            rows.append(
                (
                    run.config.name,
                    run.config.shape(max_concurrent),
                    fmt(run.cluster_start),
                    fmt(min(run.done_at, default=math.nan)),
                    fmt(run.wall),
                    fmt(rate),
                    fmt(run.server_cpu),
                    fmt(run.children_cpu),
                    fmt(run.other_cpu),
                    f"{len(run.failures)}",
                )
            )
        header = ("executor", "tasks run on", "cluster up s", "first done s", "wall s")
        header += ("films/hour", "server CPU s", "workers CPU s", "others' CPU s", "failed")
        print_table(header, rows, right=range(2, 10))

        print(f"\nResponsiveness: GET /api/status every {args.interval:g} ms (latency, ms)")
        rows = []
        for run in runs:
            idle99 = percentile(run.idle_ms, 0.99)
            busy99 = percentile(run.busy_ms, 0.99)
            rows.append(
                (
                    run.config.name,
                    fmt(percentile(run.idle_ms, 0.5)),
                    fmt(idle99),
                    fmt(percentile(run.busy_ms, 0.5)),
                    fmt(busy99),
                    fmt(max(run.busy_ms, default=math.nan)),
                    fmt(busy99 / idle99, 2) if idle99 > 0 else "-",
                    f"{len(run.idle_ms)}/{len(run.busy_ms)}",
                    f"{run.status_errors}",
                )
            )
        header = ("executor", "idle p50", "idle p99", "busy p50", "busy p99", "busy max")
        header += ("p99 busy/idle", "samples idle/busy", "errors")
        print_table(header, rows, right=range(1, 9))
        for run in runs:
            for failure in run.failures:
                print(f"  {run.config.name}: FAILED {failure}")

    if noop is not None:
        local, dask, bare = noop.local, noop.dask, noop.bare
        n = args.noop_tasks
        overhead = (dask - local) / n * 1000
        print(
            f"\nPer-task overhead: 1 plan -> {n:,} no-op tasks -> 1 join, plain handlers, "
            f"max_concurrent_tasks {args.noop_concurrency}, best of {args.repeat}"
        )
        rows = [
            (
                "local (threads)",
                fmt(local, 3),
                fmt(n / local, 0),
                fmt(local / n * 1000, 2),
                "",
                "",
            ),
            (
                "dask (2 proc x 2 threads)",
                fmt(dask, 3),
                fmt(n / dask, 0),
                fmt(dask / n * 1000, 2),
                fmt(overhead, 2),
                f"<= {TARGET_OVERHEAD_MS:g} ms "
                + ("PASS" if overhead <= TARGET_OVERHEAD_MS else "BELOW"),
            ),
            (
                "reference: bare client.submit",
                fmt(bare, 3),
                fmt(n / bare, 0),
                fmt(bare / n * 1000, 2),
                fmt((bare - local) / n * 1000, 2),
                "(same cluster)",
            ),
        ]
        header = ("executor", "seconds", "tasks/s", "ms/task", "overhead ms/task", "target")
        print_table(header, rows, right=range(1, 5))

    print("\nSummary")
    summary = [("cores (os.cpu_count())", f"{os.cpu_count()}")]
    summary.append(("max_concurrent_tasks (every server)", f"{max_concurrent}"))
    by_name = {r.config.name: r for r in runs}
    for name in ("dask-1", "dask-2"):
        if "local" in by_name and name in by_name and by_name[name].wall > 0:
            ratio = by_name["local"].wall / by_name[name].wall
            summary.append((f"films/hour {name} / local", f"{ratio:.2f}"))
    for run in runs:
        idle99 = percentile(run.idle_ms, 0.99)
        if idle99 > 0:
            ratio = percentile(run.busy_ms, 0.99) / idle99
            summary.append((f"/api/status p99 during / idle, {run.config.name}", f"{ratio:.2f}"))
    if noop is not None:
        overhead = (noop.dask - noop.local) / args.noop_tasks * 1000
        summary.append(("Dask overhead per no-op task", f"{overhead:.2f} ms"))
    print_table(("figure", "value"), summary)


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 1280x720 (got {text!r})") from None
    return width, height


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--workflows", type=int, default=8, help="films submitted at once")
    parser.add_argument("--scenes", type=int, default=2)
    parser.add_argument("--shots", type=int, default=4, help="shots per scene")
    parser.add_argument("--size", type=parse_size, default=(1280, 720), help="WxH")
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help=f"servers to run, among {', '.join(CONFIGS)} ('' for none)",
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="the servers' max_concurrent_tasks (default: the server's default)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads of each LocalCluster in all (default: the server's default)",
    )
    parser.add_argument("--warmup", type=int, default=2, help="tiny films run before timing")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle baseline")
    parser.add_argument("--interval", type=float, default=50.0, help="ms between status GETs")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds a film may take")
    parser.add_argument("--noop-tasks", type=int, default=400, help="0: skip the no-op part")
    parser.add_argument("--noop-concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="no-op runs; the best counts")
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when the target is missed"
    )
    args = parser.parse_args(argv)
    args.width, args.height = args.size
    args.configs = [c for c in args.configs.split(",") if c]
    unknown = set(args.configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown --configs {sorted(unknown)}; choose among {CONFIGS}")
    if min(args.workflows, args.scenes, args.shots, args.repeat, args.noop_concurrency) < 1:
        parser.error("--workflows, --scenes, --shots, --repeat, --noop-concurrency: >= 1")
    return args


def main() -> int:
    args = parse_args()
    begun = time.perf_counter()
    load = os.getloadavg()
    from vimax_nb.server.app import VimaxApp

    default_concurrent = VimaxApp.max_concurrent_tasks.default_value
    max_concurrent = args.max_concurrent or default_concurrent
    args.max_concurrent_effective = max_concurrent
    total = args.threads or 0  # 0: the server's default threads per worker
    configs = {
        "local": Config("local"),
        "dask-1": Config("dask-1", 1, total),
        "dask-2": Config("dask-2", 2, math.ceil(total / 2)),
    }
    print(
        f"dask_scale: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
        f"max_concurrent_tasks {max_concurrent} on every server (server default "
        f"{default_concurrent}); LocalClusters: "
        + (
            ", ".join(
                f"{c.name} {c.shape(max_concurrent)}"
                for c in configs.values()
                if c.dask and c.name in args.configs
            )
            or "none"
        )
        + f"; warm-up {args.warmup} tiny film(s), idle baseline {args.idle:g} s"
    )
    runs: list[Throughput] = []
    noop: Noop | None = None
    with tempfile.TemporaryDirectory(prefix="vimax-dask-scale-") as name:
        tmp = Path(name)
        # The servers read no configuration of this machine's user.
        for var, folder in (
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_DATA_DIR", "data"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
        ):
            (tmp / folder).mkdir()
            os.environ[var] = str(tmp / folder)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        for config_name in args.configs:
            config = configs[config_name]
            print(f"  {config.name}: {config.shape(max_concurrent)} ...", flush=True)
            started = time.perf_counter()
            run = throughput(config, args, tmp)
            runs.append(run)
            print(
                f"    {run.executor}; server up in {run.startup:.1f} s; "
                f"{len(run.done_at)}/{args.workflows} films in {run.wall:.1f} s "
                f"({time.perf_counter() - started:.0f} s with start, warm-up, idle, stop)",
                flush=True,
            )
        if args.noop_tasks:
            print(f"  no-op tasks: {args.noop_tasks} x {args.repeat} per executor ...", flush=True)
            noop = asyncio.run(noop_overhead(args, tmp))
    report(args, runs, noop)
    print(
        f"\nwhole run: {time.perf_counter() - begun:.0f} s; 1-minute load average before "
        f"it {load[0]:.2f} (other work on the machine skews every figure), after it "
        f"{os.getloadavg()[0]:.2f}"
    )
    failed = any(r.failures for r in runs)
    missed = (
        noop is not None and (noop.dask - noop.local) / args.noop_tasks * 1000 > TARGET_OVERHEAD_MS
    )
    return 1 if failed or (missed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
