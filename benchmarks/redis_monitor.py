"""Counts the commands Redis runs, split into those a client sent and those a Lua script ran, by MONITOR.

INFO commandstats counts a command run inside a Lua script (redis.call) like one a client sent, so it cannot
tell how many requests the bot made from how much work Redis did for them. MONITOR streams every command with
its origin ("lua" for a script's), which can. It costs Redis a little; it runs only while counting.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from types import TracebackType
from typing import Self

from redis.asyncio import Redis
from redis.asyncio.client import Monitor

# Commands the benchmark itself sends (status and memory queries), which are not the bot's.
OWN_COMMANDS = frozenset({"info", "config", "memory", "flushall"})
MARK = "bench-mark"  # echoed to find where a count ends in MONITOR's stream


def parse(line: str) -> tuple[str, str] | None:
    """('lua' or 'client', command name) of one MONITOR line: 1700000000.123 [0 127.0.0.1:5000] "hset" "k" ..."""
    _, _, rest = line.partition("[")
    origin, _, command = rest.partition("] ")
    if not command.startswith('"'):
        return None  # MONITOR's own "OK", or a line cut short
    name = command[1:].split('"', 1)[0].lower()
    return ("lua" if origin.endswith(" lua") else "client"), name


class CommandTally:
    """While open, counts every command Redis runs; `take()` returns the counts so far and starts again."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self.sent: Counter[str] = Counter()
        self.scripted: Counter[str] = Counter()
        self._reading: asyncio.Task[None] | None = None
        self._marked = asyncio.Event()

    async def __aenter__(self) -> Self:
        monitor = self._redis.monitor()
        await monitor.__aenter__()  # type: ignore[no-untyped-call]  # redis-py's Monitor is untyped
        self._reading = asyncio.create_task(self._read(monitor))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading

    async def _read(self, monitor: Monitor) -> None:
        connection = monitor.connection
        assert connection is not None, "MONITOR is connected once entered"
        try:
            while True:
                # No read timeout: the bot may send nothing for longer than redis-py's 5 s socket timeout.
                response = await connection.read_response(timeout=math.inf)
                line = response.decode(errors="replace") if isinstance(response, bytes) else str(response)
                parsed = parse(line)
                if parsed is None:
                    continue
                origin, name = parsed
                if name == "echo" and MARK in line:
                    self._marked.set()
                elif origin == "lua":
                    self.scripted[name] += 1
                elif name not in OWN_COMMANDS:
                    self.sent[name] += 1
        finally:
            await monitor.__aexit__()  # type: ignore[no-untyped-call]  # closes the connection

    async def take(self) -> tuple[Counter[str], Counter[str]]:
        """(sent, scripted) since the last take, once MONITOR has caught up to the mark this call echoes."""
        if self._reading is not None and self._reading.done():
            self._reading.result()  # the reader stopped: raise what stopped it rather than wait for nothing
        self._marked.clear()
        await self._redis.echo(MARK)
        await asyncio.wait_for(self._marked.wait(), timeout=30)
        sent, scripted = self.sent, self.scripted
        self.sent, self.scripted = Counter(), Counter()
        return sent, scripted
