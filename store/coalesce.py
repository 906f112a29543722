"""Coalescing: many concurrent runs of one Lua script sent as one pipeline.

A burst of Slack events arrives together, and each event's intake runs the same script. Sent one by one, every
event takes a pooled connection and a round trip of its own; gathered over one turn of the event loop, the whole
burst shares one connection and one round trip, and each caller still gets its own result or its own error.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import NoScriptError

from store.connection import RedisClient


@dataclass
class _Call:
    keys: list[str]
    args: list[Any]
    result: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class CoalescedScript:
    """Call like redis-py's registered script: `await script(keys=[...], args=[...])`."""

    def __init__(self, redis: RedisClient, source: str) -> None:
        self._redis = redis
        self._script = redis.register_script(source)
        self._waiting: list[_Call] = []
        self._flushes: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        """Run the script once for these keys and args, in the same pipeline as the other calls of this turn."""
        call = _Call(keys, args)
        self._waiting.append(call)
        if len(self._waiting) == 1:
            # Runs after the callers already scheduled in this turn of the loop have added their calls.
            # A context of its own: the flush runs the calls of several events, and must not carry the first one's
            # ids in its log records (bot/core/log_context.py keeps them in context variables).
            flush = asyncio.get_running_loop().create_task(self._flush(), context=contextvars.Context())
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)
        return await call.result

    async def _flush(self) -> None:
        calls, self._waiting = self._waiting, []
        try:
            results = await self._run(calls)
            if any(isinstance(result, NoScriptError) for result in results):
                # Redis restarted (its script cache is not persisted): load the script and run those calls again.
                await self._redis.script_load(self._script.script)
                retried = [
                    call for call, result in zip(calls, results, strict=True) if isinstance(result, NoScriptError)
                ]
                again = iter(await self._run(retried))
                results = [next(again) if isinstance(result, NoScriptError) else result for result in results]
        except asyncio.CancelledError:
            for call in calls:
                call.result.cancel()
            raise
        except Exception as exc:  # noqa: BLE001  # Redis unreachable, or anything else: no caller may wait forever
            for call in calls:
                if not call.result.done():
                    call.result.set_exception(exc)
            return
        for call, result in zip(calls, results, strict=True):
            if call.result.done():  # the caller was cancelled (Slack closed the request)
                continue
            if isinstance(result, Exception):
                call.result.set_exception(result)
            else:
                call.result.set_result(result)

    async def _run(self, calls: list[_Call]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for call in calls:
            # (a cluster pipeline refuses pipe.evalsha, but sends the command itself to each key's node)
            pipe.execute_command("EVALSHA", self._script.sha, len(call.keys), *call.keys, *call.args)
        return list(await pipe.execute(raise_on_error=False))
