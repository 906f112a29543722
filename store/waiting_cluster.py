"""redis-py's cluster client made to wait for a free connection, as the standalone client's BlockingConnectionPool
does, instead of failing at once.

redis-py's asyncio cluster client keeps `max_connections` per node and raises MaxConnectionsError (with no message)
the moment a command finds them all in use: it has no blocking pool. A burst of answers (hundreds of tasks, each a
few commands, many on one node) then fails commands that a moment's wait would have served. Here every command or
pipeline first takes one of `in_flight` permits, waiting up to `wait_seconds` for one. A command or pipeline uses at
most one connection per node at a time, so with each node allowed `in_flight` connections (and a little room for the
client's own CLUSTER SLOTS refreshes) no node's pool can run out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import MaxConnectionsError, RedisClusterException

# Connections per node beyond the permits: the client refreshes its slot map (CLUSTER SLOTS) on a connection of its
# own while the command that met the change holds its permit.
SPARE_PER_NODE = 2

# The client whose permit the running code holds: redis-py sends a pipeline's redirected commands through
# execute_command while the pipeline runs, and a second permit there could wait for ever on a full client.
_permit_holder: ContextVar[object | None] = ContextVar("redis_cluster_permit_holder", default=None)


class WaitingRedisCluster(RedisCluster):
    """A RedisCluster whose commands wait (up to `wait_seconds`) for one of `in_flight` permits, each node allowed
    as many connections; MaxConnectionsError, with a message, only when the wait runs out."""

    def __init__(self, *args: Any, in_flight: int = 100, wait_seconds: float = 10.0, **kwargs: Any) -> None:
        kwargs["max_connections"] = in_flight + SPARE_PER_NODE  # per node
        super().__init__(*args, **kwargs)
        self.in_flight = in_flight
        self._wait_seconds = wait_seconds
        self._permits = asyncio.Semaphore(in_flight)

    @contextlib.asynccontextmanager
    async def permit(self) -> AsyncIterator[None]:
        """Hold one permit (none more if this task holds one of this client already) for a command or pipeline."""
        if _permit_holder.get() is self:
            yield
            return
        try:
            async with asyncio.timeout(self._wait_seconds):
                await self._permits.acquire()
        except TimeoutError:
            raise MaxConnectionsError(
                f"no Redis connection free within {self._wait_seconds:g} s ({self.in_flight} commands in flight)"
            ) from None
        holding = _permit_holder.set(self)
        try:
            yield
        finally:
            _permit_holder.reset(holding)
            self._permits.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Send the command once a permit is free."""
        async with self.permit():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        """A pipeline whose execution holds one permit (its commands go out together, one connection per node)."""
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        # redis-py's typing protocol declares an _event_dispatcher that ClusterPipeline never sets, so mypy deems it
        # abstract; redis-py builds its own ClusterPipeline the same way.
        return _WaitingPipeline(self, transaction)  # type: ignore[abstract]


class _WaitingPipeline(ClusterPipeline):
    """A cluster pipeline that runs under one permit of its client."""

    def __init__(self, client: WaitingRedisCluster, transaction: bool | None = None) -> None:
        super().__init__(client, transaction)
        self._waiting_client = client

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        """Send the queued commands once a permit is free."""
        async with self._waiting_client.permit():
            return await super().execute(raise_on_error, allow_redirections)
