"""`python -m bot migrate --queue-shards N`: its command line, and the change it runs from what agent:layout says."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from bot.__main__ import main, queue_shards_argument
from bot.runtime.migration import change_queue_shards
from store import keys
from store.errors import ShardChangeRefused
from store.reshard import ReshardReport
from tests.unit.store.reshard_data import NEW, build, view


@pytest.mark.parametrize(
    ("argv", "shards"),
    [
        (["migrate", "--queue-shards", "7"], 7),
        (["migrate", "--queue-shards=32"], 32),
        (["migrate"], None),
        (["migrate", "--queue-shards"], None),
        (["migrate", "--queue-shards", "seven"], None),
        (["migrate", "--shards", "7"], None),
        (["worker", "--queue-shards", "7"], None),
    ],
)
def test_the_number_is_read_from_migrate_queue_shards_only(argv: list[str], shards: int | None) -> None:
    """`migrate --queue-shards N` and `--queue-shards=N` give N; anything else is not that command."""
    assert queue_shards_argument(argv) == shards


def test_a_malformed_command_line_prints_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """A migrate command with a bad option exits 2 with the usage, before reading any setting."""
    assert main(["migrate", "--queue-shards", "many"]) == 2
    assert "migrate [--queue-shards N]" in capsys.readouterr().err


async def test_the_data_moves_from_the_number_the_layout_records(redis: Redis) -> None:
    """The change starts from the number agent:layout records; run again, it has nothing to do."""
    await build(redis)
    report = await change_queue_shards(redis, 7)
    assert report.threads == 6 and await redis.hget(keys.LAYOUT, "shards") == "7"
    before = await view(redis, NEW)
    assert await change_queue_shards(redis, 7) == ReshardReport()
    assert await view(redis, NEW) == before


async def test_a_redis_without_data_records_the_number(redis: Redis) -> None:
    """On a Redis no process has used yet, the number is recorded for the first start."""
    assert await change_queue_shards(redis, 7) == ReshardReport()
    assert await redis.hgetall(keys.LAYOUT) == {"version": "2", "shards": "7"}


async def test_a_number_out_of_range_is_refused(redis: Redis) -> None:
    """0 or more than 1024 shards is refused with the allowed range, before anything is read."""
    with pytest.raises(ShardChangeRefused, match="between 1 and 1024"):
        await change_queue_shards(redis, 0)
