"""GET /healthz: 200 when this process can write to Redis, 503 when Redis is down or refuses writes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from store.connection import RedisClient
from store.health import check_writes

log = logging.getLogger(__name__)


async def redis_health(redis: RedisClient) -> str:
    """Redis as /healthz reports it: ok, refuses writes (out of memory, read-only, persistence failing), or down."""
    try:
        await asyncio.wait_for(check_writes(redis), timeout=2.0)
    except ResponseError as exc:  # Redis answered, with an error: it is up but cannot keep anything
        log.warning("Redis refuses writes: %s", exc)
        return "refuses writes"
    except (RedisError, RedisClusterException, OSError, TimeoutError):
        return "down"
    return "ok"


def healthz_handler(redis_state: Callable[[], Awaitable[str]], details: Callable[[], dict[str, object]]) -> Handler:
    """A handler that answers 200 when `redis_state` (redis_health, bound to the pool) says ok, else 503."""

    async def healthz(_request: web.Request) -> web.Response:
        state = await redis_state()
        ok = state == "ok"
        body = {"status": "ok" if ok else "unavailable", "redis": state, **details()}
        return web.json_response(body, status=200 if ok else 503)

    return healthz
