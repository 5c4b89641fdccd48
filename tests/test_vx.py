"""The top-level notebook API: ``import vimax_nb as vx``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import vimax_nb as vx
from vimax_nb.client.table import WorkflowTable
from vimax_nb.protocol import WorkflowRecord

from .server.conftest import (  # noqa: F401  (fixtures that enable the extension)
    jp_server_config,
    small_params,
    vimax_workdir,
)

TIMEOUT = 90.0


def record(id_: str, created: str, state: str = "completed", **params: Any) -> WorkflowRecord:
    return WorkflowRecord(
        id=id_,
        kind="idea2video",
        params=params,
        state=state,  # type: ignore[arg-type]
        progress=1.0 if state == "completed" else 0.5,
        stage="editing" if state == "completed" else "frames",
        created_at=created,
        updated_at=created,
    )


def test_workflow_table_lists_newest_first_and_filters() -> None:
    table = WorkflowTable(
        [
            record("old", "2026-01-01T10:00:00+00:00", idea="A fox"),
            record("new", "2026-01-02T10:00:00+00:00", "running", idea="A whale"),
        ]
    )
    assert [r.id for r in table] == ["new", "old"]
    assert table[0].id == "new"
    assert [r.id for r in table[1:]] == ["old"]
    assert [r.id for r in table.by_state("running")] == ["new"]
    text = repr(table)
    lines = text.splitlines()
    assert lines[0].split() == ["id", "kind", "state", "progress", "stage", "created", "subject"]
    assert lines[1].split()[:4] == ["new", "idea2video", "running", "50%"]
    assert "2026-01-02 10:00:00" in lines[1]
    assert lines[2].endswith("A fox")


def test_workflow_table_escapes_user_text_and_shortens_it() -> None:
    idea = "<img src=x onerror=alert(1)> " + "and a very long idea " * 5
    table = WorkflowTable([record("w1", "2026-01-01T00:00:00+00:00", idea=idea)])
    page = table._repr_html_()
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert table.rows()[0][-1] == "<img src=x onerror=alert(1)> and a..."  # cut at a word


def test_an_empty_table_says_so() -> None:
    table = WorkflowTable([])
    assert repr(table) == "WorkflowTable(no workflows)"
    assert "No workflows" in table._repr_html_()


IN_A_SHELL = """
import sys
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
import vimax_nb as vx

loaded = sorted(m for m in sys.modules if m.startswith(("vimax_nb.", "ipywidgets", "websockets")))
print("loaded:", *loaded)
from vimax_nb.client import Run

formatter = shell.display_formatter.ipython_display_formatter
print("hook after import:", formatter.for_type(Run) is not None)
vx.AgentMonitor  # a widget asked for
print("hook after a widget:", formatter.for_type(Run) is not None)
"""

CLIENT_IN_A_SHELL = """
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
import vimax_nb as vx

vx.Client  # vx.Client(url, token).idea2video(...) shows its run as a panel too
from vimax_nb.client import Run

hooked = shell.display_formatter.ipython_display_formatter.for_type(Run) is not None
print("hook after vx.Client:", hooked)
"""


def test_importing_vimax_nb_loads_little_and_installs_nothing_until_used() -> None:
    out = subprocess.run(
        [sys.executable, "-c", IN_A_SHELL], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert out == [
        "loaded: vimax_nb._version",
        "hook after import: False",
        "hook after a widget: True",
    ]


def test_asking_for_the_client_class_installs_the_hook() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CLIENT_IN_A_SHELL],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    assert out == ["hook after vx.Client: True"]


def test_every_public_name_is_there_and_unknown_names_are_refused() -> None:
    from vimax_nb import client, display, widgets
    from vimax_nb.client import discovery, table

    homes = {
        **dict.fromkeys(widgets.__all__, widgets),
        **dict.fromkeys(("default_client", "disconnect"), discovery),
        "WorkflowTable": table,
        "show_runs_as_widgets": display,
    }
    for name in vx.__all__:
        value = getattr(vx, name)
        home = homes.get(name, client)
        if name not in ("__version__", "connect", "idea2video", "script2video", "workflows"):
            assert value is getattr(home, name), name
    assert set(vx.__all__) <= set(dir(vx))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        vx.nothing  # noqa: B018


@pytest.fixture
def default_client(
    jp_serverapp: Any, jp_fetch: Any, jp_http_port: int, jp_base_url: str, jp_asyncio_loop: Any
) -> Iterator[vx.Client]:
    """``vx.connect(url, token)``: the process's default client, closed at the end."""
    vx.disconnect()
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    token = jp_serverapp.identity_provider.token
    client = jp_asyncio_loop.run_until_complete(asyncio.to_thread(vx.connect, url, token))
    try:
        yield client
    finally:
        jp_asyncio_loop.run_until_complete(asyncio.to_thread(vx.disconnect))


async def test_vx_runs_a_workflow_and_lists_it(default_client: vx.Client) -> None:
    assert vx.connect() is default_client
    run = await asyncio.to_thread(
        vx.idea2video, "A lighthouse keeper befriends a whale", **small_params(scenes=1)
    )
    result = await asyncio.wait_for(run, TIMEOUT)
    assert result.video is not None
    assert result.workflow.state.value == "completed"
    table = await asyncio.to_thread(vx.workflows)
    assert [r.id for r in table] == [run.id]
    assert repr(table).splitlines()[1].split()[:3] == [run.id, "idea2video", "completed"]


async def test_vx_passes_a_priority_on_to_the_server(default_client: vx.Client) -> None:
    run = await asyncio.to_thread(vx.idea2video, "A fox who learns to fly", priority=4)
    assert run.record.priority == 4
    await asyncio.to_thread(run.cancel)
    with pytest.raises(vx.VimaxError, match="'priority' must be a whole number") as refused:
        await asyncio.to_thread(vx.script2video, "INT. SEA - DAY", priority=-11)
    assert refused.value.status == 400


async def test_a_run_displays_as_its_progress_widget(default_client: vx.Client) -> None:
    from IPython.core.displaypub import CapturingDisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.display_pub = CapturingDisplayPublisher()
    try:  # the notebook API tells the running shell how to show a run
        run = await asyncio.to_thread(
            vx.script2video, "INT. LIGHTHOUSE - NIGHT\nA keeper lights the lamp.", **small_params()
        )
        await asyncio.wait_for(run, TIMEOUT)
        shell.display_formatter.format(run)  # displayed by the panel, with a display id
        (shown,) = shell.display_pub.outputs
        assert "application/vnd.jupyter.widget-view+json" in shown["data"]
        assert shown["data"]["text/plain"].startswith("WorkflowProgress(script2video")
        assert "completed" in shown["data"]["text/plain"]
    finally:
        InteractiveShell.clear_instance()


async def test_a_closed_default_client_is_replaced_not_reused(
    default_client: vx.Client, jp_serverapp: Any, jp_http_port: int, jp_base_url: str
) -> None:
    await asyncio.to_thread(default_client.close)
    assert default_client.closed
    assert vx.default_client() is None
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    token = jp_serverapp.identity_provider.token
    fresh = await asyncio.to_thread(vx.connect, url, token)
    assert fresh is not default_client
    assert vx.default_client() is fresh
    run = await asyncio.to_thread(vx.idea2video, "A fox who learns to fly", **small_params())
    assert run.client is fresh
    assert (await asyncio.wait_for(run, TIMEOUT)).workflow.state.value == "completed"
