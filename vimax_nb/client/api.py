""":class:`Client`: a server's REST reads and one shared WebSocket.

A :class:`Client` talks REST with the standard library and follows workflows through
one lazily started :class:`~vimax_nb.client.connection.ClientConnection`. What it reads
is parsed with the protocol's models (:mod:`vimax_nb.protocol`): workflow and agent
records, the coordinator's metrics, events. A :class:`Run` (:mod:`vimax_nb.client.run`)
is a live view of one workflow, updated on the connection's thread from its room's
events.

REST calls block the calling thread: from a coroutine running on the loop that also
serves the Jupyter server, call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ..protocol import (
    AgentRecord,
    Collection,
    CoordinatorMetricsEvent,
    Event,
    ProviderStatus,
    WorkflowRecord,
)
from .connection import ClientConnection
from .errors import VimaxError
from .reconnecting import SocketOptions
from .run import Run

__all__ = ["Client", "EventPage", "WorkflowPage"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
EVENTS_PAGE = 10_000  # the most events the server returns in one answer
WORKFLOWS_PAGE = 1000  # the most workflows the server returns in one answer

_EVENT: TypeAdapter[Event] = TypeAdapter(Event)


@dataclass(frozen=True)
class EventPage:
    """Events of a workflow read from the durable log.

    ``events`` are the events' models (each with ``seq``), in order, as a subscription
    to the room gets them (one of a type this client does not know is left out);
    ``top`` is the room's last seq, ``floor`` the last seq the log no longer keeps (0:
    nothing dropped) and ``epoch`` the log's epoch.
    """

    workflow_id: str
    epoch: str
    top: int
    floor: int
    events: list[Event]


@dataclass(frozen=True)
class WorkflowPage:
    """A page of the server's workflows, newest first.

    ``next`` is the cursor to pass as ``before`` for the page after it (None: this is
    the last page); ``total`` is how many workflows the server lists in all.
    """

    workflows: list[WorkflowRecord]
    next: str | None
    total: int


class Client:
    """A vimax-nb server at ``url`` (``http(s)://host:port/base_url/``) with ``token``.

    ``workdir`` is the server's workflow folder when it is on this machine (its files are
    then given as local paths); without it results are artifact URLs. ``socket_options``
    say how its WebSocket reconnects (:class:`~vimax_nb.client.reconnecting.SocketOptions`;
    the defaults without).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        workdir: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        socket_options: SocketOptions | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/"
        self.socket_options = socket_options
        self.token = token or None
        self.workdir = Path(workdir) if workdir is not None else None
        self.timeout = timeout
        self._lock = threading.Lock()
        self._connection: ClientConnection | None = None
        self._runs: dict[str, Run] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # -- REST ------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bool = False,
        timeout: float | None = None,
    ) -> Any:
        url = urllib.parse.urljoin(self.url, path.lstrip("/"))
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        if self.token:
            request.add_header("Authorization", f"token {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                content: bytes = response.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            try:
                payload = json.loads(text)
            except ValueError:
                payload = None
            message = (
                str(payload["message"])
                if isinstance(payload, dict) and "message" in payload
                else (text.strip() or str(exc.reason))
            )
            raise VimaxError(exc.code, message, payload) from None
        if raw:
            return content
        return json.loads(content) if content else None

    def submit(self, kind: str, *, priority: int = 0, **params: Any) -> Run:
        """Start a ``kind`` workflow with ``params``; its live :class:`Run`.

        ``priority`` (-10 to 10, higher first) puts its tasks ahead of those of
        lower-priority workflows on the server; the server refuses (:class:`VimaxError`,
        400) any other value. The default 0 is not sent, so any server accepts it.
        """
        body: dict[str, Any] = {"kind": kind, "params": params}
        if priority != 0:
            body["priority"] = priority
        data = self._request("POST", "vimax/api/workflows", body)
        return self._attach(WorkflowRecord.model_validate(data))

    def idea2video(self, idea: str, *, priority: int = 0, **params: Any) -> Run:
        """Make a video from an idea (``priority``: see :meth:`submit`)."""
        return self.submit("idea2video", priority=priority, idea=idea, **params)

    def script2video(self, script: str, *, priority: int = 0, **params: Any) -> Run:
        """Make a video from a script (``priority``: see :meth:`submit`)."""
        return self.submit("script2video", priority=priority, script=script, **params)

    def workflows(self, limit: int | None = None) -> list[WorkflowRecord]:
        """The workflows the server knows (those this user may see), past and running,
        newest first: all of them, read a page at a time, or the newest ``limit``."""
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1 (got {limit})")
        records: list[WorkflowRecord] = []
        before: str | None = None
        while limit is None or len(records) < limit:
            want = WORKFLOWS_PAGE if limit is None else min(WORKFLOWS_PAGE, limit - len(records))
            page = self.workflow_page(want, before)
            records.extend(page.workflows)
            if page.next is None or not page.workflows:
                break
            before = page.next
        return records

    def workflow_page(self, limit: int | None = None, before: str | None = None) -> WorkflowPage:
        """One page of the workflows, newest first: up to ``limit`` (default: the
        server's, 100) of those after the cursor ``before`` (a page's ``next``; None:
        from the newest). A server that does not page its list answers all of them."""
        query = {}
        if limit is not None:
            query["limit"] = str(limit)
        if before is not None:
            query["before"] = before
        path = "vimax/api/workflows"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        data = self._request("GET", path)
        records = [WorkflowRecord.model_validate(w) for w in data["workflows"]]
        cursor = data.get("next")
        total = data.get("total")
        return WorkflowPage(
            records,
            str(cursor) if cursor is not None else None,
            int(total) if total is not None else len(records),
        )

    def gc(self, older_than: float | None = None, *, dry_run: bool = False) -> Collection:
        """Remove the server's finished workflows (completed, failed or canceled; of
        this user, when the server keeps users apart) that ended more than
        ``older_than`` seconds ago (None: the server's ``retention_days``), with their
        files. ``dry_run``: remove nothing, say what would go and the bytes freed."""
        body: dict[str, Any] = {"dry_run": dry_run}
        if older_than is not None:
            body["older_than"] = older_than
        data = self._request("POST", "vimax/api/gc", body, timeout=max(self.timeout, 300))
        return Collection.model_validate(data)

    def workflow(self, workflow_id: str) -> WorkflowRecord:
        """One workflow's record now."""
        data = self._request("GET", f"vimax/api/workflows/{_quote(workflow_id)}")
        return WorkflowRecord.model_validate(data)

    def events(self, workflow_id: str, after: int = 0, limit: int | None = None) -> EventPage:
        """The workflow's stored events with seq > ``after``, in order, from the durable log.

        All of them the log keeps (fetched a page at a time), or the first ``limit``.
        The page's ``epoch`` is the one a WebSocket subscription's seqs come from.
        """
        if after < 0 or (limit is not None and limit < 1):
            raise ValueError(f"after must be >= 0 and limit >= 1 (got {after}, {limit})")
        path = f"vimax/api/workflows/{_quote(workflow_id)}/events"
        events: list[Event] = []
        read = 0
        while True:
            want = EVENTS_PAGE if limit is None else min(EVENTS_PAGE, limit - read)
            page = self._request("GET", f"{path}?after={after}&limit={want}")
            read += len(page["events"])
            events.extend(_events(page["events"]))
            if not page["events"] or read == limit or page["events"][-1]["seq"] >= page["top"]:
                return EventPage(
                    workflow_id, str(page["epoch"]), int(page["top"]), int(page["floor"]), events
                )
            after = int(page["events"][-1]["seq"])

    def run(self, workflow_id: str) -> Run:
        """A live :class:`Run` of an existing workflow (the same one each call)."""
        with self._lock:
            existing = self._runs.get(workflow_id)
        if existing is not None:
            return existing
        return self._attach(self.workflow(workflow_id))

    def agents(self) -> list[AgentRecord]:
        """The coordinator's agents, each with its status and metrics."""
        data = self._request("GET", "vimax/api/agents")
        return [AgentRecord.model_validate(a) for a in data["agents"]]

    def providers(self) -> list[ProviderStatus]:
        """Every provider the server has configured, per role (chat, image, video), each
        with its model, whether it is ready (and if not, the problem) and whether it is
        the role's default. ``procedural`` is always there and ready."""
        data = self._request("GET", "vimax/api/providers")
        return [ProviderStatus.model_validate(p) for p in data["providers"]]

    def coordinator(self, *, timeout: float | None = None) -> CoordinatorMetricsEvent:
        """The coordinator's metrics now (without ``room``, ``seq`` and ``timestamp``)."""
        data = self._request("GET", "vimax/api/coordinator", timeout=timeout)
        return CoordinatorMetricsEvent.model_validate(data)

    def download(self, workflow_id: str, path: str, dest: str | Path) -> Path:
        """Save artifact ``path`` of a workflow to ``dest`` (a file, or a folder to put it in)."""
        content = self._request(
            "GET", self.artifact_path(workflow_id, path), raw=True, timeout=max(self.timeout, 120)
        )
        target = Path(dest)
        if target.is_dir():
            target = target / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        return target

    @staticmethod
    def artifact_path(workflow_id: str, path: str) -> str:
        return f"vimax/api/workflows/{_quote(workflow_id)}/artifacts/{_quote(path, '/')}"

    def artifact(self, workflow_id: str, path: str) -> Path | str:
        """Artifact ``path``: a local Path when the workdir has it, else its URL."""
        if self.workdir is not None:
            local = self.workdir / workflow_id / path
            if local.is_file():
                return local
        return urllib.parse.urljoin(self.url, self.artifact_path(workflow_id, path))

    # -- WebSocket ---------------------------------------------------------------------

    @property
    def connection(self) -> ClientConnection:
        """The shared :class:`~vimax_nb.client.connection.ClientConnection` (made on first
        use, started by its first subscription or request); ConnectionError once closed."""
        with self._lock:
            if self._closed:
                raise ConnectionError("the client is closed")
            if self._connection is None:
                self._connection = ClientConnection(self.url, self.token, self.socket_options)
            return self._connection

    def _attach(self, record: WorkflowRecord) -> Run:
        with self._lock:
            existing = self._runs.get(record.id)
            if existing is not None:
                return existing
            run = Run(self, record)
            self._runs[record.id] = run
        run._follow()
        return run

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Stop following runs and close the WebSocket (idempotent).

        Every thread blocked in :meth:`Run.wait` (or ``await run``) of this client's runs
        wakes: it raises ConnectionError, unless its workflow had already ended.
        """
        with self._lock:
            self._closed = True
            connection, self._connection = self._connection, None
            runs = list(self._runs.values())
        for run in runs:
            run._close()
        if connection is not None:
            connection.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quote(text: str, safe: str = "") -> str:
    return urllib.parse.quote(text, safe=safe)


def _events(data: list[Any]) -> list[Event]:
    """The events of a page of the log as models; one that is not valid (or of a type
    this client does not know) is logged and left out."""
    events = []
    for item in data:
        try:
            events.append(_EVENT.validate_python(item))
        except ValidationError as exc:
            log.warning("vimax client: skipped a stored event %.200r: %s", item, exc)
    return events
