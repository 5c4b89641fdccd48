"""``GET /vimax/api/workflows/{id}/artifacts/{path}``: the files a workflow wrote."""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import stat
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from tornado.iostream import StreamClosedError

from .base import ApiError, VimaxHandler, api

CHUNK_SIZE = 256 * 1024

# Content types served for artifacts. Anything else is sent as an opaque download:
# never as HTML, SVG or JavaScript, which a browser would run on the server's origin.
CONTENT_TYPES: dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".srt": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
}
OPAQUE = "application/octet-stream"
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
# A Range position of more digits is past the end of any file (and cheap to read).
_MAX_POSITION_DIGITS = 18


def _position(digits: str) -> int:
    """A byte position of a Range header, capped past the end of any file."""
    return int(digits) if len(digits) <= _MAX_POSITION_DIGITS else 10**_MAX_POSITION_DIGITS


class ArtifactHandler(VimaxHandler):
    """``GET /vimax/api/workflows/{id}/artifacts/{path}``: a file of the workflow's folder.

    Only regular files inside ``<workdir>/<id>/`` are served, after resolving
    symlinks; big files are streamed in chunks; a single byte range is honoured.
    """

    def compute_etag(self) -> str | None:
        return None  # streamed: tornado's hash of the last chunk would be wrong

    @api
    async def get(self, workflow_id: str, path: str) -> None:
        await self.workflow_or_404(workflow_id)
        service = await self.service()
        target = self._resolve(Path(service.workdir), workflow_id, path)
        try:
            fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            raise self._missing(workflow_id, path) from None
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise self._missing(workflow_id, path)
            size = info.st_size
            start, end = self._range(size)
            content_type = CONTENT_TYPES.get(target.suffix.lower(), OPAQUE)
            if content_type == OPAQUE:
                # other media by their usual type, but never SVG (it can carry scripts)
                guessed = mimetypes.guess_type(target.name)[0] or OPAQUE
                if guessed.split("/")[0] in ("image", "video", "audio"):
                    content_type = OPAQUE if guessed == "image/svg+xml" else guessed
            if content_type == OPAQUE:
                self.set_header(
                    "Content-Disposition",
                    f"attachment; filename*=UTF-8''{quote(target.name, safe='')}",
                )
            self.set_header("Content-Type", content_type)
            self.set_header("X-Content-Type-Options", "nosniff")
            self.set_header("Accept-Ranges", "bytes")
            self.set_header("Cache-Control", "no-cache")
            self.set_header("Content-Length", str(end - start))
            if (start, end) != (0, size):
                self.set_status(206)
                self.set_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            file.seek(start)
            remaining = end - start
            while remaining > 0:
                chunk = await asyncio.to_thread(file.read, min(CHUNK_SIZE, remaining))
                if not chunk:  # the file shrank while being sent
                    break
                remaining -= len(chunk)
                self.write(chunk)
                try:
                    await self.flush()
                except StreamClosedError:  # the client went away
                    return
        self.finish(set_content_type=content_type)

    def _range(self, size: int) -> tuple[int, int]:
        """The [start, end) bytes to send: all of them, or the one range asked for."""
        header = self.request.headers.get("Range")
        if not header:
            return 0, size
        match = _RANGE.match(header.strip())
        if match is None:  # several ranges or another unit: send it all
            return 0, size
        first, last = match.groups()
        if first:
            start = _position(first)
            end = min(_position(last) + 1, size) if last else size
        elif last:
            start, end = max(size - _position(last), 0), size
        else:
            return 0, size
        if start >= size or start >= end:
            shown = header if len(header) <= 60 else header[:57] + "..."
            raise ApiError(
                416,
                f"the range {shown!r} is outside the file ({size} bytes)",
                headers={"Content-Range": f"bytes */{size}"},
            )
        return start, end

    @staticmethod
    def _missing(workflow_id: str, path: str) -> ApiError:
        return ApiError(
            404,
            f"workflow {workflow_id} has no artifact {path!r}; the workflow's artifact events "
            "give each artifact's URL",
        )

    def _resolve(self, workdir: Path, workflow_id: str, path: str) -> Path:
        """The real path of ``path`` inside the workflow's folder, or a 400/404."""
        pure = PurePosixPath(path)
        if (
            not path
            or "\x00" in path
            or "\\" in path
            or pure.is_absolute()
            or any(part in ("..", ".") for part in path.split("/"))
        ):
            raise ApiError(
                400,
                f"invalid artifact path {path!r}: use a path relative to the workflow's folder, "
                "such as final_video.mp4 or shots/0/first_frame.png",
            )
        root = workdir.resolve()
        folder = (root / workflow_id).resolve()
        if folder.parent != root:
            raise self._missing(workflow_id, path)
        try:
            target = (folder / pure).resolve(strict=True)
        except (OSError, RuntimeError):
            raise self._missing(workflow_id, path) from None
        if not target.is_relative_to(folder) or target == folder or not target.is_file():
            raise self._missing(workflow_id, path)
        return target
