"""The emulator's workspaces and OAuth v2 install, driven through the real slack_sdk client as an app would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlparse

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from playground.slack_oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from tests.fakes import FakeSlack

# slack_sdk's async oauth_v2_access hands aiohttp a BasicAuth, which aiohttp now deprecates; the header it
# sends is still the one Slack documents, and that is what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")

REDIRECT = "https://bot.example.com/slack/oauth_redirect"
SCOPES = "app_mentions:read,chat:write"


@pytest.fixture
def web(slack: FakeSlack) -> AsyncWebClient:
    """A client with no token, as an app holds one before the exchange."""
    return AsyncWebClient(base_url=slack.api_url)


@pytest.fixture
async def rotating() -> AsyncIterator[FakeSlack]:
    """An emulator whose app has token rotation turned on."""
    async with FakeSlack(token_rotation=True) as fake:
        yield fake


async def install(slack: FakeSlack, team_id: str, *, user_scopes: str = "") -> dict[str, object]:
    """Authorize and exchange the code with slack_sdk, returning oauth.v2.access's answer."""
    if team_id not in slack.workspaces:
        slack.add_workspace(team_id, team_name=f"Team {team_id}")
    redirect = slack.authorize(team_id, "U0ADMIN", SCOPES, REDIRECT, "st-1", user_scopes=user_scopes)
    assert redirect.code is not None
    web = AsyncWebClient(base_url=slack.api_url)
    answer = await web.oauth_v2_access(
        client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET, code=redirect.code, redirect_uri=REDIRECT
    )
    return answer.data  # type: ignore[return-value]  # oauth.v2.access always answers a JSON object


async def test_authorize_redirects_with_a_code_and_the_state(slack: FakeSlack) -> None:
    """Allowing the install sends the browser to the redirect URI with a code and the app's state."""
    slack.add_workspace("T0SECOND")
    redirect = slack.authorize("T0SECOND", "U0ADMIN", ["chat:write"], REDIRECT, "state-42")
    query = parse_qs(urlparse(redirect.url).query)
    assert redirect.url.startswith(REDIRECT + "?")
    assert query == {"code": [redirect.code], "state": ["state-42"]}


async def test_authorize_cancelled_redirects_with_access_denied(slack: FakeSlack) -> None:
    """Cancelling the install sends error=access_denied and the state, and no code."""
    slack.add_workspace("T0SECOND")
    redirect = slack.authorize("T0SECOND", "U0ADMIN", SCOPES, REDIRECT, "s", approve=False)
    assert parse_qs(urlparse(redirect.url).query) == {"error": ["access_denied"], "state": ["s"]}
    assert redirect.code is None


async def test_exchange_answers_slacks_documented_shape(slack: FakeSlack) -> None:
    """oauth.v2.access returns the bot token with the workspace, app and installing user, and no rotation fields."""
    slack.add_workspace("T0SECOND", team_name="Second", bot_user_id="U0BOT2", bot_id="B0BOT2")
    answer = await install(slack, "T0SECOND")
    token = answer.pop("access_token")
    assert isinstance(token, str) and token.startswith("xoxb-")
    assert answer == {
        "ok": True,
        "app_id": slack.app_id,
        "team": {"id": "T0SECOND", "name": "Second"},
        "enterprise": None,
        "is_enterprise_install": False,
        "authed_user": {"id": "U0ADMIN"},
        "scope": SCOPES,
        "token_type": "bot",
        "bot_user_id": "U0BOT2",
    }
    assert slack.workspaces["T0SECOND"].installed


async def test_exchange_with_user_scopes_gives_a_user_token(slack: FakeSlack) -> None:
    """User scopes asked at authorize add a user token to authed_user."""
    answer = await install(slack, "T0SECOND", user_scopes="search:read")
    user = answer["authed_user"]
    assert isinstance(user, dict) and user["token_type"] == "user" and user["scope"] == "search:read"
    assert str(user["access_token"]).startswith("xoxp-")


async def test_enterprise_workspace_names_its_org(slack: FakeSlack) -> None:
    """A workspace of an Enterprise Grid org is installed with its enterprise object, and auth.test names it."""
    slack.add_workspace("T0GRID", enterprise_id="E0ORG", enterprise_name="Org")
    answer = await install(slack, "T0GRID")
    assert answer["enterprise"] == {"id": "E0ORG", "name": "Org"}
    me = await AsyncWebClient(token=str(answer["access_token"]), base_url=slack.api_url).auth_test()
    assert me["enterprise_id"] == "E0ORG"


async def test_client_credentials_in_form_fields_work(slack: FakeSlack) -> None:
    """Slack also takes client_id and client_secret as form fields instead of HTTP Basic."""
    slack.add_workspace("T0SECOND")
    redirect = slack.authorize("T0SECOND", "U0ADMIN", SCOPES, REDIRECT, "s")
    form = {
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "code": redirect.code or "",
        "redirect_uri": REDIRECT,
    }
    async with aiohttp.ClientSession() as http, http.post(slack.api_url + "oauth.v2.access", data=form) as resp:
        body = await resp.json()
    assert body["ok"] is True and body["team"]["id"] == "T0SECOND"
    assert slack.calls[-1].headers.get("authorization") is None


@pytest.mark.parametrize(
    ("client_id", "client_secret", "error"),
    [
        ("9999.9999", DEFAULT_CLIENT_SECRET, "invalid_client_id"),
        ("", "", "invalid_client_id"),
        (DEFAULT_CLIENT_ID, "wrong", "bad_client_secret"),
    ],
)
async def test_exchange_refuses_wrong_client_credentials(
    slack: FakeSlack, web: AsyncWebClient, client_id: str, client_secret: str, error: str
) -> None:
    """A wrong client id or secret is refused before the code is looked at, and the code stays usable."""
    slack.add_workspace("T0SECOND")
    redirect = slack.authorize("T0SECOND", "U0ADMIN", SCOPES, REDIRECT, "s")
    with pytest.raises(SlackApiError) as caught:
        await web.oauth_v2_access(
            client_id=client_id, client_secret=client_secret, code=redirect.code, redirect_uri=REDIRECT
        )
    assert caught.value.response["error"] == error
    assert not slack.workspaces["T0SECOND"].installed


async def test_exchange_refuses_bad_codes_and_redirects(slack: FakeSlack, web: AsyncWebClient) -> None:
    """Unknown, reused and expired codes and a changed redirect_uri are each refused with Slack's error."""
    slack.add_workspace("T0SECOND")
    now = [1000.0]
    slack.clock = lambda: now[0]

    async def exchange(code: str | None, redirect_uri: str | None = REDIRECT) -> str:
        try:
            await web.oauth_v2_access(
                client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET, code=code, redirect_uri=redirect_uri
            )
        except SlackApiError as exc:
            return str(exc.response["error"])
        return "ok"

    code = slack.authorize("T0SECOND", "U0ADMIN", SCOPES, REDIRECT, "s").code
    assert await exchange("made-up") == "invalid_code"
    assert await exchange(None) == "invalid_code"
    assert await exchange(code, REDIRECT + "/other") == "bad_redirect_uri"
    assert await exchange(code, None) == "bad_redirect_uri"
    assert await exchange(code) == "ok"
    assert await exchange(code) == "code_already_used"
    late = slack.authorize("T0SECOND", "U0ADMIN", SCOPES, REDIRECT, "s").code
    now[0] += 10 * 60
    assert await exchange(late) == "invalid_code"


async def test_unknown_grant_type_is_refused(slack: FakeSlack, web: AsyncWebClient) -> None:
    """A grant_type other than authorization_code or refresh_token is invalid_grant_type."""
    with pytest.raises(SlackApiError, match="invalid_grant_type"):
        await web.oauth_v2_access(
            client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET, grant_type="password"
        )


async def test_auth_test_answers_for_each_tokens_workspace(slack: FakeSlack) -> None:
    """auth.test names the workspace and bot of the token it was called with, and calls record the workspace."""
    slack.add_workspace("T0SECOND", team_name="Second", bot_user_id="U0BOT2", bot_id="B0BOT2")
    token = str((await install(slack, "T0SECOND"))["access_token"])
    second = await AsyncWebClient(token=token, base_url=slack.api_url).auth_test()
    default = await AsyncWebClient(token=slack.bot_token, base_url=slack.api_url).auth_test()
    assert (second["team_id"], second["user_id"], second["bot_id"], second["team"]) == (
        "T0SECOND",
        "U0BOT2",
        "B0BOT2",
        "Second",
    )
    assert (default["team_id"], default["user_id"], default["bot_id"]) == ("T0TEAM", "U0BOT", "B0BOT")
    assert [c.token for c in slack.calls_from("T0SECOND")] == [token]
    assert [c.method for c in slack.calls_from("T0TEAM")] == ["auth.test"]


async def test_reinstall_without_rotation_keeps_the_bot_token(slack: FakeSlack) -> None:
    """Installing again into a workspace that still has the app returns the same bot token."""
    first = await install(slack, "T0SECOND")
    again = await install(slack, "T0SECOND")
    assert first["access_token"] == again["access_token"]


async def test_uninstall_revokes_tokens_and_returns_slacks_events(slack: FakeSlack) -> None:
    """Uninstalling revokes the workspace's tokens (token_revoked) and returns app_uninstalled and tokens_revoked."""
    slack.add_workspace("T0SECOND", bot_user_id="U0BOT2")
    answer = await install(slack, "T0SECOND", user_scopes="search:read")
    bot_token = str(answer["access_token"])
    uninstalled, revoked = slack.uninstall("T0SECOND")
    assert (uninstalled["type"], uninstalled["team_id"], uninstalled["api_app_id"]) == (
        "event_callback",
        "T0SECOND",
        slack.app_id,
    )
    assert uninstalled["event"] == {"type": "app_uninstalled"}
    assert revoked["event"] == {"type": "tokens_revoked", "tokens": {"oauth": ["U0ADMIN"], "bot": ["U0BOT2"]}}
    assert revoked["team_id"] == "T0SECOND" and revoked["event_id"] != uninstalled["event_id"]
    with pytest.raises(SlackApiError, match="token_revoked"):
        await AsyncWebClient(token=bot_token, base_url=slack.api_url).auth_test()
    assert (await AsyncWebClient(token=slack.bot_token, base_url=slack.api_url).auth_test())["ok"] is True
    with pytest.raises(LookupError):
        slack.uninstall("T0SECOND")


async def test_reinstall_after_uninstall_gives_a_new_token(slack: FakeSlack) -> None:
    """After an uninstall, installing again issues a fresh bot token; the revoked one stays revoked."""
    first = str((await install(slack, "T0SECOND"))["access_token"])
    slack.uninstall("T0SECOND")
    second = str((await install(slack, "T0SECOND"))["access_token"])
    assert second != first
    assert (await AsyncWebClient(token=second, base_url=slack.api_url).auth_test())["team_id"] == "T0SECOND"
    assert slack.token_grant(first) is not None and slack.token_grant(first).revoked  # type: ignore[union-attr]


async def test_rotation_install_returns_expiring_tokens(rotating: FakeSlack) -> None:
    """With token rotation on, the install returns an xoxe.xoxb- token, a refresh token and expires_in 43200."""
    answer = await install(rotating, "T0SECOND")
    assert str(answer["access_token"]).startswith("xoxe.xoxb-1-")
    assert str(answer["refresh_token"]).startswith("xoxe-1-")
    assert answer["expires_in"] == 43200


async def test_refresh_rotates_and_the_old_token_expires(rotating: FakeSlack) -> None:
    """A refresh gives a new access and refresh token; the old access token works until its expiry, then
    token_expired; the spent refresh token is refused."""
    now = [0.0]
    rotating.clock = lambda: now[0]
    answer = await install(rotating, "T0SECOND")
    web = AsyncWebClient(base_url=rotating.api_url)
    refreshed = await web.oauth_v2_access(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        grant_type="refresh_token",
        refresh_token=str(answer["refresh_token"]),
    )
    assert refreshed["token_type"] == "bot" and refreshed["team"]["id"] == "T0SECOND"
    assert refreshed["access_token"] != answer["access_token"]
    assert refreshed["refresh_token"] != answer["refresh_token"]
    old = AsyncWebClient(token=str(answer["access_token"]), base_url=rotating.api_url)
    assert (await old.auth_test())["ok"] is True
    now[0] += 43200
    with pytest.raises(SlackApiError, match="token_expired"):
        await old.auth_test()
    with pytest.raises(SlackApiError, match="invalid_refresh_token"):
        await web.oauth_v2_access(
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            grant_type="refresh_token",
            refresh_token=str(answer["refresh_token"]),
        )


async def test_expire_access_tokens_forces_token_expired(rotating: FakeSlack) -> None:
    """expire_access_tokens makes the workspace's rotating tokens fail with token_expired at once."""
    answer = await install(rotating, "T0SECOND")
    rotating.expire_access_tokens("T0SECOND")
    with pytest.raises(SlackApiError, match="token_expired"):
        await AsyncWebClient(token=str(answer["access_token"]), base_url=rotating.api_url).auth_test()


async def test_refresh_without_rotation_is_refused(slack: FakeSlack, web: AsyncWebClient) -> None:
    """Without token rotation there are no refresh tokens: any is invalid_refresh_token."""
    await install(slack, "T0SECOND")
    with pytest.raises(SlackApiError, match="invalid_refresh_token"):
        await web.oauth_v2_access(
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            grant_type="refresh_token",
            refresh_token="xoxe-1-made-up",
        )


async def test_workspaces_keep_apart_channels_with_the_same_ids(slack: FakeSlack) -> None:
    """Two workspaces with the same channel and thread ids: each call reads and writes its own token's workspace."""
    slack.add_workspace("T0SECOND", bot_user_id="U0BOT2", bot_id="B0BOT2")
    second = AsyncWebClient(token=str((await install(slack, "T0SECOND"))["access_token"]), base_url=slack.api_url)
    first = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    parent = slack.add_message("C1", "first workspace", ts="1700000000.000100")
    with slack.as_workspace("T0SECOND") as workspace:
        envelope = slack.post_user_message("C1", "second workspace", mention=True)
        slack.add_message("C1", "second's parent", ts=parent)
    assert (envelope["team_id"], envelope["authorizations"][0]["user_id"]) == ("T0SECOND", workspace.bot_user_id)
    await second.chat_postMessage(channel="C1", thread_ts=parent, text="answer in the second")
    await first.chat_postMessage(channel="C1", thread_ts=parent, text="answer in the first")
    replies = await second.conversations_replies(channel="C1", ts=parent)
    assert [m["text"] for m in replies["messages"]] == ["second's parent", "answer in the second"]
    assert replies["messages"][1]["bot_id"] == "B0BOT2"
    assert [m["text"] for m in slack.bot_replies("C1", parent)] == ["answer in the first"]
    with slack.as_workspace("T0SECOND"):
        assert [m["text"] for m in slack.bot_replies("C1", parent)] == ["answer in the second"]


async def test_files_open_only_with_their_workspaces_bot_token(slack: FakeSlack) -> None:
    """A file's private URL answers a working bot token of its own workspace, not another workspace's."""
    slack.add_workspace("T0SECOND")
    second_token = str((await install(slack, "T0SECOND"))["access_token"])
    with slack.as_workspace("T0SECOND"):
        shared = slack.add_file("notes.txt", b"second's notes", mimetype="text/plain")

    async def fetch(token: str) -> bytes:
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http, http.get(shared["url_private"], headers=headers) as resp:
            return await resp.read()

    assert await fetch(second_token) == b"second's notes"
    assert await fetch(slack.bot_token) != b"second's notes"
    slack.uninstall("T0SECOND")
    assert await fetch(second_token) != b"second's notes"


async def follow_authorize(slack: FakeSlack, **params: str) -> tuple[int, str]:
    """Open the fake's authorize page as a browser would, without following the redirect: status and Location
    (or the page's text)."""
    query = {"client_id": DEFAULT_CLIENT_ID, "scope": SCOPES, "state": "st", **params}
    async with (
        aiohttp.ClientSession() as http,
        http.get(slack.authorize_url, params=query, allow_redirects=False) as resp,
    ):
        return resp.status, resp.headers.get("Location") or await resp.text()


async def test_authorize_page_redirects_the_signed_in_user(slack: FakeSlack) -> None:
    """The "Add to Slack" page sends the signed-in user back with a code the app can exchange, or access_denied."""
    slack.add_workspace("T0SECOND")
    slack.sign_in("T0SECOND", "U0ADMIN")
    status, location = await follow_authorize(slack, redirect_uri=REDIRECT)
    assert status == 302 and location.startswith(REDIRECT + "?")
    code = parse_qs(urlparse(location).query)["code"][0]
    answer = await AsyncWebClient(base_url=slack.api_url).oauth_v2_access(
        client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET, code=code, redirect_uri=REDIRECT
    )
    assert answer["team"]["id"] == "T0SECOND" and answer["authed_user"]["id"] == "U0ADMIN"
    slack.sign_in("T0SECOND", "U0ADMIN", approve=False)
    status, location = await follow_authorize(slack, redirect_uri=REDIRECT)
    assert parse_qs(urlparse(location).query) == {"error": ["access_denied"], "state": ["st"]}


async def test_authorize_page_uses_the_configured_redirect_url(slack: FakeSlack) -> None:
    """Without redirect_uri the browser goes to the app's first Redirect URL, and the exchange needs none."""
    slack.redirect_urls = [REDIRECT]
    slack.sign_in(slack.default_team_id, "U0ADMIN")
    status, location = await follow_authorize(slack)
    assert status == 302 and location.startswith(REDIRECT + "?")
    code = parse_qs(urlparse(location).query)["code"][0]
    answer = await AsyncWebClient(base_url=slack.api_url).oauth_v2_access(
        client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET, code=code
    )
    assert answer["ok"] is True


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"client_id": "9999.9999"}, "invalid_client_id"),
        ({"scope": ""}, "invalid_scope"),
        ({"redirect_uri": "https://evil.example.com/steal"}, "bad_redirect_uri"),
        ({}, "bad_redirect_uri"),  # no redirect_uri and none configured
    ],
)
async def test_authorize_page_refuses_bad_requests_without_redirecting(
    slack: FakeSlack, params: dict[str, str], error: str
) -> None:
    """A bad client id, no scopes or a redirect_uri outside the app's Redirect URLs gets an error page, no code."""
    if "redirect_uri" in params:
        slack.redirect_urls = [REDIRECT]
    slack.sign_in(slack.default_team_id, "U0ADMIN")
    status, page = await follow_authorize(slack, **params)
    assert status == 400 and error in page


async def test_authorize_page_needs_a_signed_in_user(slack: FakeSlack) -> None:
    """Nobody signed in to the browser: no redirect (Slack would show its sign-in page)."""
    status, page = await follow_authorize(slack, redirect_uri=REDIRECT)
    assert status == 400 and "not_signed_in" in page


async def test_uninstall_of_a_grid_workspace_names_its_org(slack: FakeSlack) -> None:
    """A Grid workspace's uninstall envelopes carry its enterprise id; a bot-only install revokes only "bot"."""
    slack.add_workspace("T0GRID", enterprise_id="E0ORG", bot_user_id="U0BOTG")
    await install(slack, "T0GRID")
    uninstalled, revoked = slack.uninstall("T0GRID")
    assert (uninstalled["enterprise_id"], uninstalled["authorizations"][0]["enterprise_id"]) == ("E0ORG", "E0ORG")
    assert revoked["event"]["tokens"] == {"bot": ["U0BOTG"]}


async def test_default_workspace_token_never_expires_even_with_rotation(rotating: FakeSlack) -> None:
    """The constructor's bot token stays what it was before workspaces: valid, whatever the clock says."""
    rotating.clock = lambda: 10.0**9
    me = await AsyncWebClient(token=rotating.bot_token, base_url=rotating.api_url).auth_test()
    assert me["team_id"] == rotating.default_team_id
