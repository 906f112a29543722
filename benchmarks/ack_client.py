"""Load generator for benchmarks/durability.py, run in its own process so the fakes' work does not skew the timing.

python -m benchmarks.ack_client URL TEAM_ID BOT_USER_ID COUNT   -> prints a JSON list of ack latencies in seconds
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp

from tests.fakes import app_mention_event, event_envelope, signed_event_request
from tests.integration.harness import SIGNING_SECRET


async def send(session: aiohttp.ClientSession, url: str, body: str, headers: dict[str, str]) -> float:
    """Seconds until the bot acknowledged one event."""
    start = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
    return time.perf_counter() - start


async def main(url: str, team_id: str, bot_user_id: str, count: int) -> list[float]:
    """Sign `count` mentions first, then send them all at once over open connections."""

    def signed(n: int) -> tuple[str, dict[str, str]]:
        event = app_mention_event(f"<@{bot_user_id}> ack {n}", user="U0BENCH", channel="C0ACK")
        return signed_event_request(event_envelope(event, team_id=team_id), SIGNING_SECRET)

    requests = [signed(n) for n in range(count)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=count)) as session:
        # Open the connections first (Slack's deliveries reach a dyno over its router's pooled connections),
        # so that what is timed is the bot's acknowledgement, not this client's connection setup.
        health = url.replace("/slack/events", "/healthz")

        async def open_connection() -> None:
            async with session.get(health) as response:
                await response.read()

        await asyncio.gather(*(open_connection() for _ in range(count)))
        # One event first, as the bot's first event of the day would be (Bolt looks up its identity then).
        await send(session, url, *signed(-1))
        return list(await asyncio.gather(*(send(session, url, body, headers) for body, headers in requests)))


if __name__ == "__main__":
    target, team, bot_user, how_many = sys.argv[1:5]
    print(json.dumps(asyncio.run(main(target, team, bot_user, int(how_many)))))
