"""The widgets as a user sees them, in JupyterLab and in Notebook 7: a notebook opened in
headless Chromium, every cell run from the Run menu, the panels checked in the page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from vimax_nb.widgets import theme

from .harness import (
    RUN_TIMEOUT_MS,
    Console,
    JupyterServer,
    background_of,
    badge,
    browser_page,
    check_completed_progress,
    check_log,
    check_no_injection,
    check_outputs_clean,
    jupyter,
    needs_chromium,
    open_and_run_all,
    output_of,
    rgb,
    screenshot,
    stage_rows,
)

pytestmark = [pytest.mark.e2e, needs_chromium]

IDEA = "<img src=x onerror=window.__pwned=1> A lighthouse keeper"
LAUNCHED_IDEA = "<img src=y onerror=window.__pwned=2> A fox <b>learns</b> to fly"
SMALL = "width=160, height=96, fps=6, seconds_per_shot=1, shots_per_scene=2"
AGENTS = (
    "screenwriter",
    "character_extractor",
    "portrait_painter",
    "storyboard_artist",
    "camera_director",
    "frame_painter",
    "video_generator",
    "editor",
)
CELLS = [
    f"import vimax_nb as vx\nvx.connect()\nrun = vx.idea2video({IDEA!r}, {SMALL})\nrun",
    "vx.AgentMonitor()",
    f"launcher = vx.Idea2VideoLauncher({SMALL})\nlauncher",
    "from vimax_nb.client import discovery\nprint('found:', discovery.default_source())",
]
PROGRESS, MONITOR, LAUNCHER, SOURCE = range(4)


class FrontEnd:
    """A front end serving the notebook, its page, what the page reported."""

    def __init__(self, server: JupyterServer, page: Any, console: Console) -> None:
        self.server, self.page, self.console = server, page, console
        self.name = server.app

    def shot(self, area: Any, panel: str) -> None:
        screenshot(area, f"{self.name}-{panel}")


@pytest.fixture(scope="module", params=["lab", "notebook"])
def front(request: pytest.FixtureRequest, browser: Any) -> Iterator[FrontEnd]:
    """``jupyter lab`` or ``jupyter notebook`` (Notebook 7) with the notebook open and
    every cell run; the tests of one front end share it, in order."""
    console = Console()
    app = request.param
    with jupyter(app, {"e2e.ipynb": CELLS}) as server, browser_page(browser, console) as page:
        open_and_run_all(page, server, "e2e.ipynb", len(CELLS))
        yield FrontEnd(server, page, console)


def test_run_shows_its_progress_panel(front: FrontEnd) -> None:
    area = output_of(front.page, PROGRESS)
    check_completed_progress(area, IDEA)
    front.shot(area, "progress")
    check_log(area)
    check_no_injection(front.page)


def test_agent_monitor_shows_every_agent(front: FrontEnd) -> None:
    from playwright.sync_api import expect

    area = output_of(front.page, MONITOR)
    cards = area.locator(".vimax-agent")
    expect(cards).to_have_count(len(AGENTS))
    for name in AGENTS:
        expect(
            cards.filter(has=front.page.locator("b", has_text=re.compile(f"^{name}$")))
        ).to_be_visible()
    expect(area).to_contain_text("Coordinator")
    expect(area).to_contain_text(re.compile(r"agents \d+/8 healthy"))

    buttons = area.locator("button")
    expect(buttons.filter(has_text=re.compile(r"^all \(8\)$"))).to_have_count(1)
    expect(buttons.filter(has_text="idle (8)")).to_have_count(1, timeout=RUN_TIMEOUT_MS)
    counts = {}
    for status in ("idle", "busy", "error", "offline"):
        button = buttons.filter(has_text=re.compile(rf"^{status} \(\d+\)$"))
        expect(button).to_have_count(1)
        counts[status] = int(re.findall(r"\d+", button.inner_text())[0])
    assert sum(counts.values()) == len(AGENTS), counts
    front.shot(area, "monitor")

    # The filters and the search, each a round trip through the kernel.
    buttons.filter(has_text=re.compile(r"^error \(")).click()
    expect(cards).to_have_count(0)
    expect(area).to_contain_text("No error agents.")
    buttons.filter(has_text=re.compile(r"^all \(")).click()
    expect(cards).to_have_count(len(AGENTS))
    area.get_by_placeholder("search name or capability").fill("painter")
    expect(cards).to_have_count(2)
    for name in ("portrait_painter", "frame_painter"):
        expect(cards.filter(has_text=name)).to_have_count(1)
    area.get_by_placeholder("search name or capability").fill("")
    expect(cards).to_have_count(len(AGENTS))


def test_launcher_starts_a_run_and_shows_it(front: FrontEnd) -> None:
    from playwright.sync_api import expect

    area = output_of(front.page, LAUNCHER)
    idea = area.get_by_placeholder("your idea")
    expect(idea).to_be_visible()
    front.shot(area, "launcher-form")
    idea.fill(LAUNCHED_IDEA)
    area.get_by_role("button", name="Launch").click()
    expect(area).to_contain_text(re.compile(r"Launched idea2video \w+\."))
    check_completed_progress(area, LAUNCHED_IDEA)
    front.shot(area, "launcher-run")
    check_no_injection(front.page)


def test_pause_resume_cancel_buttons(front: FrontEnd) -> None:
    """A long run from the launcher, its advanced options set in the form: Pause, Resume
    and Cancel clicked in its panel, each state shown with its colour."""
    from playwright.sync_api import expect

    area = output_of(front.page, LAUNCHER)
    area.get_by_placeholder("your idea").fill("A long <i>night</i> at sea")
    area.locator(".jupyter-widget-Collapse-header", has_text="Advanced options").click()
    # The longest run the form allows (the small ones end in a second or two): it is
    # canceled long before it ends.
    for label, value in (("scenes", "10"), ("shots per scene", "24")):
        field = area.get_by_label(label, exact=True)
        field.fill(value)
        field.press("Enter")
    area.get_by_role("button", name="Launch").click()
    panel = area.locator(".vimax-progress").filter(has_text="A long <i>night</i> at sea")
    pause, resume, cancel = (
        panel.get_by_role("button", name=n) for n in ("Pause", "Resume", "Cancel")
    )

    expect(badge(panel, "running")).to_be_visible()
    assert background_of(badge(panel, "running")) == rgb(theme.BLUE)
    pause.click()
    expect(badge(panel, "paused")).to_be_visible()
    assert background_of(badge(panel, "paused")) == rgb(theme.AMBER)
    expect(pause).to_be_disabled()
    expect(resume).to_be_enabled()
    front.shot(panel, "paused")
    resume.click()
    expect(badge(panel, "running")).to_be_visible()
    cancel.click()
    expect(badge(panel, "canceled")).to_be_visible()
    assert background_of(badge(panel, "canceled")) == rgb(theme.GREY)
    for button in (pause, resume, cancel):
        expect(button).to_be_disabled()
    rows = stage_rows(panel)
    expect(rows.filter(has_text=re.compile(r"canceled$")).first).to_be_visible()
    assert not [t for t in rows.all_inner_texts() if t.endswith("running")], rows.all_inner_texts()
    front.shot(panel, "canceled")


def test_the_kernel_uses_the_server_it_runs_under(front: FrontEnd) -> None:
    """vx.connect() in a kernel of this front end finds the front end's own server (its
    runtime file, by the kernel's parent pid), not a private one."""
    from playwright.sync_api import expect

    area = output_of(front.page, SOURCE)
    expect(area).to_contain_text(f"found: the Jupyter server of pid {front.server.process.pid}")


def test_no_errors_in_the_page(front: FrontEnd) -> None:
    check_outputs_clean(front.page)
    check_no_injection(front.page)
    assert not front.console.unexpected_page_errors(), front.console.report()
    assert not front.console.widget_errors, front.console.report()
    print(front.console.report())  # the rest: Jupyter's own noise, shown with -s / -rA
    assert "Traceback" not in front.server.log(), front.server.log()[-4000:]
