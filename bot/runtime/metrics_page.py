"""GET /metrics: the process's metrics (bot/core/metrics.py) in Prometheus' text format, behind optional auth.

With METRICS_TOKEN a scrape must send `Authorization: Bearer TOKEN`; with METRICS_BASIC_AUTH ("user:password") it
may send those as basic auth (Prometheus' `authorization` and `basic_auth` scrape settings); with both set, either
is let in; with neither, /metrics is open to anyone who can reach the port.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from bot.core import metrics
from store.connection import REDIS_FAILURES, RedisClient
from store.keys import KeySpace
from store.queue_stats import queue_stats

log = logging.getLogger(__name__)

# A scrape waits this long for the queue's figures from Redis; past it the last ones read are served.
REFRESH_TIMEOUT_SECONDS = 2.0
# The figures are read at most this often, however many scrapes come (Prometheus scrapes every 15 s or more): a
# flood of scrapes costs Redis nothing more, and leaves the connections to intake and the lease keeper.
REFRESH_INTERVAL_SECONDS = 5.0


@dataclass(frozen=True)
class MetricsAuth:
    """What a scrape must present: a bearer token, basic-auth credentials, either one, or nothing (None, None)."""

    token: str | None = None
    basic: str | None = None  # "user:password"

    def allows(self, authorization: str) -> bool:
        """Whether an Authorization header's value lets the scrape in (compared in constant time)."""
        if self.token is None and self.basic is None:
            return True
        scheme, _, credentials = authorization.strip().partition(" ")
        credentials = credentials.strip()
        if self.token is not None and scheme.lower() == "bearer":
            # aiohttp hands undecodable header bytes on as surrogates: encoded back as they came, never an error.
            return hmac.compare_digest(credentials.encode("utf-8", "surrogateescape"), self.token.encode())
        if self.basic is not None and scheme.lower() == "basic":
            try:
                sent = base64.b64decode(credentials.encode("utf-8", "surrogateescape"), validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(sent, self.basic.encode())
        return False

    def challenge(self) -> dict[str, str]:
        """The WWW-Authenticate header of a refusal: what the scraper should send."""
        return {"WWW-Authenticate": 'Basic realm="metrics"' if self.basic is not None else "Bearer"}


Sampler = Callable[[], Awaitable[None]]


def queue_sampler(
    redis: RedisClient,
    space: KeySpace,
    active_threads: Callable[[], int],
    *,
    interval: float = REFRESH_INTERVAL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Sampler:
    """What a scrape reads first: this process's active threads, and the queue's figures from Redis into the gauges
    (at most once per `interval`; scrapes meanwhile, or while a read runs, serve the figures last read)."""
    last_read = -math.inf
    reading = asyncio.Lock()

    async def sample() -> None:
        nonlocal last_read
        metrics.ACTIVE_THREADS.set(active_threads())
        if clock() - last_read < interval or reading.locked():
            return
        async with reading:
            last_read = clock()
            try:
                stats = await asyncio.wait_for(queue_stats(redis, space), REFRESH_TIMEOUT_SECONDS)
            except TimeoutError:  # a slow Redis is not a failing one: no error counted
                log.info("serving the last queue figures: Redis took over %.0f s", REFRESH_TIMEOUT_SECONDS)
                return
            except REDIS_FAILURES as exc:
                metrics.REDIS_ERRORS.labels(where="metrics").inc()
                log.info("serving the last queue figures: Redis did not give new ones (%s)", type(exc).__name__)
                return
        metrics.QUEUE_WAITING.set(stats.waiting)
        metrics.QUEUE_RUNNING.set(stats.running)
        metrics.QUEUE_OLDEST_SECONDS.set(stats.oldest_wait_seconds)

    return sample


def metrics_handler(auth: MetricsAuth, dyno: str, sample: Sampler | None = None) -> Handler:
    """The handler of GET /metrics: refuses a scrape without the credentials `auth` asks for (401), else refreshes
    the gauges read at scrape time and serves every metric, each sample labelled with this process's dyno."""
    exposed = metrics.Labelled(metrics.REGISTRY, {"dyno": dyno})

    async def serve_metrics(request: web.Request) -> web.Response:
        if not auth.allows(request.headers.get("Authorization", "")):
            return web.Response(status=401, text="unauthorized", headers=auth.challenge())
        if sample is not None:
            await sample()
        body = generate_latest(exposed)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    return serve_metrics
