"""Commissioning films over A2A with the official a2a-sdk client: how soon a stream
answers, how many events it sends, and what GetTask and ListTasks cost.

A ``jupyter server`` with ``vimax_nb.server`` from this checkout (a subprocess, the
procedural providers) is sent ``--films`` (8) SendStreamingMessage requests one after
another by the a2a-sdk client (card from ``/vimax/a2a/.well-known/agent-card.json``,
``ClientFactory`` over httpx), each a small Idea2Video film (1 scene x ``--shots`` (2)
shots, 160x96, 6 fps, 1 s a shot). Measured per film: the time from sending to the
first event (the SUBMITTED task), to the first WORKING status, and to COMPLETED; the
events of the stream (status updates, artifact updates); then GetTask and ListTasks
(``--films`` tasks, with artifacts) round trips. The first call also opens the server's
A2A agent (the a2a-sdk is imported then): it is reported on its own row.

Target: the first WORKING status within ``TARGET_FIRST_WORKING_MS`` of sending (median),
and every stream ending COMPLETED with the final video.

Run: ``python benchmarks/a2a_stream.py [--films 8] [--shots 2] [--strict]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from _table import print_table  # noqa: E402
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory  # noqa: E402
from a2a.types import (  # noqa: E402
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    TaskState,
)

TARGET_FIRST_WORKING_MS = 250.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def server(workdir: Path) -> Iterator[tuple[str, str]]:
    """A jupyter server with vimax_nb.server (this checkout): its base URL and token."""
    port, token = free_port(), secrets.token_hex(16)
    root = workdir / "root"
    for folder in (root, workdir / "config", workdir / "runtime", workdir / "data"):
        folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
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
        "--ServerApp.jpserver_extensions={'vimax_nb.server': True}",
        "--ServerApp.log_level=WARN",
        f"--VimaxApp.workdir={workdir / 'vimax-work'}",
        "--VimaxApp.probe_providers=False",
    ]
    log = workdir / "jupyter.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log.read_text()[-2000:]}")
            try:
                request = urllib.request.Request(
                    f"{url}/vimax/api/coordinator", headers={"Authorization": f"token {token}"}
                )
                with urllib.request.urlopen(request, timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                time.sleep(0.25)
        yield url, token
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass
class Film:
    first_event_ms: float
    first_working_ms: float
    completed_ms: float
    statuses: int
    artifacts: int
    final: str
    video: bool


def message(shots: int) -> SendMessageRequest:
    idea = Part(text="a watercolor video about a fox who learns to fly")
    params = Part()
    params.data.struct_value.update(
        {"params": {"width": 160, "height": 96, "fps": 6, "seconds_per_shot": 1,
                    "shots_per_scene": shots}}
    )  # fmt: skip
    return SendMessageRequest(
        message=Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[idea, params])
    )


async def measure(url: str, token: str, films: int, shots: int) -> None:
    headers = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(60, read=None)) as http:
        started = time.perf_counter()
        card = await A2ACardResolver(http, f"{url}/vimax/a2a").get_agent_card()
        opened_ms = (time.perf_counter() - started) * 1000
        client = ClientFactory(ClientConfig(httpx_client=http)).create(card)
        results: list[Film] = []
        task_ids: list[str] = []
        for _ in range(films):
            sent = time.perf_counter()
            first = working = done = 0.0
            statuses = artifacts = 0
            final, video = "", False
            async for event in client.send_message(message(shots)):
                now = (time.perf_counter() - sent) * 1000
                kind = event.WhichOneof("payload")
                if kind == "task":
                    first = now
                    task_ids.append(event.task.id)
                elif kind == "status_update":
                    statuses += 1
                    state = event.status_update.status.state
                    if state == TaskState.TASK_STATE_WORKING and not working:
                        working = now
                    final, done = TaskState.Name(state), now
                elif kind == "artifact_update":
                    artifacts += 1
                    video = video or event.artifact_update.artifact.artifact_id.endswith(".mp4")
            results.append(Film(first, working, done, statuses, artifacts, final, video))
        get_ms, list_ms = [], []
        for task_id in task_ids:
            t = time.perf_counter()
            await client.get_task(GetTaskRequest(id=task_id))
            get_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            await client.list_tasks(ListTasksRequest(include_artifacts=True))
            list_ms.append((time.perf_counter() - t) * 1000)
        await client.close()

    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.1f}"

    rows = [
        ["card (opens the A2A agent)", f"{opened_ms:.1f}", "", ""],
        ["send -> SUBMITTED task", median([r.first_event_ms for r in results]), "", ""],
        [
            "send -> first WORKING",
            median([r.first_working_ms for r in results]),
            f"<= {TARGET_FIRST_WORKING_MS:.0f}",
            "PASS"
            if statistics.median(r.first_working_ms for r in results) <= TARGET_FIRST_WORKING_MS
            else "BELOW",
        ],
        ["send -> COMPLETED", median([r.completed_ms for r in results]), "", ""],
        ["GetTask", median(get_ms), "", ""],
        [f"ListTasks ({films} tasks, artifacts)", median(list_ms), "", ""],
    ]
    print_table(["median of the films", "ms", "target", ""], rows)
    print()
    per_stream = sorted({(r.statuses, r.artifacts) for r in results})
    print(f"events per stream (status updates, artifact updates): {per_stream}, plus the task")
    ok = all(r.final == "TASK_STATE_COMPLETED" and r.video for r in results)
    print(f"every stream ended COMPLETED with the final video: {'PASS' if ok else 'FAIL'}")
    if not ok:
        raise SystemExit(1)
    if ARGS.strict and rows[2][3] != "PASS":
        raise SystemExit(1)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="vimax-a2a-bench-"))
    try:
        with server(workdir) as (url, token):
            asyncio.run(measure(url, token, ARGS.films, ARGS.shots))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--films", type=int, default=8)
parser.add_argument("--shots", type=int, default=2)
parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
ARGS = parser.parse_args()

if __name__ == "__main__":
    main()
