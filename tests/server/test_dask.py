"""The extension with ``c.VimaxApp.executor = "dask"``: its own LocalCluster of worker
processes makes the film, and the coordinator's metrics say where tasks run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vimax_nb.protocol import CoordinatorMetricsEvent, WorkflowState

from .conftest import post_json, record_of, service_of, small_params, wait_finished

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def jp_server_config(vimax_workdir: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"vimax_nb.server": True}},
        "VimaxApp": {
            "workdir": str(vimax_workdir),
            "executor": "dask",
            "dask_workers": 2,
            "dask_threads_per_worker": 1,
        },
    }


async def test_a_server_with_the_dask_executor_makes_the_film_on_its_cluster(
    jp_fetch: Any, jp_serverapp: Any, vimax_workdir: Path
) -> None:
    body = {"kind": "idea2video", "params": small_params(idea="a fox learns to fly")}
    record = record_of(await post_json(jp_fetch, "vimax", "api", "workflows", body=body))
    await wait_finished(jp_serverapp, record.id)

    done = record_of(await jp_fetch("vimax", "api", "workflows", record.id))
    assert done.state == WorkflowState.completed, done.message
    assert (vimax_workdir / record.id / "final_video.mp4").stat().st_size > 0
    metrics = CoordinatorMetricsEvent.model_validate(
        json.loads((await jp_fetch("vimax", "api", "coordinator")).body)
    )
    assert metrics.executor is not None
    assert (metrics.executor.kind, metrics.executor.workers) == ("dask", 2)
    assert metrics.executor.problem is None
    workers = await service_of(jp_serverapp).coordinator.executor._client.run(lambda: 1)
    assert len(workers) == 2
