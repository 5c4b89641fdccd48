"""A content-addressed cache of hosted models' results, shared by every workflow.

A result is keyed by what determines it: the role, provider and model, the prompt (or
the chat task, its instructions, inputs and answer schema), the bytes of every
reference image, the output's size and length, and the workflow's seed. So a re-run of
a workflow with one changed shot pays for that shot only, and a new seed asks for new
takes. :func:`with_cache` wraps a model so that it answers from the cache when it can;
an answer from the cache is reported as a :class:`~vimax_nb.providers.base.Usage` with
``cached=True`` (nothing paid).

Entries are files under ``<folder>/<2 hex>/<sha256>.<json|png|mp4>``, written whole or
not at all; a cache may be deleted at any time.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from .base import (
    ChatModel,
    ChatRequest,
    ImageModel,
    ImageOutput,
    M,
    PathLike,
    ProviderCall,
    Role,
    Usage,
    VideoModel,
    VideoRequest,
)

__all__ = ["CachedChatModel", "CachedImageModel", "CachedVideoModel", "ResultCache", "with_cache"]


class ResultCache:
    """Files by key in ``folder``; safe to share between threads and processes."""

    def __init__(self, folder: PathLike) -> None:
        self.folder = Path(folder)

    @staticmethod
    def key(**parts: Any) -> str:
        """The sha256 of ``parts`` as canonical JSON."""
        text = json.dumps(to_jsonable_python(parts), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def path(self, key: str, suffix: str) -> Path:
        """Where the entry ``key`` is (or would be) kept."""
        return self.folder / key[:2] / f"{key}{suffix}"

    def read(self, key: str, suffix: str) -> bytes | None:
        """The entry's bytes, or None if there is none."""
        try:
            return self.path(key, suffix).read_bytes()
        except OSError:
            return None

    def write(self, key: str, suffix: str, data: bytes) -> None:
        """Keep ``data`` as the entry ``key``; a reader never sees part of it."""
        target = self.path(key, suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.part")
        partial.write_bytes(data)
        os.replace(partial, target)


def file_digests(paths: Sequence[PathLike]) -> list[str]:
    """The sha256 of each file's bytes ("missing" for a file that cannot be read, so the
    provider reports the problem and nothing is cached under a wrong key)."""
    digests = []
    for path in paths:
        try:
            digests.append(hashlib.sha256(Path(path).read_bytes()).hexdigest())
        except OSError:
            digests.append("missing")
    return digests


def _hit(inner: Any, role: Role, call: ProviderCall | None) -> None:
    if call is not None:
        call.record(Usage(inner.provider, inner.model, role, cached=True))


class _Cached:
    def __init__(self, inner: Any, cache: ResultCache) -> None:
        self.inner = inner
        self.cache = cache
        self.provider: str = inner.provider
        self.model: str = inner.model

    def probe(self) -> None:
        self.inner.probe()


class CachedChatModel(_Cached):
    """A :class:`ChatModel` that answers from the cache when the same question was asked."""

    inner: ChatModel

    def complete(self, request: ChatRequest[M], call: ProviderCall | None = None) -> M:
        key = self.cache.key(
            role="chat",
            provider=self.provider,
            model=self.model,
            task=request.task,
            instructions=request.instructions,
            inputs=request.inputs,
            schema=request.response_model.model_json_schema(),
            seed=request.seed,
        )
        stored = self.cache.read(key, ".json")
        if stored is not None:
            try:
                answer = request.response_model.model_validate_json(stored)
            except ValidationError:
                pass  # an entry from an older answer shape: ask again and replace it
            else:
                _hit(self, "chat", call)
                return answer
        answer = self.inner.complete(request, call)
        self.cache.write(key, ".json", answer.model_dump_json().encode())
        return answer


class CachedImageModel(_Cached):
    """An :class:`ImageModel` that answers from the cache for the same prompt, references,
    size and seed."""

    inner: ImageModel

    def generate_single_image(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike] = (),
        size: str = "640x360",
        call: ProviderCall | None = None,
    ) -> ImageOutput:
        from PIL import Image, UnidentifiedImageError

        key = self.cache.key(
            role="image",
            provider=self.provider,
            model=self.model,
            prompt=prompt,
            references=file_digests(reference_image_paths),
            size=size,
            seed=call.seed if call is not None else 0,
        )
        stored = self.cache.read(key, ".png")
        if stored is not None:
            try:
                image = Image.open(io.BytesIO(stored))
                image.load()
            except (OSError, UnidentifiedImageError):
                pass  # a damaged entry: generate again and replace it
            else:
                _hit(self, "image", call)
                return ImageOutput(image)
        output = self.inner.generate_single_image(prompt, reference_image_paths, size, call)
        buffer = io.BytesIO()
        output.image.save(buffer, format="PNG")
        self.cache.write(key, ".png", buffer.getvalue())
        return output


class CachedVideoModel(_Cached):
    """A :class:`VideoModel` that answers from the cache for the same prompt, frames,
    size, rate, length and seed."""

    inner: VideoModel

    def generate_single_video(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike],
        request: VideoRequest,
        call: ProviderCall | None = None,
    ) -> Path:
        key = self.cache.key(
            role="video",
            provider=self.provider,
            model=self.model,
            prompt=prompt,
            references=file_digests(reference_image_paths),
            size=request.size,
            fps=request.fps,
            duration=request.duration,
            seed=call.seed if call is not None else 0,
        )
        stored = self.cache.path(key, ".mp4")
        output = Path(request.output_path)
        if stored.is_file():
            output.parent.mkdir(parents=True, exist_ok=True)
            partial = output.with_name(output.name + ".part")
            shutil.copyfile(stored, partial)
            os.replace(partial, output)
            _hit(self, "video", call)
            return output
        result = self.inner.generate_single_video(prompt, reference_image_paths, request, call)
        self.cache.write(key, ".mp4", Path(result).read_bytes())
        return result


def with_cache(model: Any, role: Role, cache: ResultCache) -> Any:
    """``model`` answering from ``cache`` for ``role``."""
    wrapper = {"chat": CachedChatModel, "image": CachedImageModel, "video": CachedVideoModel}
    return wrapper[role](model, cache)
