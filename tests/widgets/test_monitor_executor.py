"""The executor line of AgentMonitor: where tasks run, the dashboard link, the problem."""

from __future__ import annotations

from typing import Any

import pytest

from vimax_nb.client.fleet import Fleet
from vimax_nb.client.view import dashboard_link, executor_line, executor_parts
from vimax_nb.protocol import ExecutorInfo
from vimax_nb.widgets import AgentMonitor, theme

from .fakes import EVIL, Backend, Watcher, eight_agents, html_values

DASHBOARD = "http://127.0.0.1:8787/status"
DASK = {
    "kind": "dask",
    "workers": 2,
    "threads": 4,
    "address": "tcp://127.0.0.1:8786",
    "dashboard": DASHBOARD,
}
LOST = "the Dask scheduler at tcp://127.0.0.1:8786 cannot be reached"


def monitor_of(backend: Backend, executor: dict[str, Any] | None) -> AgentMonitor:
    """A monitor of the eight agents, the server's metrics naming ``executor``; not live."""
    backend.agents(*eight_agents(), executor=executor)
    return AgentMonitor(fleet=Fleet(backend.client, live=False))


def test_the_local_executor_shows_its_threads(backend: Backend) -> None:
    monitor = monitor_of(backend, {"kind": "local", "workers": 1, "threads": 4})
    html = monitor.executor_html.value
    assert "<b>Executor</b>" in html
    assert "local <span" in html
    assert "4 threads" in html
    assert "worker" not in html  # the server's own threads: no workers to count
    assert "<a " not in html
    assert "vimax-problem" not in html
    assert repr(monitor) == "AgentMonitor(8 agents: 6 idle, 2 busy; executor: local · 4 threads)"
    monitor.close()


def test_dask_shows_workers_threads_and_a_dashboard_link(backend: Backend) -> None:
    monitor = monitor_of(backend, DASK)
    html = monitor.executor_html.value
    assert "dask" in html
    assert "2 workers" in html
    assert "4 threads" in html
    assert f"<a href='{DASHBOARD}' target='_blank' rel='noopener noreferrer'" in html
    assert html.count("<a ") == 1
    assert ">dashboard</a>" in html
    assert "title='scheduler tcp://127.0.0.1:8786'" in html
    # the dashboard's port changes from one start to the next: not in the stable text
    assert repr(monitor) == (
        "AgentMonitor(8 agents: 6 idle, 2 busy; executor: dask · 2 workers · 4 threads)"
    )
    monitor.close()


def test_a_problem_shows_in_red_and_live(backend: Backend) -> None:
    backend.agents(*eight_agents(), executor={**DASK, "workers": 1, "threads": 1})
    monitor = AgentMonitor(backend.client)
    watcher = Watcher(monitor)
    watcher.until(lambda: "&#9679; open" in monitor.connection_indicator.value)
    assert "1 worker <span" in monitor.executor_html.value
    assert "1 thread" in monitor.executor_html.value
    assert "1 threads" not in monitor.executor_html.value
    assert "vimax-problem" not in monitor.executor_html.value

    lost = {"kind": "dask", "address": "tcp://127.0.0.1:8786", "problem": LOST}
    backend.coordinator(registered_agents=8, executor=lost)
    watcher.until(lambda: "vimax-problem" in monitor.executor_html.value)
    html = monitor.executor_html.value
    assert f"<span class='vimax-problem' style='color:{theme.RED}'>{LOST}</span>" in html
    assert "worker" not in html  # unreachable: nothing to count
    assert "<a " not in html
    assert repr(monitor) == f"AgentMonitor(8 agents: 6 idle, 2 busy; executor: dask · {LOST})"

    backend.coordinator(registered_agents=8, executor=DASK)  # the scheduler is back
    watcher.until(lambda: "vimax-problem" not in monitor.executor_html.value)
    assert ">dashboard</a>" in monitor.executor_html.value
    monitor.close()


def test_no_executor_line_from_a_server_that_does_not_say(backend: Backend) -> None:
    monitor = monitor_of(backend, None)
    assert monitor.executor_html.value == ""
    assert repr(monitor) == "AgentMonitor(8 agents: 6 idle, 2 busy)"
    monitor.close()


def test_server_text_in_the_executor_line_is_escaped(backend: Backend) -> None:
    executor = {"kind": EVIL, "address": EVIL, "dashboard": EVIL, "problem": EVIL}
    monitor = monitor_of(backend, executor)
    html = monitor.executor_html.value
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<a " not in html
    for value in html_values(monitor.box):
        assert "<img" not in value, value
    monitor.close()


BAD_DASHBOARDS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
    "file:///etc/passwd",
    "ftp://127.0.0.1/status",
    "//127.0.0.1:8787/status",
    "/status",
    "http://",
    "http:///status",
    f"http://127.0.0.1:8787/{EVIL}",
    "http://127.0.0.1:8787/status' onmouseover='alert(1)",
    'http://127.0.0.1:8787/status" onmouseover="alert(1)',
    "http://127.0.0.1:8787/status onmouseover=alert(1)",
    "http://127.0.0.1:8787/\nstatus",
    "<b>http://127.0.0.1:8787/status</b>",
]


@pytest.mark.parametrize("dashboard", BAD_DASHBOARDS)
def test_a_dashboard_that_is_not_a_plain_http_url_is_never_a_link(
    backend: Backend, dashboard: str
) -> None:
    assert dashboard_link(ExecutorInfo(kind="dask", dashboard=dashboard)) is None
    monitor = monitor_of(backend, {**DASK, "dashboard": dashboard})
    html = monitor.executor_html.value
    assert "<a " not in html
    assert "href" not in html
    for raw in ("<script", "<img", "<b>http", "onmouseover='", 'onmouseover="'):
        assert raw not in html, html
    assert "dashboard " in html  # shown as (escaped) text
    monitor.close()


@pytest.mark.parametrize(
    "dashboard",
    [DASHBOARD, "https://dask.example.org/status", "HTTP://[::1]:8787/status?x=1&y=2"],
)
def test_an_http_dashboard_is_a_link(dashboard: str) -> None:
    assert dashboard_link(ExecutorInfo(kind="dask", dashboard=dashboard)) == dashboard


def test_the_executor_text_for_every_front_end() -> None:
    local = ExecutorInfo(kind="local", workers=1, threads=1)
    assert executor_parts(local) == ["local", "1 thread"]
    dask = ExecutorInfo(kind="dask", workers=3, threads=12, dashboard=DASHBOARD)
    assert executor_line(dask) == "dask · 3 workers · 12 threads"
    idle = ExecutorInfo(kind="dask")  # a scheduler without workers yet
    assert executor_line(idle) == "dask · 0 workers · 0 threads"
    lost = ExecutorInfo(kind="dask", problem=LOST)
    assert executor_line(lost) == f"dask · {LOST}"
