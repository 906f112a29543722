"""The emulator's Enterprise Grid org-wide install, driven through the real slack_sdk and slack_bolt as an app would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import aiohttp
import pytest
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store import FileInstallationStore
from slack_sdk.oauth.state_store import FileOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from playground.slack_oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from tests.fakes import FakeSlack

# slack_sdk's async oauth_v2_access hands aiohttp a BasicAuth, which aiohttp now deprecates (see test_slack_oauth).
pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")

REDIRECT = "https://bot.example.com/slack/oauth_redirect"
SCOPES = "app_mentions:read,chat:write"
ORG, ADMIN = "E0ORG", "W0ADMIN"
EAST, WEST = "T0EAST", "T0WEST"


@pytest.fixture
async def grid() -> AsyncIterator[FakeSlack]:
    """An emulator whose app is enabled for org-wide deployment, with an org of two workspaces."""
    async with FakeSlack(org_deploy_enabled=True) as fake:
        add_org(fake)
        yield fake


@pytest.fixture
async def rotating_grid() -> AsyncIterator[FakeSlack]:
    """The same org, the app with token rotation on."""
    async with FakeSlack(org_deploy_enabled=True, token_rotation=True) as fake:
        add_org(fake)
        yield fake


def add_org(fake: FakeSlack) -> None:
    """Org E0ORG ("Acme") with admin W0ADMIN and workspaces T0EAST and T0WEST."""
    fake.add_enterprise(ORG, "Acme", admins=[ADMIN], bot_user_id="W0ORGBOT", bot_id="B0ORGBOT")
    fake.add_workspace(EAST, team_name="East", enterprise_id=ORG)
    fake.add_workspace(WEST, team_name="West", enterprise_id=ORG)


async def exchange(fake: FakeSlack, code: str | None) -> dict[str, object]:
    """oauth.v2.access for `code` through slack_sdk, as the app's redirect handler calls it."""
    answer = await AsyncWebClient(base_url=fake.api_url).oauth_v2_access(
        client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET, code=code, redirect_uri=REDIRECT
    )
    return answer.data  # type: ignore[return-value]  # oauth.v2.access always answers a JSON object


async def install_org(fake: FakeSlack, *, user_scopes: str = "") -> dict[str, object]:
    """An org admin installs the app org-wide; oauth.v2.access's answer."""
    redirect = fake.authorize_org(ORG, ADMIN, SCOPES, REDIRECT, "st", user_scopes=user_scopes)
    return await exchange(fake, redirect.code)


def client(fake: FakeSlack, answer: dict[str, object]) -> AsyncWebClient:
    """A client holding the install's bot token."""
    return AsyncWebClient(token=str(answer["access_token"]), base_url=fake.api_url)


async def error_of(call: object) -> str:
    """The Slack error a Web API call fails with."""
    with pytest.raises(SlackApiError) as caught:
        await call  # type: ignore[misc]  # an awaitable slack_sdk call
    return str(caught.value.response["error"])


# ---------------------------------------------------------------------- the install


async def test_org_install_answers_slacks_org_shape(grid: FakeSlack) -> None:
    """oauth.v2.access of an org-wide install: team null, the enterprise, is_enterprise_install true, the org's bot."""
    answer = await install_org(grid)
    token = answer.pop("access_token")
    assert isinstance(token, str) and token.startswith("xoxb-")
    assert answer == {
        "ok": True,
        "app_id": grid.app_id,
        "team": None,
        "enterprise": {"id": ORG, "name": "Acme"},
        "is_enterprise_install": True,
        "authed_user": {"id": ADMIN},
        "scope": SCOPES,
        "token_type": "bot",
        "bot_user_id": "W0ORGBOT",
    }
    assert grid.enterprises[ORG].installed and grid.org_teams(ORG) == []


async def test_org_install_with_user_scopes_and_rotation(rotating_grid: FakeSlack) -> None:
    """With rotation the org install's bot and user tokens expire and come with refresh tokens."""
    answer = await install_org(rotating_grid, user_scopes="search:read")
    assert str(answer["access_token"]).startswith("xoxe.xoxb-1-") and answer["expires_in"] == 43200
    user = answer["authed_user"]
    assert isinstance(user, dict) and str(user["access_token"]).startswith("xoxe.xoxp-1-")
    assert user["refresh_token"] != answer["refresh_token"]


async def test_org_token_refresh_answers_the_org(rotating_grid: FakeSlack) -> None:
    """Refreshing an org-wide token answers the org (team null, is_enterprise_install true) and a new token."""
    answer = await install_org(rotating_grid)
    refreshed = await AsyncWebClient(base_url=rotating_grid.api_url).oauth_v2_access(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        grant_type="refresh_token",
        refresh_token=str(answer["refresh_token"]),
    )
    assert (refreshed["team"], refreshed["enterprise"]["id"], refreshed["is_enterprise_install"]) == (None, ORG, True)
    assert refreshed["bot_user_id"] == "W0ORGBOT" and refreshed["access_token"] != answer["access_token"]
    assert (await client(rotating_grid, refreshed.data).auth_test())["is_enterprise_install"] is True  # type: ignore[arg-type]


@pytest.mark.parametrize("user_id", ["W0MEMBER", "U0ADMIN"])
async def test_only_an_org_admin_may_install_org_wide(grid: FakeSlack, user_id: str) -> None:
    """Anyone but the org's admins and owners is refused the org-wide install, and no code is issued."""
    with pytest.raises(PermissionError):
        grid.authorize_org(ORG, user_id, SCOPES, REDIRECT, "st")
    assert not grid.enterprises[ORG].installed


async def test_an_app_not_enabled_for_org_deployment_cannot_install_org_wide(slack: FakeSlack) -> None:
    """Without org_deploy_enabled (Slack's default), not even an org admin can install org-wide."""
    slack.add_enterprise(ORG, admins=[ADMIN])
    with pytest.raises(PermissionError, match="org_deploy_enabled"):
        slack.authorize_org(ORG, ADMIN, SCOPES, REDIRECT, "st")


async def test_cancelled_org_install_redirects_with_access_denied(grid: FakeSlack) -> None:
    """An admin cancelling the org-wide install gets error=access_denied, as for a workspace."""
    redirect = grid.authorize_org(ORG, ADMIN, SCOPES, REDIRECT, "s", approve=False)
    assert parse_qs(urlparse(redirect.url).query) == {"error": ["access_denied"], "state": ["s"]}


async def authorize_page(fake: FakeSlack) -> tuple[int, str]:
    """Open the fake's authorize page as a browser would: status and Location (or the page's text)."""
    query = {"client_id": DEFAULT_CLIENT_ID, "scope": SCOPES, "state": "st", "redirect_uri": REDIRECT}
    async with (
        aiohttp.ClientSession() as http,
        http.get(fake.authorize_url, params=query, allow_redirects=False) as resp,
    ):
        return resp.status, resp.headers.get("Location") or await resp.text()


async def test_authorize_page_installs_org_wide_for_a_signed_in_admin(grid: FakeSlack) -> None:
    """An admin choosing the whole org on the "Add to Slack" page gets a code that installs the app org-wide;
    a member choosing it gets an error page and no redirect."""
    grid.sign_in(EAST, "W0MEMBER", org_wide=True)
    status, page = await authorize_page(grid)
    assert status == 400 and "not an admin" in page
    grid.sign_in(EAST, ADMIN, org_wide=True)
    status, location = await authorize_page(grid)
    assert status == 302
    answer = await exchange(grid, parse_qs(urlparse(location).query)["code"][0])
    assert (answer["team"], answer["is_enterprise_install"]) == (None, True)


async def test_bolt_oauth_flow_stores_an_org_installation(grid: FakeSlack, tmp_path: Path) -> None:
    """Bolt's own OAuth flow turns the exchange into an org Installation: no team, the org, its URL and bot id."""
    redirect = grid.authorize_org(ORG, ADMIN, SCOPES, REDIRECT, "st")
    settings = AsyncOAuthSettings(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        scopes=SCOPES.split(","),
        redirect_uri=REDIRECT,
        installation_store=FileInstallationStore(base_dir=str(tmp_path / "installations")),
        state_store=FileOAuthStateStore(expiration_seconds=600, base_dir=str(tmp_path / "states")),
    )
    flow = AsyncOAuthFlow(client=AsyncWebClient(base_url=grid.api_url), settings=settings)
    installation = await flow.run_installation(str(redirect.code))
    assert installation is not None
    assert (installation.team_id, installation.enterprise_id, installation.is_enterprise_install) == (None, ORG, True)
    assert (installation.bot_id, installation.bot_user_id) == ("B0ORGBOT", "W0ORGBOT")
    assert installation.enterprise_url == "https://e0org.enterprise.slack.com/"


# ---------------------------------------------------------------------- where the token works


async def test_auth_test_with_the_org_token_names_the_org(grid: FakeSlack) -> None:
    """auth.test with an org-wide token answers the org in place of a workspace, and is_enterprise_install true."""
    me = await client(grid, await install_org(grid)).auth_test()
    assert (me["team_id"], me["enterprise_id"], me["is_enterprise_install"], me["team"]) == (ORG, ORG, True, "Acme")
    assert (me["user_id"], me["bot_id"]) == ("W0ORGBOT", "B0ORGBOT")


async def test_org_token_works_only_in_workspaces_it_was_added_to(grid: FakeSlack) -> None:
    """Before an admin adds the app to a workspace the org token is team_access_not_granted there; after, it posts."""
    web = client(grid, await install_org(grid))
    assert await error_of(web.chat_postMessage(channel="C1", text="hi", team_id=EAST)) == "team_access_not_granted"
    grid.grant_team_access(ORG, [EAST])
    posted = await web.chat_postMessage(channel="C1", text="hi", team_id=EAST)
    assert posted["message"]["bot_id"] == "B0ORGBOT" and posted["message"]["team"] == EAST
    assert await error_of(web.chat_postMessage(channel="C1", text="hi", team_id=WEST)) == "team_access_not_granted"
    outside = grid.default_team_id  # a workspace of no org, or of another
    assert await error_of(web.chat_postMessage(channel="C1", text="hi", team_id=outside)) == "team_access_not_granted"
    assert [c.method for c in grid.calls_from(EAST)] == ["chat.postMessage"]


async def test_org_token_acts_in_the_workspace_holding_the_channel(grid: FakeSlack) -> None:
    """Without team_id, an org token's call acts in the workspace whose channel it names (channel ids are unique
    across an org); a channel of a workspace the app was not added to is channel_not_found."""
    web = client(grid, await install_org(grid))
    grid.grant_team_access(ORG)
    with grid.as_workspace(WEST):
        parent = grid.add_message("CWEST", "west's question")
    with grid.as_workspace(EAST):
        grid.add_message("CEAST", "east's question")
    await web.chat_postMessage(channel="CWEST", thread_ts=parent, text="answer")
    with grid.as_workspace(WEST):
        assert [m["text"] for m in grid.bot_replies("CWEST", parent)] == ["answer"]
    grid.revoke_team_access(ORG, [EAST])
    assert await error_of(web.conversations_history(channel="CEAST")) == "channel_not_found"
    # Two workspaces could hold a new channel: the call has to say which.
    grid.grant_team_access(ORG, [EAST])
    assert await error_of(web.chat_postMessage(channel="CNEW", text="hi")) == "channel_not_found"


async def test_a_workspace_token_does_not_work_in_another_workspace(grid: FakeSlack) -> None:
    """A team-level token acts in its own workspace whatever team_id says, and opens only its own files."""
    redirect = grid.authorize(EAST, "W0EASTER", SCOPES, REDIRECT, "st")
    east = client(grid, await exchange(grid, redirect.code))
    assert (await east.auth_test())["is_enterprise_install"] is False
    await east.chat_postMessage(channel="C1", text="from east", team_id=WEST)
    assert [c.team_id for c in grid.calls if c.method == "chat.postMessage"] == [EAST]
    with grid.as_workspace(WEST):
        west_file = grid.add_file("west.txt", b"west's notes", mimetype="text/plain")
    assert await fetch_file(west_file["url_private"], str(east.token)) != b"west's notes"


async def fetch_file(url: str, token: str) -> bytes:
    """A file's private URL fetched with `token`."""
    async with aiohttp.ClientSession() as http, http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
        return await resp.read()


async def test_org_token_opens_files_of_the_workspaces_it_was_added_to(grid: FakeSlack) -> None:
    """A file's private URL answers the org token in a workspace the app was added to, not in another."""
    token = str((await install_org(grid))["access_token"])
    grid.grant_team_access(ORG, [EAST])
    with grid.as_workspace(EAST):
        east_file = grid.add_file("east.txt", b"east's notes", mimetype="text/plain")
    with grid.as_workspace(WEST):
        west_file = grid.add_file("west.txt", b"west's notes", mimetype="text/plain")
    assert await fetch_file(east_file["url_private"], token) == b"east's notes"
    assert await fetch_file(west_file["url_private"], token) != b"west's notes"


# ---------------------------------------------------------------------- what Slack sends


async def test_events_of_an_org_installed_workspace_carry_the_org_authorization(grid: FakeSlack) -> None:
    """An event in a workspace the org-wide app was added to names the workspace and the org; its authorization is
    the org install's (team_id null, is_enterprise_install true, the org's bot user)."""
    await install_org(grid)
    grid.grant_team_access(ORG, [EAST])
    with grid.as_workspace(EAST):
        envelope = grid.post_user_message("C1", "<@W0ORGBOT> hello", user="W0ALICE", mention=True)
    assert (envelope["team_id"], envelope["enterprise_id"]) == (EAST, ORG)
    assert (envelope["context_team_id"], envelope["context_enterprise_id"]) == (EAST, ORG)
    assert envelope["authorizations"] == [
        {"enterprise_id": ORG, "team_id": None, "user_id": "W0ORGBOT", "is_bot": True, "is_enterprise_install": True}
    ]
    assert envelope["is_ext_shared_channel"] is False
    assert envelope["event"]["team"] == EAST


async def test_bolt_reads_an_org_install_from_the_envelope(grid: FakeSlack) -> None:
    """Bolt's request context finds the org, no team and is_enterprise_install in the fake's envelope, as it must
    to look up the org's installation."""
    await install_org(grid)
    grid.grant_team_access(ORG, [EAST])
    with grid.as_workspace(EAST):
        envelope = grid.post_user_message("C1", "<@W0ORGBOT> hello", user="W0ALICE", mention=True)
    context = AsyncBoltRequest(body=json.dumps(envelope), headers={"content-type": ["application/json"]}).context
    assert (context.enterprise_id, context.team_id, context.is_enterprise_install) == (ORG, None, True)


async def test_a_workspace_install_in_an_org_is_not_an_org_install(grid: FakeSlack) -> None:
    """In a Grid workspace with a team-level install, events name the org but authorize the workspace."""
    await exchange(grid, grid.authorize(WEST, "W0WESTER", SCOPES, REDIRECT, "st").code)
    with grid.as_workspace(WEST):
        envelope = grid.post_user_message("C1", "hello", user="W0BOB")
    authorization = envelope["authorizations"][0]
    assert (authorization["team_id"], authorization["enterprise_id"], authorization["is_enterprise_install"]) == (
        WEST,
        ORG,
        False,
    )


async def test_commands_and_clicks_of_an_org_install_name_the_org(grid: FakeSlack) -> None:
    """Slash commands and button clicks in an org-installed workspace: is_enterprise_install true, the enterprise,
    team null in block_actions (the workspace only in user.team_id), response_urls under the org's id that work."""
    web = client(grid, await install_org(grid))
    grid.grant_team_access(ORG, [EAST])
    with grid.as_workspace(EAST):
        command = grid.slash_command("/agent", "status", channel="C1", user="W0ALICE")
    assert (command["team_id"], command["enterprise_id"], command["enterprise_name"]) == (EAST, ORG, "Acme")
    assert command["is_enterprise_install"] == "true" and f"/commands/{ORG}/" in command["response_url"]
    blocks = [
        {
            "type": "actions",
            "elements": [{"type": "button", "action_id": "go", "text": {"type": "plain_text", "text": "Go"}}],
        }
    ]
    posted = await web.chat_postMessage(channel="C1", text="pick", blocks=blocks, team_id=EAST)
    with grid.as_workspace(EAST):
        click = grid.click_button("C1", posted["ts"], "go", user="W0ALICE")
    assert (click["team"], click["enterprise"], click["is_enterprise_install"]) == (
        None,
        {"id": ORG, "name": "Acme"},
        True,
    )
    assert click["user"]["team_id"] == EAST and f"/actions/{ORG}/" in click["response_url"]
    async with aiohttp.ClientSession() as http, http.post(click["response_url"], json={"text": "done"}) as resp:
        assert resp.status == 200


async def test_grid_workspace_commands_without_an_org_install(grid: FakeSlack) -> None:
    """A Grid workspace's own install: commands name the org but is_enterprise_install is "false"; block_actions
    carry the team with its enterprise."""
    await exchange(grid, grid.authorize(WEST, "W0WESTER", SCOPES, REDIRECT, "st").code)
    with grid.as_workspace(WEST):
        command = grid.slash_command("/agent", "status", channel="C1")
        click, _ = grid.click_ephemeral_button("go", "1", channel="C1", user="W0BOB")
    assert (command["enterprise_id"], command["is_enterprise_install"]) == (ORG, "false")
    assert f"/commands/{WEST}/" in command["response_url"]
    assert click["team"] == {"id": WEST, "domain": "fake-team", "enterprise_id": ORG, "enterprise_name": "Acme"}
    assert click["is_enterprise_install"] is False


async def test_team_access_events_have_slacks_shape(grid: FakeSlack) -> None:
    """team_access_granted/revoked name the org only (team_id null, no authorizations) and list the workspaces."""
    await install_org(grid)
    granted = grid.grant_team_access(ORG)
    assert {k: v for k, v in granted.items() if k not in ("event_id", "event_time", "token")} == {
        "team_id": None,
        "enterprise_id": ORG,
        "api_app_id": grid.app_id,
        "type": "event_callback",
        "event": {"type": "team_access_granted", "team_ids": [EAST, WEST], "event_ts": granted["event"]["event_ts"]},
    }
    assert grid.org_teams(ORG) == [EAST, WEST]
    revoked = grid.revoke_team_access(ORG, [WEST])
    assert revoked["event"]["type"] == "team_access_revoked" and revoked["event"]["team_ids"] == [WEST]
    with pytest.raises(ValueError):
        grid.revoke_team_access(ORG, [WEST])
    with pytest.raises(ValueError):
        grid.grant_team_access(ORG, [grid.default_team_id])


async def test_access_needs_an_org_install(grid: FakeSlack) -> None:
    """Workspaces cannot be given an org-wide app that is not installed on the org."""
    with pytest.raises(LookupError):
        grid.grant_team_access(ORG)


# ---------------------------------------------------------------------- leaving


async def test_org_uninstall_revokes_the_install_and_sends_org_events(grid: FakeSlack) -> None:
    """Uninstalling from the org: it leaves its workspaces (team_access_revoked), every token of the install is
    token_revoked, and app_uninstalled and tokens_revoked name only the org."""
    answer = await install_org(grid, user_scopes="search:read")
    grid.grant_team_access(ORG, [EAST])
    user_token = str(answer["authed_user"]["access_token"])  # type: ignore[index]
    left, uninstalled, revoked = grid.uninstall_org(ORG)
    assert (left["event"]["type"], left["event"]["team_ids"]) == ("team_access_revoked", [EAST])
    assert uninstalled["event"] == {"type": "app_uninstalled"}
    assert revoked["event"] == {"type": "tokens_revoked", "tokens": {"oauth": [ADMIN], "bot": ["W0ORGBOT"]}}
    for envelope in (uninstalled, revoked):
        assert (envelope["team_id"], envelope["enterprise_id"], "authorizations" in envelope) == (None, ORG, False)
    assert await error_of(client(grid, answer).auth_test()) == "token_revoked"
    assert await error_of(AsyncWebClient(token=user_token, base_url=grid.api_url).auth_test()) == "token_revoked"
    assert grid.org_teams(ORG) == [] and not grid.enterprises[ORG].installed
    with pytest.raises(LookupError):
        grid.uninstall_org(ORG)


async def test_org_uninstall_spends_refresh_tokens_and_a_reinstall_gets_new_ones(rotating_grid: FakeSlack) -> None:
    """After an org uninstall the refresh token is refused; installing again issues a fresh token that works."""
    answer = await install_org(rotating_grid)
    rotating_grid.uninstall_org(ORG)
    refresh = AsyncWebClient(base_url=rotating_grid.api_url).oauth_v2_access(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        grant_type="refresh_token",
        refresh_token=str(answer["refresh_token"]),
    )
    assert await error_of(refresh) == "invalid_refresh_token"
    again = await install_org(rotating_grid)
    assert again["access_token"] != answer["access_token"]
    assert (await client(rotating_grid, again).auth_test())["team_id"] == ORG
