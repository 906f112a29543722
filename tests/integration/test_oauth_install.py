"""The OAuth install through the running bot: the install page, Slack's authorize screen, the redirect, Redis."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from handlers.installation_store import RedisInstallationStore
from playground.slack_oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from store import keys
from store.connection import RedisClient
from tests.fakes import FakeSlack
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess, free_port

pytestmark = pytest.mark.integration
STATE_COOKIE = "slack-app-oauth-state"  # Bolt's default cookie name
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
FAILURE_HEADING = "Oops, Something Went Wrong!"  # Bolt's failure page


OAuthBotFactory = Callable[..., Awaitable[BotProcess]]


@pytest.fixture
async def make_oauth_bot(bot_env: dict[str, str], slack: FakeSlack, tmp_path: Path) -> AsyncIterator[OAuthBotFactory]:
    """Start bots in OAuth mode (client id and secret, no bot token), their Redirect URL registered with the
    emulator; `redirect_uri=True` also sets SLACK_REDIRECT_URI to it, `overrides` set more variables. Each is killed
    at the end."""
    started: list[BotProcess] = []

    async def start(*, redirect_uri: bool = False, **overrides: str) -> BotProcess:
        env = {name: value for name, value in bot_env.items() if name != "SLACK_BOT_TOKEN"}
        env |= {"SLACK_CLIENT_ID": DEFAULT_CLIENT_ID, "SLACK_CLIENT_SECRET": DEFAULT_CLIENT_SECRET}
        env |= {"PORT": str(free_port()), **overrides}
        bot = BotProcess(env, tmp_path)
        slack.redirect_urls = [bot.url + REDIRECT_PATH]
        if redirect_uri:
            env["SLACK_REDIRECT_URI"] = bot.url + REDIRECT_PATH
        started.append(bot)
        await bot.start()
        return bot

    yield start
    for bot in started:
        if bot.process is not None and bot.process.returncode is None:
            await bot.kill()
        print(f"----- {bot.log_path.name} -----\n{bot.output()}")  # shown by pytest only when the test fails


@pytest.fixture
async def oauth_bot(make_oauth_bot: OAuthBotFactory) -> BotProcess:
    """One bot in OAuth mode, Slack sending installs back to the app's only Redirect URL."""
    return await make_oauth_bot()


@dataclass
class Page:
    """An HTTP answer a browser got."""

    status: int
    text: str
    location: str | None
    set_cookies: dict[str, str]


async def browse(url: str, cookie: str | None = None) -> Page:
    """GET `url` as a browser would, without following a redirect; `cookie` is the state cookie to send back.

    The cookie is handled by hand: Bolt marks it Secure, and a browser would not send it over the tests' plain HTTP.
    """
    headers = {"Cookie": f"{STATE_COOKIE}={cookie}"} if cookie is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers, allow_redirects=False) as response,
    ):
        cookies = {name: morsel.value for name, morsel in response.cookies.items()}
        return Page(response.status, await response.text(), response.headers.get("Location"), cookies)


async def open_install_page(bot: BotProcess) -> tuple[str, str]:
    """GET /slack/install: the Add-to-Slack link and the state cookie it set."""
    page = await browse(bot.url + INSTALL_PATH)
    assert page.status == 200
    found = re.search(r'href="([^"]*/oauth/v2/authorize\?[^"]*)"', page.text)
    assert found is not None, page.text
    return html.unescape(found.group(1)), page.set_cookies[STATE_COOKIE]


async def slack_redirect(slack: FakeSlack, link: str, team_id: str, *, approve: bool = True) -> str:
    """A user of `team_id`, signed in to Slack, opening the Add-to-Slack link: where Slack sends them back."""
    slack.sign_in(team_id, "U0ADMIN", approve=approve)
    page = await browse(link)
    assert page.status == 302 and page.location is not None, page.text
    return page.location


async def stored_bot_token(redis: RedisClient, team_id: str) -> str | None:
    """The bot token the installation store finds for a workspace, if any."""
    bot = await RedisInstallationStore(redis).async_find_bot(enterprise_id=None, team_id=team_id)
    return bot.bot_token if bot is not None else None


async def test_two_workspaces_install_through_the_bot(
    oauth_bot: BotProcess, slack: FakeSlack, redis: RedisClient
) -> None:
    """Each workspace's install goes install page -> Slack -> redirect, and stores a working token of its own."""
    tokens = {}
    for team_id in ("T0FIRST", "T0SECOND"):
        slack.add_workspace(team_id)
        link, cookie = await open_install_page(oauth_bot)
        query = parse_qs(urlsplit(link).query)
        assert link.startswith(slack.api_url.removesuffix("/api/") + "/oauth/v2/authorize?")
        assert query["client_id"] == [DEFAULT_CLIENT_ID] and query["state"] == [cookie]
        assert "app_mentions:read" in query["scope"][0].split(",")
        redirect = await slack_redirect(slack, link, team_id)
        assert redirect.startswith(oauth_bot.url + REDIRECT_PATH + "?")
        page = await browse(redirect, cookie)
        assert page.status == 200 and FAILURE_HEADING not in page.text, page.text
        token = await stored_bot_token(redis, team_id)
        assert token is not None
        grant = slack.token_grant(token)
        assert grant is not None and grant.team_id == team_id
        tokens[team_id] = token
    assert tokens["T0FIRST"] != tokens["T0SECOND"]
    assert await redis.exists(keys.oauth_state(cookie)) == 0  # the state was used up


async def test_a_configured_redirect_uri_is_sent_and_repeated(
    make_oauth_bot: OAuthBotFactory, slack: FakeSlack, redis: RedisClient
) -> None:
    """With SLACK_REDIRECT_URI the link names it and the code exchange repeats it, as Slack requires."""
    bot = await make_oauth_bot(redirect_uri=True)
    slack.add_workspace("T0FIRST")
    link, cookie = await open_install_page(bot)
    assert parse_qs(urlsplit(link).query)["redirect_uri"] == [bot.url + REDIRECT_PATH]
    page = await browse(await slack_redirect(slack, link, "T0FIRST"), cookie)
    assert page.status == 200 and FAILURE_HEADING not in page.text, page.text
    assert await stored_bot_token(redis, "T0FIRST") is not None


async def assert_refused(page: Page, reason: str, redis: RedisClient) -> None:
    """A failure page naming `reason`, and no installation in Redis."""
    assert FAILURE_HEADING in page.text and reason in page.text, page.text
    assert await stored_bot_token(redis, "T0FIRST") is None
    assert not [key async for key in redis.scan_iter(match="*:installations")]


async def test_a_redirect_without_state_is_refused(oauth_bot: BotProcess, slack: FakeSlack, redis: RedisClient) -> None:
    """A redirect that lost its state fails the browser check and installs nothing."""
    slack.add_workspace("T0FIRST")
    link, cookie = await open_install_page(oauth_bot)
    redirect = await slack_redirect(slack, link, "T0FIRST")
    code = parse_qs(urlsplit(redirect).query)["code"][0]
    page = await browse(f"{oauth_bot.url}{REDIRECT_PATH}?code={code}", cookie)
    assert page.status == 400
    await assert_refused(page, "invalid_browser", redis)


async def test_a_redirect_without_the_cookie_is_refused(
    oauth_bot: BotProcess, slack: FakeSlack, redis: RedisClient
) -> None:
    """A redirect opened in another browser (no state cookie) installs nothing, and leaves the state unused."""
    slack.add_workspace("T0FIRST")
    link, cookie = await open_install_page(oauth_bot)
    page = await browse(await slack_redirect(slack, link, "T0FIRST"))
    assert page.status == 400
    await assert_refused(page, "invalid_browser", redis)
    assert await redis.exists(keys.oauth_state(cookie)) == 1


async def test_a_reused_state_is_refused(oauth_bot: BotProcess, slack: FakeSlack, redis: RedisClient) -> None:
    """Replaying a completed redirect (same state and cookie) is refused: a state is good once."""
    slack.add_workspace("T0FIRST")
    link, cookie = await open_install_page(oauth_bot)
    redirect = await slack_redirect(slack, link, "T0FIRST")
    assert (await browse(redirect, cookie)).status == 200
    await redis.delete(keys.installations("T0FIRST"))  # so that "nothing stored" speaks of the replay
    page = await browse(redirect, cookie)
    assert page.status == 401
    await assert_refused(page, "invalid_state", redis)


async def test_an_expired_state_is_refused(oauth_bot: BotProcess, slack: FakeSlack, redis: RedisClient) -> None:
    """A state past its lifetime (its key expired in Redis) is refused."""
    slack.add_workspace("T0FIRST")
    link, cookie = await open_install_page(oauth_bot)
    redirect = await slack_redirect(slack, link, "T0FIRST")
    assert await redis.ttl(keys.oauth_state(cookie)) > 0
    await redis.delete(keys.oauth_state(cookie))  # what its TTL does ten minutes on
    page = await browse(redirect, cookie)
    assert page.status == 401
    await assert_refused(page, "invalid_state", redis)


async def test_a_forged_state_is_refused(oauth_bot: BotProcess, slack: FakeSlack, redis: RedisClient) -> None:
    """A state the bot never issued is refused, even with a cookie that matches it."""
    slack.add_workspace("T0FIRST")
    link, _cookie = await open_install_page(oauth_bot)
    redirect = await slack_redirect(slack, link, "T0FIRST")
    code = parse_qs(urlsplit(redirect).query)["code"][0]
    page = await browse(f"{oauth_bot.url}{REDIRECT_PATH}?code={code}&state=forged", "forged")
    assert page.status == 401
    await assert_refused(page, "invalid_state", redis)


async def test_a_cancelled_install_is_refused(oauth_bot: BotProcess, slack: FakeSlack, redis: RedisClient) -> None:
    """Cancel on Slack's screen comes back as error=access_denied: a failure page, nothing stored, one log line."""
    slack.add_workspace("T0FIRST")
    link, cookie = await open_install_page(oauth_bot)
    redirect = await slack_redirect(slack, link, "T0FIRST", approve=False)
    page = await browse(redirect, cookie)
    await assert_refused(page, "access_denied", redis)
    assert "an OAuth install was refused (Slack said 'access_denied')" in oauth_bot.output()


async def test_one_workspace_mode_has_no_install_pages(make_bot: BotFactory) -> None:
    """With SLACK_BOT_TOKEN the bot serves no install or redirect page, as before."""
    bot = make_bot()
    await bot.start()
    for path in (INSTALL_PATH, REDIRECT_PATH):
        assert (await browse(bot.url + path)).status == 404
