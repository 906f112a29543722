"""Whether Redis can keep the bot's state: it takes writes, and it does not evict keys to make room."""

from __future__ import annotations

import logging
import time

from redis.exceptions import ResponseError

from store import decode, keys
from store.connection import RedisClient

log = logging.getLogger(__name__)


async def check_writes(redis: RedisClient) -> None:
    """Write the short-lived health key; raises RedisError if Redis cannot be reached or refuses the write.

    A Redis that answers PING may still refuse every write: out of memory under noeviction ("OOM command not
    allowed"), a read-only replica after a failover (READONLY), or failing persistence (MISCONF). The bot can do
    nothing useful then: intake cannot record a mention, workers cannot journal a step.
    """
    await redis.set(keys.HEALTH, repr(time.time()), ex=keys.HEALTH_TTL)


async def warn_if_evicting(redis: RedisClient) -> None:
    """Log a warning if Redis's maxmemory-policy evicts keys; say nothing if Redis will not tell (managed plans
    often refuse CONFIG)."""
    try:
        reply = await redis.config_get("maxmemory-policy")
    except ResponseError:
        return
    policy = decode.text(reply.get("maxmemory-policy", "noeviction"))
    if policy != "noeviction":
        log.warning(
            "Redis's maxmemory-policy is %s: when memory runs out it may evict the task queue or a thread's queued "
            "work, which is then lost. Set it to noeviction (see the README)",
            policy,
        )
