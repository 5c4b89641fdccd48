"""``vimax-nb serve --executor dask``: a server whose tasks run on a LocalCluster of
worker processes, used by ``vimax-nb run`` in its folder."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from .conftest import SMALL, Lines, cli, isolated_env

pytestmark = pytest.mark.timeout(180)


def test_serve_with_the_dask_executor_runs_the_folders_workflows(tmp_path: Path) -> None:
    folder = tmp_path / "films"
    folder.mkdir()
    env = isolated_env(tmp_path)
    server = subprocess.Popen(
        cli("serve", "--port", "0", "--executor", "dask"),
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = Lines(server)
    try:
        lines.until(r"^Ctrl-C stops it\.$", timeout=90)
        run = subprocess.run(
            cli("run", "idea2video", "a robot paints the sea", "--quiet", *SMALL),
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        video = folder / run.stdout.strip().splitlines()[-1]
        assert video.name == "final_video.mp4"
        assert video.stat().st_size > 0
        coordinator = subprocess.run(
            cli("agents"), cwd=folder, env=env, capture_output=True, text=True, timeout=60
        )
        assert coordinator.returncode == 0, coordinator.stderr
        assert "dask" in coordinator.stdout
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(60)
    assert code == 0, lines.rest()


def test_a_scheduler_address_needs_the_dask_executor(tmp_path: Path) -> None:
    done = subprocess.run(
        cli("serve", "--port", "0", "--scheduler", "tcp://127.0.0.1:8786"),
        cwd=tmp_path,
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--scheduler ADDRESS goes with --executor dask" in done.stderr
