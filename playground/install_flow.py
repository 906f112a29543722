"""Installing the app in a workspace the way a person's browser does it, for the playground.

The bot's /slack/install page hands out an Add-to-Slack link and a state cookie; Slack's authorize page (the
emulator's) sends the browser back to the bot's Redirect URL with a code, or with error=access_denied when the
person clicks Cancel; the redirect brings the cookie along. The bot sees an ordinary install: it checks the state
against its cookie and Redis, and exchanges the code with oauth.v2.access as it would on slack.com.
"""

from __future__ import annotations

import asyncio
import html
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import aiohttp

from .slack import FakeSlack

INSTALL_PATH = "/slack/install"
STATE_COOKIE = "slack-app-oauth-state"  # Bolt's default cookie name
_LINK = re.compile(r'href="([^"]*/oauth/v2/authorize\?[^"]*)"')
_TIMEOUT = aiohttp.ClientTimeout(total=10)


class InstallFailed(Exception):
    """The install could not go on: the bot or Slack did not answer as they should. Its text is for the person."""


@dataclass(frozen=True)
class PendingInstall:
    """An install waiting on Slack's authorize page: the link the bot's install page gave and its state cookie."""

    team_id: str
    link: str
    cookie: str

    @property
    def scopes(self) -> list[str]:
        """The bot scopes the app asks for, as Slack's authorize page lists them."""
        scope = parse_qs(urlsplit(self.link).query).get("scope", [""])[0]
        return [name for name in scope.split(",") if name]


@dataclass(frozen=True)
class InstallOutcome:
    """How the redirect back to the bot ended: installed, or why not (the bot's failure page's reason)."""

    installed: bool
    status: int
    detail: str


@dataclass(frozen=True)
class _Page:
    status: int
    text: str
    location: str | None
    cookies: dict[str, str]


class BrowserInstall:
    """Drives installs against the bot at `bot_url` as the person `user_id`, signed in to Slack, would click them."""

    def __init__(self, slack: FakeSlack, bot_url: str, user_id: str) -> None:
        self._slack = slack
        self._bot_url = bot_url.rstrip("/")
        self._user_id = user_id
        self._session: aiohttp.ClientSession | None = None
        # The emulator has one browser, signed in as one user at a time: an answer signs in and opens the
        # authorize link in one go, so that two answers at once cannot swap workspaces.
        self._browser = asyncio.Lock()

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()

    async def open_install_page(self, team_id: str) -> PendingInstall:
        """GET the bot's install page: its Add-to-Slack link and the state cookie it set."""
        page = await self._get(f"{self._bot_url}{INSTALL_PATH}")
        found = _LINK.search(page.text)
        # Bolt renders a page with the link; configured not to, it redirects to Slack at once.
        link = html.unescape(found.group(1)) if found is not None else page.location
        cookie = page.cookies.get(STATE_COOKIE)
        if link is None or cookie is None:
            raise InstallFailed(f"the bot's install page gave no Add to Slack link and state (HTTP {page.status})")
        return PendingInstall(team_id, link, cookie)

    async def install(self, team_id: str) -> InstallOutcome:
        """The whole install into `team_id`, Allow clicked: what `make dev` does for the first workspace."""
        return await self.answer(await self.open_install_page(team_id), approve=True)

    async def answer(self, pending: PendingInstall, *, approve: bool) -> InstallOutcome:
        """Click Allow (or Cancel) on Slack's authorize page, then follow Slack's redirect back to the bot."""
        async with self._browser:
            self._slack.sign_in(pending.team_id, self._user_id, approve=approve)
            authorize = await self._get(pending.link)
        if authorize.status != 302 or authorize.location is None:
            # Slack's error page (bad client id, scopes or redirect URL): the browser never goes back to the app.
            raise InstallFailed(f"Slack refused the install: {_plain(authorize.text)}")
        back = await self._get(authorize.location, cookie=pending.cookie)
        # Bolt answers a cancelled install (error=access_denied) with its failure page and HTTP 200, so the status
        # alone does not tell; the emulator marks the workspace installed only once the bot exchanged the code.
        cancelled = "error" in parse_qs(urlsplit(authorize.location).query)
        installed = back.status == 200 and not cancelled and self._slack.workspaces[pending.team_id].installed
        return InstallOutcome(installed, back.status, _plain(back.text))

    async def _get(self, url: str, *, cookie: str | None = None) -> _Page:
        """GET `url` without following redirects. The state cookie is sent by hand: Bolt marks it Secure, which a
        browser sends to localhost over plain HTTP but aiohttp's cookie jar keeps for HTTPS."""
        if self._session is None:
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), timeout=_TIMEOUT)
        headers = {"Cookie": f"{STATE_COOKIE}={cookie}"} if cookie is not None else {}
        try:
            async with self._session.get(url, headers=headers, allow_redirects=False) as response:
                cookies = {name: morsel.value for name, morsel in response.cookies.items()}
                return _Page(response.status, await response.text(), response.headers.get("Location"), cookies)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise InstallFailed(f"{urlsplit(url).netloc} did not answer ({exc.__class__.__name__}); try again") from exc


def _plain(page: str) -> str:
    """A page's text without its markup, cut short: what a person would read on it."""
    text = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.DOTALL | re.IGNORECASE)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())[:300]
