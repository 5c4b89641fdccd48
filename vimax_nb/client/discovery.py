"""Finding a vimax-nb server: :func:`connect`.

In order, :func:`connect` tries

1. ``VIMAX_NB_URL`` / ``VIMAX_NB_TOKEN`` when set (``JUPYTERHUB_API_TOKEN`` if no token):
   then that server and no other, as with ``url``: one that cannot be reached, or that
   refuses the token, is an error, never a reason to look elsewhere;
2. the Jupyter server this kernel runs under: its runtime file ``jpserver-<pid>.json``
   in :func:`jupyter_core.paths.jupyter_runtime_dir` whose ``pid`` is ``JPY_PARENT_PID``
   (or this process's parent), with ``JUPYTERHUB_API_TOKEN`` when the file has no token;
3. a Jupyter server already serving this folder (``vimax-nb serve``, JupyterLab started
   here, another process's private server): a runtime file whose ``root_dir`` is the
   current folder, or whose pid holds the lock of ``vimax-work/vimax.sqlite3``. Two
   servers cannot share a database, so this one must be used rather than a new one;
4. a private ``jupyter server`` with the extension, started as a subprocess on a free
   port of 127.0.0.1 with a random token and stopped when the interpreter exits (or,
   should it be killed, within about a second of it).

Each candidate must answer ``GET /vimax/api/coordinator``. When none does,
:class:`VimaxConnectError` says the decisive reason first (the named server's, or the
private server's), then lists what else was tried and why each failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .api import Client
from .errors import VimaxError
from .private import WORKDIR_NAME, PrivateServer

__all__ = [
    "PrivateServer",
    "VimaxConnectError",
    "connect",
    "default_client",
    "default_origin",
    "default_source",
    "disconnect",
    "folder_server",
    "private_server",
]

PROBE_TIMEOUT = 5.0
DATABASE_NAME = "vimax.sqlite3"

_lock = threading.RLock()
_default: Client | None = None
_source: str | None = None
_origin: str | None = None
_private: PrivateServer | None = None


# How the default client's server was found (:func:`default_origin`).
ORIGIN_URL = "url"  # the url given to connect()
ORIGIN_ENV = "env"  # VIMAX_NB_URL
ORIGIN_KERNEL = "kernel"  # the Jupyter server this kernel runs under
ORIGIN_FOLDER = "folder"  # a Jupyter server serving the current folder
ORIGIN_PRIVATE = "private"  # a private server started by this process


class VimaxConnectError(ConnectionError):
    """No vimax-nb server could be reached; ``attempts`` is ``[(what, why), ...]``.

    ``decisive`` (an index into ``attempts``, default the last one) is the attempt whose
    failure decided the outcome: a server that was named (``url``, ``VIMAX_NB_URL``) or
    the private server that did not start. The message says it on its first line, then
    lists the other attempts."""

    def __init__(self, attempts: list[tuple[str, str]], decisive: int | None = None) -> None:
        self.attempts = attempts
        if decisive is None:
            decisive = len(attempts) - 1
        self.decisive: tuple[str, str] | None = (
            attempts[decisive] if 0 <= decisive < len(attempts) else None
        )
        others = [a for i, a in enumerate(attempts) if i != decisive]
        if self.decisive is None:
            head = "could not connect to a vimax-nb server"
        else:
            what, why = self.decisive
            head = f"could not connect to a vimax-nb server: {what}: {why}"
        lines = "\n".join(f"  - {what}: {why}" for what, why in others)
        tried = "also tried" if self.decisive is not None else "tried"
        super().__init__(f"{head}\n{tried}:\n{lines}" if others else head)


def connect(
    url: str | None = None,
    token: str | None = None,
    *,
    start_server: bool = True,
    workdir: str | Path | None = None,
    server_args: Sequence[str] = (),
) -> Client:
    """The process's default :class:`Client`, found (or started) on first call.

    With ``url`` the server there is used (and becomes the default if there is none
    yet); ``start_server=False`` never starts a private server; ``server_args`` are
    extra command-line options for a private server (``--VimaxApp.chat_provider=openai``).
    """
    global _default, _source, _origin
    with _lock:
        if url is None and _default is not None and not _default.closed:
            return _default
        attempts: list[tuple[str, str]] = []
        found: tuple[Client, str, str] | None
        if url is not None:
            client = _probe(f"the given url {url}", url, token, workdir, attempts)
            found = (client, f"the given url {url}", ORIGIN_URL) if client else None
        else:
            found = _discover(token, start_server, workdir, server_args, attempts)
        if found is None:
            raise VimaxConnectError(attempts, _decisive(attempts, start_server))
        client, source, origin = found
        if _default is None or _default.closed:
            _default, _source, _origin = client, source, origin
        return client


def _decisive(attempts: list[tuple[str, str]], start_server: bool) -> int:
    """Which attempt decided the failure: the only one (a given url, VIMAX_NB_URL), the
    private server that did not start, else none (-1: nothing was found)."""
    if len(attempts) == 1:
        return 0
    if start_server and attempts and attempts[-1][0].startswith("a private jupyter server"):
        return len(attempts) - 1
    return -1


def default_client() -> Client | None:
    """The default client :func:`connect` made, if any and not closed."""
    client = _default
    return client if client is not None and not client.closed else None


def default_source() -> str | None:
    """How the default client's server was found, in words (None before :func:`connect`)."""
    return _source if _default is not None else None


def default_origin() -> str | None:
    """How the default client's server was found: one of the ``ORIGIN_*`` constants
    (None before :func:`connect`)."""
    return _origin if _default is not None else None


def private_server() -> PrivateServer | None:
    """The private server :func:`connect` started, if it did."""
    return _private


def disconnect() -> None:
    """Close the default client and stop the private server, if any (idempotent)."""
    global _default, _private, _source, _origin
    with _lock:
        client, _default, _source, _origin = _default, None, None, None
        server, _private = _private, None
    if client is not None:
        client.close()
    if server is not None:
        server.stop()


def _discover(
    token: str | None,
    start_server: bool,
    workdir: str | Path | None,
    server_args: Sequence[str],
    attempts: list[tuple[str, str]],
) -> tuple[Client, str, str] | None:
    env_url = os.environ.get("VIMAX_NB_URL")
    if env_url:
        # A named server is the one to use: when it fails, say so (as for a given url)
        # rather than quietly use, or start, another one.
        env_token = (
            token or os.environ.get("VIMAX_NB_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN")
        )
        what = f"VIMAX_NB_URL={env_url}"
        client = _probe(what, env_url, env_token, workdir, attempts)
        return (client, what, ORIGIN_ENV) if client is not None else None
    attempts.append(("VIMAX_NB_URL", "not set"))

    found = _kernel_server(token, workdir, attempts)
    if found is not None:
        return found

    found = _folder_server(Path.cwd(), token, workdir, attempts)
    if found is not None:
        return found

    if not start_server:
        attempts.append(("a private jupyter server", "not started (start_server=False)"))
        return None
    return _start_private(workdir, server_args, attempts)


def _probe(
    what: str,
    url: str,
    token: str | None,
    workdir: str | Path | None,
    attempts: list[tuple[str, str]],
) -> Client | None:
    client = Client(url, token, workdir=workdir)
    try:
        client.coordinator(timeout=PROBE_TIMEOUT)
    except VimaxError as exc:
        attempts.append((what, f"answered HTTP {exc.status}: {exc.message}"))
    except (OSError, ValueError) as exc:
        attempts.append((what, f"{type(exc).__name__}: {exc}"))
    else:
        return client
    return None


# -- runtime files ----------------------------------------------------------------------


def _runtime_dir() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir())


def _parent_pid() -> int:
    raw = os.environ.get("JPY_PARENT_PID")
    if raw:
        try:
            return int(raw)
        except ValueError:
            pass
    return os.getppid()


def _runtime_infos(runtime: Path) -> list[dict[str, Any]]:
    """Every readable ``jpserver-*.json`` in ``runtime``, newest first."""
    infos = []
    paths = []
    for path in runtime.glob("jpserver-*.json"):
        with contextlib.suppress(OSError):
            paths.append((path.stat().st_mtime, path))
    for _, path in sorted(paths, reverse=True):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict):
            infos.append(info)
    return infos


def _server_url(info: dict[str, Any]) -> str | None:
    url = info.get("url")
    if not isinstance(url, str) or not url:
        return None
    base_url = info.get("base_url")
    if (
        isinstance(base_url, str)
        and base_url.strip("/")
        and not url.rstrip("/").endswith(base_url.rstrip("/"))
    ):
        url = url.rstrip("/") + "/" + base_url.strip("/") + "/"
    return url


def _root_of(info: dict[str, Any]) -> str | None:
    root = info.get("root_dir") or info.get("notebook_dir")
    return root if isinstance(root, str) and root else None


def _client_of(
    what: str,
    info: dict[str, Any],
    token: str | None,
    workdir: str | Path | None,
    attempts: list[tuple[str, str]],
) -> Client | None:
    url = _server_url(info)
    if url is None:
        attempts.append((what, "its runtime file has no url"))
        return None
    server_token = token or info.get("token") or os.environ.get("JUPYTERHUB_API_TOKEN")
    root_dir = _root_of(info)
    if workdir is None and root_dir is not None:
        workdir = Path(root_dir) / WORKDIR_NAME
    return _probe(f"{what} at {url}", url, server_token or None, workdir, attempts)


def _kernel_server(
    token: str | None, workdir: str | Path | None, attempts: list[tuple[str, str]]
) -> tuple[Client, str, str] | None:
    pid = _parent_pid()
    runtime = _runtime_dir()
    what = f"the Jupyter server of pid {pid} (runtime files in {runtime})"
    info = _runtime_info(runtime, pid)
    if info is None:
        attempts.append((what, f"no jpserver-*.json there with pid {pid}"))
        return None
    client = _client_of(what, info, token, workdir, attempts)
    if client is None:
        return None
    return client, f"the Jupyter server of pid {pid}", ORIGIN_KERNEL


def _runtime_info(runtime: Path, pid: int) -> dict[str, Any] | None:
    named = runtime / f"jpserver-{pid}.json"
    with contextlib.suppress(OSError, ValueError):
        info = json.loads(named.read_text())
        if isinstance(info, dict) and info.get("pid") == pid:
            return info
    for info in _runtime_infos(runtime):
        if info.get("pid") == pid:
            return info
    return None


# -- the folder's server ------------------------------------------------------------------


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_holder(folder: Path) -> int | None:
    """The pid written in the lock of ``folder``'s database, if that process is alive.

    The store writes its pid into ``<database>.lock`` when it takes the lock; the file
    is only read here (taking the lock, even briefly, could make a server fail to start).
    """
    try:
        raw = (folder / WORKDIR_NAME / f"{DATABASE_NAME}.lock").read_text().strip()
        pid = int(raw)
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _same_dir(a: str | Path, b: str | Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _folder_candidates(folder: Path) -> tuple[list[dict[str, Any]], int | None, Path]:
    runtime = _runtime_dir()
    holder = _lock_holder(folder)
    found = []
    for info in _runtime_infos(runtime):
        pid = info.get("pid")
        root = _root_of(info)
        serves = (root is not None and _same_dir(root, folder)) or (
            holder is not None and pid == holder
        )
        if serves and _alive(pid):
            found.append(info)
    found.sort(key=lambda info: info.get("pid") != holder)  # the database's owner first
    return found, holder, runtime


def _folder_server(
    folder: Path,
    token: str | None,
    workdir: str | Path | None,
    attempts: list[tuple[str, str]],
) -> tuple[Client, str, str] | None:
    candidates, holder, runtime = _folder_candidates(folder)
    if not candidates:
        why = f"no live jpserver-*.json in {runtime} with that root_dir"
        if holder is not None:
            why += f"; its database is held by pid {holder}, which has no runtime file there"
        attempts.append((f"a Jupyter server serving {folder}", why))
        return None
    for info in candidates:
        what = f"the Jupyter server of pid {info.get('pid')} serving {folder}"
        client = _client_of(what, info, token, workdir, attempts)
        if client is not None:
            return client, what, ORIGIN_FOLDER
    return None


def folder_server(folder: str | Path | None = None) -> tuple[Client, int] | None:
    """A client for the live Jupyter server with the extension that serves ``folder``
    (default: the current one), and that server's pid; None if there is none."""
    where = Path(folder) if folder is not None else Path.cwd()
    candidates, _, _ = _folder_candidates(where)
    for info in candidates:
        client = _client_of("", info, None, None, [])
        if client is not None:
            return client, int(info["pid"])
    return None


# -- a private server -------------------------------------------------------------------


def _start_private(
    workdir: str | Path | None, server_args: Sequence[str], attempts: list[tuple[str, str]]
) -> tuple[Client, str, str] | None:
    global _private
    server = PrivateServer(server_args=server_args)
    what = f"a private jupyter server on {server.url} (root {server.root_dir})"
    try:
        client = server.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        attempts.append((what, str(exc)))
        server.stop()
        return None
    if workdir is not None:
        client.workdir = Path(workdir)
    _private = server
    return client, what, ORIGIN_PRIVATE
