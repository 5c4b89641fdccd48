"""What every ``vimax-nb`` command shares: exit codes, errors, Ctrl-C, connecting."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from ..client import Client, VimaxConnectError, VimaxError, discovery

EXIT_OK = 0
EXIT_FAILED = 1  # the workflow failed (or the server went away under it)
EXIT_USAGE = 2  # bad arguments or input: nothing was started
EXIT_CONNECT = 3  # no server could be reached or started
EXIT_INTERRUPTED = 130  # Ctrl-C, or the workflow was canceled

OFFLINE_LIMIT = 30.0  # seconds without a connection to a (non-private) server before giving up


class CliError(Exception):
    """An expected error: printed as one line (plus detail lines) without a traceback."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def say(text: str, *, error: bool = False) -> None:
    """Print a line; a reader that went away (``| head``) silences the rest."""
    stream = sys.stderr if error else sys.stdout
    try:
        print(text, file=stream, flush=True)
    except BrokenPipeError:
        # Point the stream at /dev/null so the interpreter's final flush is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def fail(text: str) -> None:
    say(f"vimax-nb: {text}", error=True)


def connect(args: Any) -> Client:
    """The server the command talks to: ``--url``/``--token``, else :func:`connect`'s
    discovery (environment, the kernel's server, this folder's server, a private one)."""
    try:
        return discovery.connect(
            getattr(args, "url", None),
            getattr(args, "token", None),
            server_args=getattr(args, "server_args", ()),
        )
    except VimaxConnectError as exc:
        raise CliError(str(exc), EXIT_CONNECT) from None


@contextlib.contextmanager
def server_refusals() -> Iterator[None]:
    """Turn a refusal of the server (:class:`VimaxError`) into a :class:`CliError`: a 4xx
    is bad input (exit 2), the rest a failure (exit 1)."""
    try:
        yield
    except VimaxError as exc:
        status = exc.status
        code = EXIT_USAGE if status is not None and 400 <= status < 500 else EXIT_FAILED
        message = exc.message if status is None else f"{exc.message} (HTTP {status})"
        raise CliError(message, code) from None


def shown_path(path: Path) -> Path:
    """``path`` relative to the current folder when it is inside it, else as it is."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


class Interrupts:
    """Ctrl-C handling for the whole command.

    Until :meth:`catch` is called the first Ctrl-C raises KeyboardInterrupt as usual.
    While caught, it only sets :attr:`flag` (and wakes whoever waits on :attr:`wake`) so
    the command can cancel its run or stop its server cleanly. A second Ctrl-C always
    leaves at once: ``on_hard_exit`` runs (it must not block) and the process exits 130.
    """

    def __init__(self) -> None:
        self.count = 0
        self.caught = False
        self.flag = threading.Event()
        self.wake = threading.Event()
        self.on_hard_exit: list[Callable[[], None]] = []
        self._previous: Any = None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def catch(self) -> None:
        self.caught = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count >= 2:
            self.hard_exit()
        if not self.caught:
            raise KeyboardInterrupt
        self.flag.set()
        self.wake.set()

    def hard_exit(self) -> None:
        for hook in self.on_hard_exit:
            with contextlib.suppress(Exception):  # leaving anyway
                hook()
        server = discovery.private_server()
        if server is not None:
            server.terminate()  # it would stop itself within a second anyway
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        say("\nvimax-nb: interrupted twice: leaving now", error=True)
        os._exit(EXIT_INTERRUPTED)
