"""Stopping answers in this process: the running answers by task, and the listener that hears stop notices.

A stop request is taken by any process (store/stops.py); it marks the task and pushes a notice on the list of the
worker holding the thread. Each worker process runs one StopListener, which blocks on that list and cancels the
answer's tool loop through RunningAnswers: the model's stream is closed at once, and no further model or tool call
is made. The answer then ends itself as stopped (bot/tasks/answer.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from store.connection import REDIS_FAILURES
from store.stops import StopRequests

log = logging.getLogger(__name__)

# How long a stop for an answer this process does not run (yet) is remembered: a notice can overtake the answer's
# registration (it came while the answer was still reading the thread), and must still stop it when it registers.
REMEMBER_SECONDS = 60.0
# How long one wait for a notice lasts: a stopping process notices within this.
LISTEN_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 8.0

AnswerKey = tuple[str, str]  # (ThreadRef.encode(), task id)


def stopped_marker(by: str) -> str:
    """The line that ends a stopped answer."""
    return f"_Stopped by <@{by}>._"


def stopped_text(partial_text: str, by: str) -> str:
    """A stopped answer as it stays in the thread and in the history: what it had shown, then who stopped it."""
    partial = partial_text.rstrip()
    return f"{partial}\n\n{stopped_marker(by)}" if partial else stopped_marker(by)


class RunningAnswers:
    """The answers' tool loops running in this process, by (thread key, task id): what a stop cancels."""

    def __init__(self, remember_seconds: float = REMEMBER_SECONDS) -> None:
        self._running: dict[AnswerKey, asyncio.Task[Any]] = {}
        self._stops: dict[AnswerKey, tuple[str, float]] = {}  # who stopped it, and when (monotonic)
        self._remember_seconds = remember_seconds

    @contextlib.contextmanager
    def running(self, thread_key: str, task_id: str, work: asyncio.Task[Any]) -> Iterator[None]:
        """Register `work` (the answer's tool loop) while the block runs; a stop already heard cancels it at once."""
        self._forget_old()
        key = (thread_key, task_id)
        self._running[key] = work
        if key in self._stops:
            work.cancel()
        try:
            yield
        finally:
            if self._running.get(key) is work:
                del self._running[key]
            self._stops.pop(key, None)

    def stop(self, thread_key: str, task_id: str, by: str) -> bool:
        """Cancel the answer and remember who stopped it; False if it does not run here (remembered a while, in
        case it is about to register)."""
        self._forget_old()
        key = (thread_key, task_id)
        self._stops.setdefault(key, (by, time.monotonic()))
        work = self._running.get(key)
        if work is None:
            return False
        work.cancel()
        return True

    def stopped_by(self, thread_key: str, task_id: str) -> str | None:
        """Who stopped the answer, if someone did."""
        stop = self._stops.get((thread_key, task_id))
        return stop[0] if stop else None

    def _forget_old(self) -> None:
        deadline = time.monotonic() - self._remember_seconds
        for key in [key for key, (_, at) in self._stops.items() if at < deadline and key not in self._running]:
            del self._stops[key]


class StopListener:
    """Takes this worker's stop notices off its list and stops the answers they name."""

    def __init__(self, requests: StopRequests, worker: str, answers: RunningAnswers, retry_delay: float = 2.0) -> None:
        self._requests = requests
        self._worker = worker
        self._answers = answers
        self._retry_delay = retry_delay

    async def run(self, stopping: asyncio.Event) -> None:
        """Listen until `stopping` is set; a Redis that fails meanwhile is waited for, as the queue readers do."""
        failures = 0
        while not stopping.is_set():
            try:
                notice = await self._requests.next_notice(self._worker, LISTEN_SECONDS)
            except REDIS_FAILURES as exc:
                failures += 1
                log.warning("cannot read this worker's stop notices (%s); retrying", exc)
                await asyncio.sleep(min(self._retry_delay * 2 ** (failures - 1), MAX_BACKOFF_SECONDS))
                continue
            # Whatever else goes wrong, the listener goes on: without it, Stop would wait for each answer's next step.
            except Exception:
                log.exception("the stop listener failed; it goes on after a pause")
                await asyncio.sleep(self._retry_delay)
                continue
            failures = 0
            if notice is None:
                continue
            if self._answers.stop(notice.thread_key, notice.task_id, notice.by):
                log.info("stopping task %s of thread %s (asked by %s)", notice.task_id, notice.thread_key, notice.by)
            else:
                log.info("task %s to stop is not running here (finished, or about to start)", notice.task_id)
