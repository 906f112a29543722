"""Polling helper: wait for an asynchronous effect instead of sleeping a fixed time (tests and the playground)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 5.0,
    interval: float = 0.02,
) -> T:
    """Poll `predicate` (sync or async) until it returns a truthy value and return that value."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            name = getattr(predicate, "__qualname__", repr(predicate))
            raise TimeoutError(f"condition {name} not met within {timeout}s (last value: {result!r})")
        await asyncio.sleep(interval)
