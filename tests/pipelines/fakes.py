"""Providers that wrap the procedural ones to count, fail or hold calls."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from vimax_nb.coordinator import Coordinator, RetryPolicy
from vimax_nb.pipelines import register_vimax
from vimax_nb.providers import (
    ChatRequest,
    ImageOutput,
    ProviderCatalog,
    Providers,
    Usage,
    VideoRequest,
    make_providers,
)
from vimax_nb.providers.base import PathLike, ProviderCall, ProviderError
from vimax_nb.providers.prices import ModelPrices, PriceTable
from vimax_nb.shared import TaskCanceled
from vimax_nb.store import Store

from ..coordinator.toy import Recorder

SMALL = {"width": 160, "height": 96, "fps": 6, "seconds_per_shot": 1.0, "shots_per_scene": 3}


class Wrapped:
    """Procedural providers whose calls are counted, and may fail or wait first.

    ``fail(role, call_number)`` returns an exception to raise instead of calling.
    ``gate``, when set for a role, holds that role's calls until it is opened
    (a canceled task stops waiting).
    """

    provider = "procedural"
    model = "wrapped-procedural"

    def __init__(self, fail: Callable[[str, int], Exception | None] | None = None) -> None:
        self.inner = make_providers()
        self.calls: Counter[str] = Counter()
        self.fail = fail
        self.gates: dict[str, threading.Event] = {}
        self.waiting: dict[str, threading.Semaphore] = {}
        self._lock = threading.Lock()

    def hold(self, role: str) -> tuple[threading.Event, threading.Semaphore]:
        """Make ``role``'s calls wait; returns the gate to open and a semaphore released
        each time a call starts waiting."""
        self.gates[role] = threading.Event()
        self.waiting[role] = threading.Semaphore(0)
        return self.gates[role], self.waiting[role]

    def _enter(self, role: str, token: Any = None) -> None:
        with self._lock:
            self.calls[role] += 1
            number = self.calls[role]
        gate = self.gates.get(role)
        if gate is not None:
            self.waiting[role].release()
            while not gate.wait(0.02):
                if token is not None and token.cancelled:
                    raise TaskCanceled("canceled while held")
        if self.fail is not None and (error := self.fail(role, number)) is not None:
            raise error

    def probe(self) -> None:
        pass

    def complete(self, request: ChatRequest[Any], call: ProviderCall | None = None) -> Any:
        self._enter("chat")
        return self.inner.chat.complete(request, call)

    def generate_single_image(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike] = (),
        size: str = "640x360",
        call: ProviderCall | None = None,
    ) -> ImageOutput:
        self._enter("image")
        return self.inner.image.generate_single_image(prompt, reference_image_paths, size, call)

    def generate_single_video(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike],
        request: VideoRequest,
        call: ProviderCall | None = None,
    ) -> Path:
        self._enter("video", call.cancel_token if call is not None else None)
        return self.inner.video.generate_single_video(prompt, reference_image_paths, request, call)

    def providers(self) -> Providers:
        return Providers(chat=self, image=self, video=self)


def flaky(rate: float, seed: int = 7) -> Callable[[str, int], Exception | None]:
    """Fail about ``rate`` of the calls with a retryable error, the same calls each run."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def fail(role: str, number: int) -> Exception | None:
        with lock:
            unlucky = rng.random() < rate
        return ProviderError(f"{role} busy (call {number})", retryable=True) if unlucky else None

    return fail


class Billed:
    """One role of a pretend hosted service over :class:`Wrapped`: every call asks the
    budget first (``authorize``) and reports its usage after, like the real providers.
    The video model also keeps a remote job: it remembers ``job-<n>`` before it renders
    (``video_gate``, when set, holds it there), polls a remembered job instead of
    starting one, says what it waits on, and forgets the job once the clip is written."""

    provider = "billed"

    def __init__(self, wrapped: Wrapped, role: str) -> None:
        self.wrapped = wrapped
        self.role = role
        self.model = f"billed-{role}"
        self.jobs_started: list[str] = []
        self.jobs_resumed: list[str] = []
        self.video_gate: threading.Event | None = None

    def probe(self) -> None:
        pass

    def _usage(self, **units: Any) -> Usage:
        return Usage(self.provider, self.model, self.role, **units)  # type: ignore[arg-type]

    def complete(self, request: ChatRequest[Any], call: ProviderCall | None = None) -> Any:
        assert call is not None
        call.authorize(self._usage(input_tokens=1000))
        answer = self.wrapped.complete(request, call)
        call.record(self._usage(input_tokens=1000, output_tokens=500))
        return answer

    def generate_single_image(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike] = (),
        size: str = "640x360",
        call: ProviderCall | None = None,
    ) -> ImageOutput:
        assert call is not None
        call.authorize(self._usage(images=1))
        image = self.wrapped.generate_single_image(prompt, reference_image_paths, size, call)
        call.record(self._usage(images=1))
        return image

    def generate_single_video(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike],
        request: VideoRequest,
        call: ProviderCall | None = None,
    ) -> Path:
        assert call is not None
        job = call.recall_job()
        if job is None:
            call.authorize(self._usage(video_seconds=request.duration))
            job = f"job-{len(self.jobs_started) + len(self.jobs_resumed)}-{request.output_path}"
            call.remember_job(job)
            self.jobs_started.append(job)
        else:
            self.jobs_resumed.append(job)
        call.report(f"waiting on {self.model} (0 s)")
        if self.video_gate is not None:
            while not self.video_gate.wait(0.02):
                call.raise_if_cancelled()
        path = self.wrapped.generate_single_video(
            prompt, reference_image_paths, request, ProviderCall(cancel_token=call.cancel_token)
        )
        call.record(self._usage(video_seconds=request.duration))
        call.remember_job(None)
        return path


def billed(wrapped: Wrapped) -> Providers:
    """The three roles of the pretend hosted service over ``wrapped``."""
    return Providers(*(Billed(wrapped, role) for role in ("chat", "image", "video")))


#: Prices of the billed models: $0.01 a chat answer, $0.10 an image, $1 a second of video.
BILLED_PRICES = PriceTable(
    {
        "billed-chat": ModelPrices(input_tokens=5.0, output_tokens=10.0),
        "billed-image": ModelPrices(image=0.10),
        "billed-video": ModelPrices(video_second=1.0),
    }
)


@asynccontextmanager
async def vimax(
    workdir: Path,
    wrapped: Wrapped | ProviderCatalog | None = None,
    *,
    max_cost: float | None = None,
    **options: Any,
) -> AsyncIterator[tuple[Coordinator, Recorder]]:
    """A started coordinator with the ViMax agents and pipelines, storing in ``workdir``;
    its providers are ``wrapped``'s, or a catalog's."""
    store = await Store.open(workdir / "vimax.sqlite3")
    options.setdefault("retry", RetryPolicy(max_attempts=3, backoff=0.0))
    coordinator = Coordinator(store=store, workdir=workdir, **options)
    providers = wrapped.providers() if isinstance(wrapped, Wrapped) else wrapped
    register_vimax(coordinator, providers, max_cost=max_cost)
    recorder = Recorder(coordinator)
    await coordinator.start()
    try:
        yield coordinator, recorder
    finally:
        await coordinator.stop()
        await store.close()
