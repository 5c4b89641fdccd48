"""Wall time of the default Idea2Video run, and how much of it is spent outside the providers.

The default run is 1 scene of 4 shots at 640x360, 12 fps, 2 s a shot, with the offline
procedural providers, a durable store and every event appended to the event log (as
the server does). "Media work" is the wall time during which a provider call (chat,
image, video) or the editor's concatenation ran; "outside" is the rest: coordination,
storage, events and file writes.

    python benchmarks/pipeline.py [--repeat 3] [--shots 4] [--scenes 1]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vimax_nb.coordinator import Coordinator
from vimax_nb.pipelines import agents, register_vimax
from vimax_nb.protocol import COORDINATOR_ROOM, event_payload
from vimax_nb.providers import (
    ChatRequest,
    ImageOutput,
    Providers,
    VideoRequest,
    make_providers,
)
from vimax_nb.store import Store

TARGET_SECONDS = 20.0


class TimedProviders:
    """Procedural providers that record when each call ran."""

    provider = "procedural"
    model = "timed-procedural"

    def __init__(self) -> None:
        self.inner = make_providers()
        self.intervals: list[tuple[float, float]] = []
        self.per_role: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def _timed(self, role: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            end = time.perf_counter()
            with self._lock:
                self.intervals.append((start, end))
                self.per_role[role] += end - start
                self.calls[role] += 1

    def probe(self) -> None:
        pass

    def complete(self, request: ChatRequest[Any], call: Any = None) -> Any:
        return self._timed("chat", self.inner.chat.complete, request, call)

    def generate_single_image(
        self,
        prompt: str,
        reference_image_paths: Sequence[Any] = (),
        size: str = "640x360",
        call: Any = None,
    ) -> ImageOutput:
        fn = self.inner.image.generate_single_image
        result: ImageOutput = self._timed("image", fn, prompt, reference_image_paths, size, call)
        return result

    def generate_single_video(
        self,
        prompt: str,
        reference_image_paths: Sequence[Any],
        request: VideoRequest,
        call: Any = None,
    ) -> Path:
        fn = self.inner.video.generate_single_video
        result: Path = self._timed("video", fn, prompt, reference_image_paths, request, call)
        return result

    def busy_seconds(self) -> float:
        """Wall time during which at least one provider call ran."""
        total, end = 0.0, float("-inf")
        for start, stop in sorted(self.intervals):
            if stop <= end:
                continue
            total += stop - max(start, end)
            end = stop
        return total


async def run_once(shots: int, scenes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        store = await Store.open(workdir / "vimax.sqlite3")
        coordinator = Coordinator(store=store, workdir=workdir)
        timed = TimedProviders()
        register_vimax(coordinator, Providers(chat=timed, image=timed, video=timed))
        concatenate = agents.concatenate_videos

        def timed_concatenate(*args: Any, **kwargs: Any) -> Any:
            return timed._timed("editing", concatenate, *args, **kwargs)

        agents.concatenate_videos = timed_concatenate  # type: ignore[assignment]
        events = [0]

        def log(event: Any) -> None:
            events[0] += 1
            store.events.append_nowait(
                event.room or COORDINATOR_ROOM, event.type, event_payload(event)
            )

        coordinator.add_listener(log)
        await coordinator.start()
        started = time.perf_counter()
        params = {"idea": "A lighthouse keeper befriends a whale", "style": "watercolor"}
        record = await coordinator.submit(
            "idea2video", {**params, "shots_per_scene": shots, "scenes": scenes}
        )
        done = await coordinator.wait(record.id)
        await store.events.flush()
        wall = time.perf_counter() - started
        await coordinator.stop()
        await store.close()
        agents.concatenate_videos = concatenate  # type: ignore[assignment]
        if done.state != "completed":
            raise SystemExit(f"the run ended {done.state}: {done.message}")
        busy = timed.busy_seconds()
        return {
            "wall": wall,
            "busy": busy,
            "outside": wall - busy,
            "roles": dict(timed.per_role),
            "calls": dict(timed.calls),
            "events": events[0],
            "frames": (done.result or {}).get("frames"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs; the fastest is reported")
    parser.add_argument("--shots", type=int, default=4)
    parser.add_argument("--scenes", type=int, default=1)
    args = parser.parse_args()
    runs = [asyncio.run(run_once(args.shots, args.scenes)) for _ in range(args.repeat)]
    for n, run in enumerate(runs, 1):
        print(
            f"run {n}: {run['wall']:6.2f} s wall, media work {run['busy']:6.2f} s, "
            f"outside {run['outside']:5.2f} s ({run['outside'] / run['wall']:5.1%}), "
            f"{run['events']} events"
        )
    best = min(runs, key=lambda r: r["wall"])
    roles = ", ".join(
        f"{role} {seconds:.2f} s in {best['calls'][role]} calls"
        for role, seconds in sorted(best["roles"].items())
    )
    print(f"\nmedia time (summed over threads): {roles}")
    verdict = "PASS" if best["wall"] <= TARGET_SECONDS else "OVER"
    print(
        f"default Idea2Video ({args.scenes} scene x {args.shots} shots, 640x360, 12 fps, 2 s): "
        f"{best['wall']:.2f} s (target <= {TARGET_SECONDS:.0f} s) {verdict}; "
        f"outside the media work {best['outside']:.2f} s = {best['outside'] / best['wall']:.1%}"
    )


if __name__ == "__main__":
    main()
