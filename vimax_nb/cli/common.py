"""What every ``vimax-nb`` command shares: exit codes, errors, Ctrl-C, connecting."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from ..client import Client, VimaxConnectError, VimaxError, discovery
from ..client.private import WORKDIR_NAME

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


def out_folder(path: Path | None) -> Path | None:
    """``--out PATH``, checked before anything starts: a folder this process can write
    in, or one it can make (its nearest existing parent is a folder it can write in); a
    :class:`CliError` (exit 2) naming the path and the problem when not."""
    if path is None:
        return None
    given = path.expanduser()
    target = given.absolute()
    if target.exists():
        if not target.is_dir():
            raise CliError(f"--out {path}: it is a file, not a folder", EXIT_USAGE)
        if not os.access(target, os.W_OK | os.X_OK):
            raise CliError(f"--out {path}: this user cannot write in that folder", EXIT_USAGE)
        return given
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise CliError(f"--out {path}: {parent} is a file, not a folder", EXIT_USAGE)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CliError(
            f"--out {path}: it cannot be made: this user cannot write in {parent}", EXIT_USAGE
        )
    return given


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


def connect(args: Any, *, start_server: bool = True) -> Client:
    """The server the command talks to: ``--url``/``--token``, else :func:`connect`'s
    discovery (environment, the kernel's server, this folder's server, a private one).

    ``start_server=False`` (the read-only commands) never starts a private server: with
    none running, a :class:`CliError` (exit 3) says so and how to start one. A server
    named by ``--url`` or ``VIMAX_NB_URL`` that cannot be reached is always an error.
    With ``--verbose`` the server used is said first, on stderr."""
    url = getattr(args, "url", None)
    try:
        client = discovery.connect(
            url,
            getattr(args, "token", None),
            start_server=start_server,
            server_args=getattr(args, "server_args", ()),
        )
    except VimaxConnectError as exc:
        raise CliError(_connect_problem(exc, url, start_server), EXIT_CONNECT) from None
    if getattr(args, "verbose", False):
        say(f"server: {client.url} ({server_origin(url)})", error=True)
    return client


def server_origin(url: str | None = None) -> str:
    """How the command's server was found, in a few words for ``--verbose``."""
    origin = discovery.default_origin()
    if url is not None or origin == discovery.ORIGIN_URL:
        return "--url"
    if origin == discovery.ORIGIN_ENV:
        return "VIMAX_NB_URL"
    if origin == discovery.ORIGIN_KERNEL:
        return "the Jupyter server of this kernel"
    if origin == discovery.ORIGIN_FOLDER:
        return f"served folder {Path.cwd().resolve()}"
    if origin == discovery.ORIGIN_PRIVATE:
        return "private server started for this command"
    return discovery.default_source() or "found"


def _connect_problem(exc: VimaxConnectError, url: str | None, start_server: bool) -> str:
    """What the user reads when no server was reached: the decisive reason first."""
    if url is None and os.environ.get("VIMAX_NB_URL"):
        return (
            f"{exc}\nVIMAX_NB_URL names the server to use: start it, correct VIMAX_NB_URL "
            "(and VIMAX_NB_TOKEN), or unset them to use this folder's server"
        )
    if url is not None or start_server:
        return str(exc)
    folder = Path.cwd()
    lines = [
        f"no vimax-nb server is running for {folder}: start one here with `vimax-nb "
        "serve` (this command and the others then use it), or run a workflow with "
        '`vimax-nb run idea2video "..."` (which starts a server for the run)'
    ]
    if (folder / WORKDIR_NAME / discovery.DATABASE_NAME).is_file():
        lines.append(
            f"this folder's workflows are in {WORKDIR_NAME}/: `vimax-nb serve` here shows them"
        )
    tried = [a for a in exc.attempts if not a[0].startswith("a private jupyter server")]
    lines.append("tried:")
    lines.extend(f"  - {what}: {why}" for what, why in tried)
    return "\n".join(lines)


@contextlib.contextmanager
def server_refusals() -> Iterator[None]:
    """Turn a refusal of the server (:class:`VimaxError`) into a :class:`CliError`: a 4xx
    is bad input (exit 2), the rest a failure (exit 1)."""
    try:
        yield
    except VimaxError as exc:
        status = exc.status
        code = EXIT_USAGE if status is not None and 400 <= status < 500 else EXIT_FAILED
        text = in_cli_words(exc.message)
        message = text if status is None else f"{text} (HTTP {status})"
        raise CliError(message, code) from None


# The REST routes a server's message may point to, and the commands that show the same.
_ROUTES = (
    (re.compile(r"\bGET /vimax/api/workflows(?![/\w])"), "`vimax-nb ls`"),
    (re.compile(r"\bGET /vimax/api/agents(?![/\w])"), "`vimax-nb agents`"),
    (re.compile(r"\bGET /vimax/api/providers(?![/\w])"), "`vimax-nb providers`"),
)


def in_cli_words(message: str) -> str:
    """A server's message for a CLI user: a REST route it points to (``no workflow with
    id 'x'; GET /vimax/api/workflows lists them``) becomes the command that shows the
    same (`` `vimax-nb ls` lists them``)."""
    for route, command in _ROUTES:
        message = route.sub(command, message)
    return message


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
