"""Following a workflow in a terminal until it ends: the live display, Ctrl-C (cancel or
stop watching), a workflow the server left ``interrupted``, a server that went away,
and the outcome (the video delivered where the user asked)."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from ..client import Client, ConnectionState, Run, VimaxError, discovery
from ..client.view import connection_state, elapsed_seconds, shows_spend, spend_line, title_of
from ..protocol import WorkflowRecord, WorkflowState
from ..shared import parse_timestamp
from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    OFFLINE_LIMIT,
    CliError,
    Interrupts,
    fail,
    say,
    server_refusals,
    shown_path,
)
from .display import PlainLines, TerminalView

CANCEL_WAIT = 15.0  # seconds to wait for the canceled state after Ctrl-C (once it was sent)
CONNECT_GRACE = 5.0  # seconds a Ctrl-C waits for a connection being made to open
REFRESH = 10  # live display refreshes per second
TICK = 0.5  # seconds between checks of the private server and the connection


class Offline:
    """Gives up when the connection to a server this command did not start has been
    down for ``limit`` seconds (a private server is watched by its process instead)."""

    def __init__(self, client: Client, limit: float) -> None:
        self.client = client
        self.limit = limit
        self.since: float | None = None

    def check(self, run: Run) -> None:
        if (
            discovery.private_server() is not None
            or connection_state(self.client) == ConnectionState.open
        ):
            self.since = None
            return
        now = time.monotonic()
        if self.since is None:
            self.since = now
        if now - self.since >= self.limit:
            raise CliError(
                f"no connection to the server at {self.client.url} for {self.limit:g} s: "
                f"giving up. Workflow {run.id} was {run.state} at {run.progress:.0%} and may "
                f"still be running there; `vimax-nb watch {run.id}` once the server is back"
            )

    def timeout(self) -> float:
        """How long the loop may wait before it must look again."""
        if self.since is None:
            return TICK
        return max(0.0, min(TICK, self.since + self.limit - time.monotonic()))


def follow(
    client: Client, run: Run, args: Any, interrupts: Interrupts, *, cancel_on_interrupt: bool
) -> int:
    """Show ``run`` until it ends, is left ``interrupted`` or Ctrl-C; the exit code."""
    quiet = bool(args.quiet)
    console = Console(highlight=False)
    wake = interrupts.wake
    removers = [run.on_change(lambda _run: wake.set())]
    with contextlib.suppress(ConnectionError):  # a closed client: no connection to watch
        removers.append(client.connection.on_state(lambda _state: wake.set()))
    limit = getattr(args, "offline_timeout", None)
    offline = Offline(client, OFFLINE_LIMIT if limit is None else float(limit))
    source = discovery.default_source() or client.url
    if not quiet:
        say(f"workflow {run.id} ({run.kind}) on {client.url}")
        say(f"server: {source}")
        say("Ctrl-C cancels the run" if cancel_on_interrupt else "Ctrl-C stops watching")
    live: Live | None = None
    plain: PlainLines | None = None
    if not quiet and console.is_terminal:
        live = Live(TerminalView(run), console=console, refresh_per_second=REFRESH)
        interrupts.on_hard_exit.append(lambda: _show_cursor(console))
        live.start()
    elif not quiet:
        plain = PlainLines(run, console)
    try:
        while not (run.done or interrupts.flag.is_set() or run.state == WorkflowState.interrupted):
            if plain is not None:
                plain.update()
            _check_server()
            offline.check(run)
            wake.wait(offline.timeout())
            wake.clear()
        if plain is not None:
            plain.update()
        canceling = interrupts.flag.is_set() and not run.done and cancel_on_interrupt
        if canceling:  # the live panel keeps drawing until the cancel lands
            return _cancel(client, run, args, plain, wake)
    finally:
        if live is not None:
            live.stop()
        for remove in removers:
            remove()
    if interrupts.flag.is_set() and not run.done:
        fail(f"stopped watching workflow {run.id} ({run.state}); it goes on")
        return EXIT_INTERRUPTED
    if not run.done:  # interrupted: it will not move until someone resumes it
        fail(
            f"workflow {run.id} was interrupted at {run.progress:.0%}: the server stopped or "
            f"restarted under it. Resume it and follow it with `vimax-nb resume {run.id}`"
        )
        return EXIT_FAILED
    return finish(client, run, args)


def _show_cursor(console: Console) -> None:
    console.show_cursor(True)


def _check_server() -> None:
    server = discovery.private_server()
    if server is not None and server.process is not None and not server.running:
        raise CliError(
            f"the private server stopped (exit code {server.process.returncode}); "
            f"log: {server.log_tail()}"
        )


def _cancel(
    client: Client, run: Run, args: Any, plain: PlainLines | None, wake: threading.Event
) -> int:
    fail(f"canceling workflow {run.id}... (Ctrl-C again to leave at once)")
    state = connection_state(client)
    deadline = time.monotonic() + CONNECT_GRACE
    while (
        state == ConnectionState.connecting and time.monotonic() < deadline
    ):  # woken by state changes
        wake.wait(min(TICK, max(0.0, deadline - time.monotonic())))
        wake.clear()
        state = connection_state(client)
    if state != ConnectionState.open:
        return _not_sent(run, f"no connection to the server ({state})")
    try:
        run.cancel()
    except VimaxError as exc:  # it ended meanwhile (409), or the server refused
        if not run.done:
            fail(f"the server did not cancel workflow {run.id}: {exc.message}")
    except (TimeoutError, ConnectionError, OSError) as exc:
        return _not_sent(run, str(exc))
    deadline = time.monotonic() + CANCEL_WAIT
    while not run.done and time.monotonic() < deadline:
        wake.wait(min(TICK, max(0.0, deadline - time.monotonic())))
        wake.clear()
    if plain is not None:
        plain.update()
    try:
        final = client.workflow(run.id).state
    except (VimaxError, OSError, ValueError):
        final = run.state
    if final == WorkflowState.canceled:
        fail(f"workflow {run.id} canceled (Ctrl-C)")
    elif final in (WorkflowState.completed, WorkflowState.failed):
        fail(f"workflow {run.id} {final} before the cancel reached it")
        return finish(client, run, args)
    else:
        fail(f"workflow {run.id} is still {final} after {CANCEL_WAIT:.0f} s; cancel was asked")
    return EXIT_INTERRUPTED


def _not_sent(run: Run, reason: str) -> int:
    fail(
        f"could not send the cancel for workflow {run.id}: {reason}. It may still be running "
        f"on the server: `vimax-nb ls` or `vimax-nb watch {run.id}` shows it"
    )
    return EXIT_INTERRUPTED


def finish(client: Client, run: Run, args: Any) -> int:
    """Print the outcome; the exit code."""
    with server_refusals():
        record = client.workflow(run.id)
    state = record.state
    spent = spend_line(record.cost) if shows_spend(record.cost) else ""
    if state == WorkflowState.canceled:
        fail(f"workflow {record.id} was canceled{_reason(record)}")
        if spent:
            fail(spent)
        return EXIT_INTERRUPTED
    if state != WorkflowState.completed or not record.result:
        error = record.error or {}
        message = error.get("message") or record.message or state
        fail(f"workflow {record.id} {state}: {message}")
        if spent:
            fail(spent)
        return EXIT_FAILED
    video = deliver(client, record, args.out)
    result = record.result
    if args.quiet:
        say(str(video))
        return EXIT_OK
    story = result.get("story")
    title = story.get("title") if isinstance(story, dict) else None
    took = _took(record)
    say(f"workflow {record.id} completed{took}: {title_of(record.kind, record.params)}")
    if title:
        say(f"story: {title}")
    info = ""
    if all(k in result for k in ("width", "height", "frame_count", "duration")):
        info = (
            f": {result['width']}x{result['height']}, {result['frame_count']} frames, "
            f"{float(result['duration']):.1f} s"
        )
    say(f"{video}{info}")
    if spent:
        say(spent)
    return EXIT_OK


def _reason(record: WorkflowRecord) -> str:
    return f": {record.message}" if record.message else ""


def _took(record: WorkflowRecord) -> str:
    """`` in 4.2 s``: how long the finished workflow ran, by its record (``""`` when the
    record lacks its start or its end)."""
    if parse_timestamp(record.finished_at) is None:
        return ""
    seconds = elapsed_seconds(record, done=True)
    return f" in {seconds:.1f} s" if seconds is not None else ""


def deliver(client: Client, record: WorkflowRecord, out: Path | None) -> Path | str:
    """Where the final video is for the user: the server's own file when it is on this
    machine and no ``--out`` is given; else a copy in ``<out>/<id>/`` (``out`` defaults
    to ``vimax-work`` for a remote server)."""
    relative = str((record.result or {}).get("video") or "final_video.mp4")
    where = client.artifact(record.id, relative)
    if out is None:
        if isinstance(where, Path):
            return shown_path(where)
        out = Path("vimax-work")
    target = out / record.id / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if isinstance(where, Path):
            if not (target.exists() and os.path.samefile(where, target)):
                shutil.copyfile(where, target)
        else:
            with server_refusals():
                client.download(record.id, relative, target)
    except OSError as exc:
        raise CliError(f"cannot save the video to {target}: {exc}") from None
    return target
