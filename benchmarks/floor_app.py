"""The framework's floor for acknowledgement latency: a Bolt app that only acknowledges mentions.

python -m benchmarks.floor_app   (reads PORT, SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL)

It is served the way the bot is (aiohttp, Bolt's adapter, process_before_response), so the bot's figures can be
read against what any Bolt app costs on the same machine in the same run.
"""

from __future__ import annotations

import os
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def build() -> web.Application:
    client = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    bolt = AsyncApp(
        name="ack-floor", client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"], process_before_response=True
    )

    @bolt.event("app_mention")
    async def acknowledge(body: dict[str, Any]) -> None:
        return None

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", health)
    return app


if __name__ == "__main__":
    web.run_app(build(), host="127.0.0.1", port=int(os.environ["PORT"]), access_log=None, print=None)
