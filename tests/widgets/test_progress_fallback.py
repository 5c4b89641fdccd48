"""The text fallback a saved notebook keeps of a WorkflowProgress follows the run's state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from vimax_nb.widgets import WorkflowProgress

from .fakes import TIMEOUT, Backend, Watcher

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class Published:
    """A display publisher that keeps what IPython publishes: (data, display id, update)."""

    def __init__(self) -> None:
        self.outputs: list[tuple[dict[str, Any], str | None, bool]] = []

    def publish(
        self,
        data: dict[str, Any],
        metadata: Any = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        self.outputs.append((data, (transient or {}).get("display_id"), update))

    def clear_output(self, wait: bool = False) -> None:
        pass


@pytest.fixture
def published() -> Iterator[Published]:
    shell = InteractiveShell.instance()
    publisher = Published()
    before, shell.display_pub = shell.display_pub, publisher
    try:
        yield publisher
    finally:
        shell.display_pub = before
        InteractiveShell.clear_instance()


def test_the_saved_text_ends_on_the_final_state(backend: Backend, published: Published) -> None:
    run = backend.run()
    widget = WorkflowProgress(run, interval=0.01)
    shell = InteractiveShell.instance()
    shown, _ = shell.display_formatter.format(widget)  # IPython calls _ipython_display_
    assert shown == {}
    ((first, display_id, update),) = published.outputs
    assert display_id
    assert not update
    assert first["text/plain"] == "WorkflowProgress(idea2video 'A lighthouse keeper...' running 0%)"
    assert WIDGET_VIEW in first

    for i in range(1, 20):  # progress alone does not publish the output again
        backend.send(run, progress=i / 20, stage="frames")
    backend.send(run, state="completed", progress=1.0, message="all done")
    watcher = Watcher(widget)
    final = "WorkflowProgress(idea2video 'A lighthouse keeper...' completed 100%)"
    watcher.until(lambda: any(data["text/plain"] == final for data, _, _ in published.outputs))
    widget.flush()
    updates = published.outputs[1:]
    assert len(updates) == 1
    data, same_id, update = updates[0]
    assert (same_id, update) == (display_id, True)
    assert WIDGET_VIEW in data  # the live panel stays a widget
    widget.close()


def test_without_ipython_display_nothing_is_published(
    backend: Backend, published: Published
) -> None:
    run = backend.run()
    widget = WorkflowProgress(run, interval=0.01)
    assert widget._repr_mimebundle_()["text/plain"].endswith("running 0%)")
    backend.send(run, state="completed", progress=1.0)
    Watcher(widget).until(lambda: ">completed<" in widget.badge.value, TIMEOUT)
    assert published.outputs == []
    assert repr(widget).endswith("completed 100%)")
    widget.close()
