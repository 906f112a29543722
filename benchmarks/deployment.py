"""A deployment scaled out as on Heroku: one web process that only takes mentions in, and worker processes.

The web process (`RUN_WORKERS_IN_WEB=false`) acknowledges Slack and records each task in Redis; each
`python -m bot worker` process claims tasks from the queue and answers them. The Redis is either the benchmark's
private standalone one or a local Redis Cluster: the bot finds out which from REDIS_URL.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.harness import Bench
from store import keys
from store.connection import RedisClient
from tests.integration.harness import BotProcess


class Deployment:
    """The web process and the worker processes of one session, started and stopped by their pids."""

    def __init__(self, bench: Bench, redis: RedisClient) -> None:
        self._bench = bench
        self._redis = redis  # to see when a worker reads the queue: it says it is alive just before
        self.web: BotProcess | None = None
        self.workers: list[BotProcess] = []

    async def start_web(self) -> BotProcess:
        """Start the web process and wait until /healthz answers."""
        self.web = await self._bench.start({"DYNO": "web.1", "RUN_WORKERS_IN_WEB": "false"})
        return self.web

    async def scale_to(self, count: int, timeout: float = 60.0) -> None:
        """Start worker processes (together) until `count` run; return once each has started reading the queue."""
        names = [f"worker.{n}" for n in range(len(self.workers) + 1, count + 1)]
        started = await asyncio.gather(
            *(self._bench.start({"DYNO": name}, args=("worker",), wait_ready=False) for name in names)
        )
        self.workers += started
        await asyncio.gather(
            *(self._wait_reading(name, process, timeout) for name, process in zip(names, started, strict=True))
        )

    async def _wait_reading(self, name: str, process: BotProcess, timeout: float) -> None:
        """Wait until the worker has entered itself in the workers list, which its runner does just before its
        first blocking reads of the queue (there is no HTTP server in a worker process to ask)."""
        deadline = time.monotonic() + timeout
        while await self._redis.zscore(keys.WORKERS, name) is None:
            if process.process is not None and process.process.returncode is not None:
                raise AssertionError(f"{name} exited with {process.process.returncode}:\n{process.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} did not start within {timeout} s:\n{process.output()}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)  # its readers' first XREADGROUP goes out on the next turns of its event loop

    async def keep_one_worker(self) -> BotProcess:
        """SIGKILL the web process and every worker but the first; the first, left alone."""
        for process in [self.web, *self.workers[1:]]:
            if process is not None:
                await process.kill()
        self.web = None
        self.workers = self.workers[:1]
        return self.workers[0]
