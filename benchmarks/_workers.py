"""Client work split over forked processes, each spoken to over a pipe."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any


class Workers:
    """``count`` clients split as evenly as can be over at most ``processes`` forked
    processes; process ``i`` runs ``target(pipe, share_i)`` (the shares add up to
    ``count``) and answers what its pipe is sent."""

    def __init__(
        self,
        target: Callable[[Connection, int], None],
        count: int,
        processes: int,
        timeout: float,
    ) -> None:
        context = multiprocessing.get_context("fork")
        processes = max(1, min(processes, count))
        self.timeout = timeout
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        for i in range(processes):
            share = count // processes + (i < count % processes)
            ours, theirs = context.Pipe()
            process = context.Process(target=target, args=(theirs, share), daemon=True)
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)

    def send(self, message: Any) -> None:
        """Send ``message`` to every process."""
        for pipe in self.pipes:
            pipe.send(message)

    def answers(self, waiting_for: str) -> list[Any]:
        """One answer from each process, in order; TimeoutError names ``waiting_for``
        when one takes longer than the timeout."""
        answers = []
        for pipe in self.pipes:
            if not pipe.poll(self.timeout):
                raise TimeoutError(f"a client process did not answer {waiting_for}")
            answers.append(pipe.recv())
        return answers

    def join(self) -> None:
        """Wait for every process to end (10 s each), killing any that does not."""
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
