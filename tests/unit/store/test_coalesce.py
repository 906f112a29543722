"""Concurrent runs of one script share a pipeline, and each caller still gets its own result or error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from store.coalesce import CoalescedScript

# Appends ARGV[1] to the list at KEYS[1] and returns the list's new length; fails on purpose for "bad".
APPEND = """
if ARGV[1] == 'bad' then return redis.error_reply('bad argument') end
return redis.call('RPUSH', KEYS[1], ARGV[1])
"""


def count_pipelines(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the pipelines opened on `redis` (the list grows by one per pipeline)."""
    opened: list[int] = []
    original = redis.pipeline

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(redis, "pipeline", counting)
    return opened


async def test_a_burst_shares_one_pipeline_and_keeps_its_order(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    script = CoalescedScript(redis, APPEND)
    await redis.script_load(APPEND)
    opened = count_pipelines(redis, monkeypatch)
    results = await asyncio.gather(*(script(keys=["burst"], args=[f"v{n}"]) for n in range(50)))
    assert results == list(range(1, 51))
    assert await redis.lrange("burst", 0, -1) == [f"v{n}" for n in range(50)]
    assert len(opened) == 1


async def test_one_failing_call_fails_alone(redis: Redis) -> None:
    script = CoalescedScript(redis, APPEND)
    results = await asyncio.gather(
        script(keys=["mixed"], args=["a"]),
        script(keys=["mixed"], args=["bad"]),
        script(keys=["mixed"], args=["b"]),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], ResponseError) and "bad argument" in str(results[1])


async def test_a_redis_that_forgot_its_scripts_is_taught_again(redis: Redis) -> None:
    """Redis does not persist its script cache: after a restart (here SCRIPT FLUSH) the calls still succeed."""
    script = CoalescedScript(redis, APPEND)
    assert await script(keys=["again"], args=["x"]) == 1
    await redis.script_flush()
    assert await asyncio.gather(script(keys=["again"], args=["y"]), script(keys=["again"], args=["z"])) == [2, 3]


async def test_an_unreachable_redis_fails_every_caller() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)
    script = CoalescedScript(unreachable, APPEND)
    try:
        results = await asyncio.gather(*(script(keys=["k"], args=[str(n)]) for n in range(3)), return_exceptions=True)
    finally:
        await unreachable.aclose()
    assert all(isinstance(result, RedisConnectionError) for result in results)
