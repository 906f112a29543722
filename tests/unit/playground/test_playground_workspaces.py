"""The playground page's workspaces: each with its own channels and bot user, what Slack sends from each, and
uninstalling the app from one (installing through the bot is tested against the real bot, tests/integration)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from playground.delivery import SlackDelivery
from playground.playground import Playground
from tests.fakes import wait_until

CHANNEL = "C0GENERAL"
SECOND = "T0SECOND"


class EnvelopeBot:
    """A Request URL that acknowledges every event and keeps its whole envelope."""

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.envelopes.append(json.loads(await request.text()))
        return web.Response(status=200)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [envelope for envelope in self.envelopes if envelope["event"]["type"] == kind]


@pytest.fixture
async def bot() -> AsyncIterator[tuple[EnvelopeBot, str]]:
    recorder = EnvelopeBot()
    app = web.Application()
    app.router.add_post("/slack/events", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield recorder, f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    finally:
        await runner.cleanup()


@pytest.fixture
async def page(bot: tuple[EnvelopeBot, str]) -> AsyncIterator[Playground]:
    """The page with a second workspace the app was installed in (as a completed install leaves it)."""
    async with Playground(model="offline", signing_secret="page-secret") as playground:
        playground.add_workspace(SECOND, team_name="Second").installed = True
        playground.workspace_page.joined.append(SECOND)
        playground.delivery = SlackDelivery(bot[1], "page-secret")
        try:
            yield playground
        finally:
            await playground.delivery.close()


async def post(page: Playground, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(page.url + path, json=body) as response:
        answer: dict[str, Any] = await response.json()
        return response.status, answer


def general(page: Playground, team: str | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = next(c for c in page.snapshot(team)["channels"] if c["id"] == CHANNEL)["messages"]
    return found


async def test_a_mention_in_the_second_workspace_is_its_own(page: Playground, bot: tuple[EnvelopeBot, str]) -> None:
    """A mention in the second workspace's #general is stored there and reaches the app as that workspace's, naming
    its bot user; the first workspace's #general (the same channel id) stays empty."""
    status, answer = await post(page, "playground/messages", {"channel": CHANNEL, "text": "@claude hi", "team": SECOND})
    assert status == 200
    [envelope] = await wait_until(lambda: bot[0].of("app_mention"))
    bot_user = page.workspaces[SECOND].bot_user_id
    assert envelope["team_id"] == SECOND and envelope["authorizations"][0]["user_id"] == bot_user
    assert envelope["event"]["text"] == f"<@{bot_user}> hi" and envelope["event"]["ts"] == answer["ts"]
    assert [m["ts"] for m in general(page, SECOND)] == [answer["ts"]]
    assert general(page) == []
    shown = page.snapshot(SECOND)
    assert shown["team"] == SECOND and shown["bot"]["id"] == bot_user
    assert [(w["id"], w["installed"]) for w in shown["workspaces"]] == [(page.team_id, True), (SECOND, True)]


async def test_an_unknown_workspace_is_refused(page: Playground) -> None:
    """A request naming a workspace the person is not in gets a clear error and stores nothing."""
    status, answer = await post(page, "playground/messages", {"channel": CHANNEL, "text": "hi", "team": "T0ELSE"})
    assert status == 400 and "unknown workspace 'T0ELSE'" in answer["error"]
    assert general(page) == [] and general(page, SECOND) == []


async def test_installing_needs_the_bot(page: Playground) -> None:
    """Without a bot under the playground, Add a workspace says so and adds no workspace."""
    status, answer = await post(page, "playground/workspaces", {})
    assert status == 400 and "not running under the playground" in answer["error"]
    assert list(page.workspaces) == [page.team_id, SECOND] and page.snapshot()["install"] is None


async def test_uninstalling_tells_the_app_and_then_slack_sends_it_nothing_from_there(
    page: Playground, bot: tuple[EnvelopeBot, str]
) -> None:
    """Uninstall delivers app_uninstalled and tokens_revoked for the workspace; after it, a mention there reaches
    nothing and /agent is not a command there, while the other workspace goes on as before."""
    assert (await post(page, "playground/workspaces/uninstall", {"team": SECOND}))[0] == 200
    told = await wait_until(lambda: len(bot[0].envelopes) == 2 and bot[0].envelopes)
    assert sorted(envelope["event"]["type"] for envelope in told) == ["app_uninstalled", "tokens_revoked"]
    assert {envelope["team_id"] for envelope in told} == {SECOND}
    assert [w["installed"] for w in page.snapshot()["workspaces"]] == [True, False]

    await post(page, "playground/messages", {"channel": CHANNEL, "text": "@claude anyone?", "team": SECOND})
    await post(page, "playground/messages", {"channel": CHANNEL, "text": "@claude hi", "team": page.team_id})
    [heard] = await wait_until(lambda: bot[0].of("app_mention"))
    assert heard["team_id"] == page.team_id
    assert [m["text"] for m in general(page, SECOND)] == [f"<@{page.workspaces[SECOND].bot_user_id}> anyone?"]

    assert (await post(page, "playground/commands", {"channel": CHANNEL, "text": "/agent status", "team": SECOND}))[
        0
    ] == 200
    assert [e["text"] for e in page.snapshot(SECOND)["ephemerals"]] == [
        "/agent is not a valid command in this workspace."
    ]
    assert page.snapshot()["ephemerals"] == []
