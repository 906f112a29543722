"""GET /healthz: 200 when this process can reach Redis, 503 when it cannot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler
from redis.asyncio import Redis
from redis.exceptions import RedisError


def healthz_handler(redis: Redis, details: Callable[[], dict[str, object]]) -> Handler:
    """A handler that pings Redis (bounded by a short timeout, so a hung Redis still gets a quick 503)."""

    async def healthz(_request: web.Request) -> web.Response:
        try:
            redis_ok = bool(await asyncio.wait_for(redis.ping(), timeout=2.0))
        except (RedisError, OSError, TimeoutError):
            redis_ok = False
        body = {"status": "ok" if redis_ok else "unavailable", "redis": "ok" if redis_ok else "down", **details()}
        return web.json_response(body, status=200 if redis_ok else 503)

    return healthz
