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


def providers_file(path: str) -> Path:
    """The providers file at ``path``, as an absolute path, once it is known to be a file
    this process can read; a :class:`CliError` (exit 2) saying what is wrong when not."""
    given = Path(path).expanduser()
    try:
        target = given.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise CliError(f"--providers {path}: cannot read it: {why}", EXIT_USAGE) from None
    if not target.is_file():
        raise CliError(f"--providers {path}: cannot read it: not a file", EXIT_USAGE)
    try:
        with target.open("rb") as file:
            file.read(1)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise CliError(f"--providers {path}: cannot read it: {why}", EXIT_USAGE) from None
    return target


def private_server_args(args: Any) -> list[str]:
    """The options of a private server this command may start: ``--providers FILE``
    becomes ``--VimaxApp.providers_file=<absolute path>`` (the file is checked first)."""
    path = getattr(args, "providers_file", None)
    return [f"--VimaxApp.providers_file={providers_file(path)}"] if path else []


def refuse_providers_file_for(client: Client, args: Any) -> None:
    """``--providers FILE`` applies to a private server this command started; a server
    that was already running keeps its providers: a :class:`CliError` (exit 2) says so,
    and what to do instead."""
    path = getattr(args, "providers_file", None)
    if not path or discovery.private_server() is not None:
        return
    source = discovery.default_source()
    found = f" ({source})" if source else ""
    raise CliError(
        f"--providers {path}: the server at {client.url}{found} is already running, and a "
        "running server's providers cannot be changed. Start that server with the file "
        f"(`vimax-nb serve --providers {path}`, or c.VimaxApp.providers_file in its "
        "config), or leave --providers out and choose among that server's providers with "
        "--chat/--image/--video (`vimax-nb providers` lists them)",
        EXIT_USAGE,
    )


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
