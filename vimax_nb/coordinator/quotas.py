"""Quotas on what one server takes on: workflows queued or running (per owner and in
all), the pixels one workflow may render, and the disk its workdir may fill.

:class:`Quotas` holds the limits (0 turns one off); the coordinator checks them when a
workflow is submitted and refuses it with a :class:`QuotaExceeded` whose message names
the limit, the figure that broke it and what to do.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..shared import format_bytes

#: Seconds a client refused for too many workflows is told to wait before it asks
#: again (``Retry-After``): how long a workflow still runs cannot be known.
BUSY_RETRY_AFTER = 30


@dataclass(frozen=True, slots=True)
class Quotas:
    """The limits a coordinator enforces when a workflow is submitted; 0 turns one off.

    ``max_active_workflows_per_user`` and ``max_active_workflows`` count workflows
    pending, running or paused (of one owner, of everyone); ``max_workflow_pixels`` is
    what a workflow may render, width x height x frames (see :func:`render_size`);
    ``max_workdir_bytes`` is the size of the workdir past which new workflows are
    refused until finished ones are collected. ``setting`` formats a quota's name
    (``{name}``) as a person configures it, for the error messages.
    """

    max_active_workflows_per_user: int = 0
    max_active_workflows: int = 0
    max_workflow_pixels: int = 0
    max_workdir_bytes: int = 0
    setting: str = "Quotas.{name}"

    def __post_init__(self) -> None:
        for name in (
            "max_active_workflows_per_user",
            "max_active_workflows",
            "max_workflow_pixels",
            "max_workdir_bytes",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (no limit) or more (got {getattr(self, name)})")

    def named(self, name: str) -> str:
        """How a person sets quota ``name`` (``c.VimaxApp.max_active_workflows``)."""
        return self.setting.format(name=name)


class QuotaExceeded(Exception):
    """A workflow was refused because it would break a quota.

    ``quota`` is the setting that limits it, ``limit`` its value and ``figure`` what the
    workflow would have made it; the message says all three and what to do.
    ``retry_after`` (seconds) is set when asking again later may succeed on its own.
    """

    retry_after: int | None = None

    def __init__(self, message: str, *, quota: str, limit: int, figure: int) -> None:
        super().__init__(message)
        self.quota = quota
        self.limit = limit
        self.figure = figure


class TooManyWorkflows(QuotaExceeded):
    """The owner, or the server, has as many workflows queued or running as allowed:
    one of them has to end (or be canceled) first."""

    retry_after = BUSY_RETRY_AFTER


class WorkflowTooLarge(QuotaExceeded):
    """The workflow would render more pixels than one workflow may."""


class DiskQuotaExceeded(QuotaExceeded):
    """The workdir holds more bytes than allowed: finished workflows have to be
    collected (``vimax-nb gc``) before new ones start."""


@dataclass(frozen=True, slots=True)
class RenderSize:
    """What a workflow renders: ``frames`` frames of ``width`` x ``height``."""

    width: int
    height: int
    frames: int

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.frames


def render_size(params: Mapping[str, Any]) -> RenderSize | None:
    """What a workflow with these validated parameters renders: ``scenes`` (1 if not
    given) x ``shots_per_scene`` shots of ``round(fps x seconds_per_shot)`` frames (at
    least one) each, as the renderer makes them; None for a kind of workflow without
    ``width``, ``height``, ``fps``, ``seconds_per_shot`` and ``shots_per_scene``."""
    try:
        width, height = int(params["width"]), int(params["height"])
        per_shot = max(1, round(float(params["fps"]) * float(params["seconds_per_shot"])))
        shots = int(params["shots_per_scene"]) * max(1, int(params.get("scenes") or 1))
    except (KeyError, TypeError, ValueError):
        return None
    return RenderSize(width, height, per_shot * shots)


def check_render_size(quotas: Quotas, params: Mapping[str, Any]) -> None:
    """Raise :class:`WorkflowTooLarge` when a workflow with ``params`` would render more
    than ``quotas.max_workflow_pixels``."""
    limit = quotas.max_workflow_pixels
    size = render_size(params)
    if not limit or size is None or size.pixels <= limit:
        return
    name = quotas.named("max_workflow_pixels")
    raise WorkflowTooLarge(
        f"this workflow would render {size.frames:,} frames of {size.width}x{size.height}: "
        f"{size.pixels:,} pixels ({_frames_of(size.pixels, 1920 * 1080)} 1080p frames), over "
        f"the {limit:,} a workflow may render ({_frames_of(limit, 1920 * 1080)} 1080p frames; "
        f"{name}). Ask for fewer scenes, shots, seconds per shot, frames per second or a "
        f"smaller size, or raise {name}",
        quota=name,
        limit=limit,
        figure=size.pixels,
    )


def _frames_of(pixels: int, frame: int) -> str:
    return f"{pixels // frame:,}"


def check_active(quotas: Quotas, owner: str | None, of_owner: int, in_all: int) -> None:
    """Raise :class:`TooManyWorkflows` when one more workflow of ``owner`` (who has
    ``of_owner`` pending, running or paused, of ``in_all`` on the server) would break a
    quota."""
    per_user = quotas.max_active_workflows_per_user
    if per_user and of_owner >= per_user:
        name = quotas.named("max_active_workflows_per_user")
        who = f"{owner!r} has" if owner is not None else "workflows without an owner have"
        raise TooManyWorkflows(
            f"too many workflows: {who} {of_owner} queued, running or paused, the most one "
            f"user may have ({name} = {per_user}). Wait for one to end, cancel one, or "
            f"raise {name}",
            quota=name,
            limit=per_user,
            figure=of_owner + 1,
        )
    total = quotas.max_active_workflows
    if total and in_all >= total:
        name = quotas.named("max_active_workflows")
        raise TooManyWorkflows(
            f"too many workflows: the server has {in_all} queued, running or paused, the "
            f"most it takes ({name} = {total}). Try again when one has ended, or raise "
            f"{name}",
            quota=name,
            limit=total,
            figure=in_all + 1,
        )


class DiskUsage:
    """The bytes of the files under a folder, counted on a thread; concurrent callers
    share one count (a burst of submissions walks the folder once)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._counting: asyncio.Future[int] | None = None

    async def bytes(self) -> int:
        """The size of every file under the folder (symbolic links not followed), as
        counted by a walk that began no earlier than this call or joined one under way."""
        if self._counting is None:
            self._counting = asyncio.ensure_future(asyncio.to_thread(folder_bytes, self.folder))
            self._counting.add_done_callback(self._forget)
        return await asyncio.shield(self._counting)

    def _forget(self, done: asyncio.Future[int]) -> None:
        if self._counting is done:
            self._counting = None


async def check_disk(quotas: Quotas, usage: DiskUsage | None) -> None:
    """Raise :class:`DiskQuotaExceeded` when the workdir holds ``quotas.max_workdir_bytes``
    or more."""
    limit = quotas.max_workdir_bytes
    if not limit or usage is None:
        return
    used = await usage.bytes()
    if used < limit:
        return
    name = quotas.named("max_workdir_bytes")
    raise DiskQuotaExceeded(
        f"the workdir {usage.folder} holds {format_bytes(used)} ({used:,} bytes), at or over "
        f"its quota of {format_bytes(limit)} ({name}); no new workflow starts until some are "
        f"removed. Run `vimax-nb gc` (or POST /vimax/api/gc) to remove finished workflows "
        f"and their files, or raise {name}",
        quota=name,
        limit=limit,
        figure=used,
    )


def folder_bytes(folder: Path) -> int:
    """The size of every regular file under ``folder`` (0 if it does not exist); symbolic
    links are not followed, and files that vanish while counted are skipped."""
    total = 0
    stack = [os.fspath(folder)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    return total
