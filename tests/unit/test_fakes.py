"""Prove the test fakes speak the real wire formats by driving them with the real slack_sdk / anthropic clients."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anthropic
import pytest
from anthropic.types import (
    ImageBlockParam,
    MessageParam,
    RawContentBlockDeltaEvent,
    RawMessageDeltaEvent,
    TextBlock,
    TextDelta,
)
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from playground.payloads import format_ts, ts_to_micros
from tests.fakes import (
    LOGIN_PAGE,
    MAX_IMAGE_BASE64,
    MAX_IMAGES,
    MAX_REQUEST_BYTES,
    FakeAnthropic,
    FakeSlack,
    Reply,
    SlackDownload,
    app_mention_event,
    block_actions_form,
    block_actions_payload,
    button_element,
    event_envelope,
    filetype_for,
    message_event,
    new_ts,
    sign,
    signed_event_request,
    signed_form_request,
    slash_command_fields,
    slash_command_form,
    user_texts,
    wait_until,
)

SECRET = "shhh-signing-secret"
MODEL = "claude-test-model"


@pytest.fixture
def web(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
async def claude(fake_api: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=fake_api.base_url, api_key="test", max_retries=0) as client:
        yield client


def user_msg(text: str) -> list[MessageParam]:
    return [{"role": "user", "content": text}]


def text_of(block: object) -> str:
    assert isinstance(block, TextBlock), block
    return block.text


def bolt_request(body: str, headers: dict[str, str]) -> AsyncBoltRequest:
    bolt_headers: dict[str, str | Sequence[str]] = {**headers}
    return AsyncBoltRequest(body=body, headers=bolt_headers)


RequestListener = Callable[[AsyncBaseSocketModeClient, SocketModeRequest], Awaitable[None]]
MessageListener = Callable[[AsyncBaseSocketModeClient, dict[str, Any], str | None], Awaitable[None]]


@asynccontextmanager
async def socket_client(
    slack: FakeSlack, on_request: RequestListener | None = None, on_message: MessageListener | None = None
) -> AsyncIterator[SocketModeClient]:
    """Connect a real aiohttp SocketModeClient to the fake and always close it (it reconnects otherwise)."""
    client = SocketModeClient(app_token=slack.app_token, web_client=AsyncWebClient(base_url=slack.api_url))
    if on_request is not None:
        client.socket_mode_request_listeners.append(on_request)
    if on_message is not None:
        client.message_listeners.append(on_message)
    try:
        await client.connect()  # type: ignore[no-untyped-call]  # slack_sdk leaves connect() unannotated
        yield client
    finally:
        await client.close()  # type: ignore[no-untyped-call]


# ---------------------------------------------------------------------------------------------- Slack Web API


async def test_auth_test_returns_bot_identity(slack: FakeSlack, web: AsyncWebClient) -> None:
    """auth.test answers with the bot's ids and the scopes header, and the SDK sends the token as a Bearer header."""
    resp = await web.auth_test()
    assert (resp["team_id"], resp["user_id"], resp["bot_id"]) == ("T0TEAM", "U0BOT", "B0BOT")
    assert "chat:write" in resp.headers["x-oauth-scopes"]
    call = slack.calls[-1]
    assert (call.method, call.token, call.body_format) == ("auth.test", "xoxb-test", "query")
    assert call.headers["authorization"] == "Bearer xoxb-test"


async def test_post_message_is_sent_as_json_and_stored(slack: FakeSlack, web: AsyncWebClient) -> None:
    """chat.postMessage arrives as a JSON body and is stored as a bot message in the thread, metadata included."""
    parent = slack.add_message("C1", "hello <@U0BOT>", user="U1")
    meta = {"event_type": "agent_turn", "event_payload": {"turn": 1}}
    resp = await web.chat_postMessage(channel="C1", text="hi there", thread_ts=parent, metadata=meta, mrkdwn=True)
    assert resp["message"]["bot_id"] == "B0BOT" and resp["message"]["user"] == "U0BOT"
    assert resp["message"]["metadata"] == meta and resp["message"]["thread_ts"] == parent
    assert slack.calls[-1].body_format == "json" and slack.calls_to("chat.postMessage")[0]["mrkdwn"] is True
    [reply] = slack.bot_replies("C1", parent)
    assert reply["text"] == "hi there" and reply["ts"] == resp["ts"] and reply["parent_user_id"] == "U1"
    assert slack.thread("C1", parent)[0]["reply_count"] == 1


async def test_form_encoded_arguments_are_parsed(slack: FakeSlack) -> None:
    """Form bodies with the token as an argument and metadata as a JSON string are understood like JSON ones."""
    client = AsyncWebClient(base_url=slack.api_url)
    meta = {"event_type": "x", "event_payload": {"a": 1}}
    data = {"token": slack.bot_token, "channel": "C1", "text": "form", "metadata": json.dumps(meta)}
    resp = await client.api_call("chat.postMessage", data=data)
    assert resp["message"]["metadata"] == meta
    call = slack.calls[-1]
    assert (call.body_format, call.token, call.args["metadata"]) == ("form", "xoxb-test", meta)
    assert "token" not in call.args


async def test_token_errors(slack: FakeSlack) -> None:
    """Missing, unknown and wrong-kind tokens fail with not_authed, invalid_auth and not_allowed_token_type."""
    cases = [(None, "not_authed"), ("xoxb-wrong", "invalid_auth"), (slack.app_token, "not_allowed_token_type")]
    for token, error in cases:
        with pytest.raises(SlackApiError) as info:
            await AsyncWebClient(token=token, base_url=slack.api_url).auth_test()
        assert info.value.response["error"] == error
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        await AsyncWebClient(base_url=slack.api_url).apps_connections_open(app_token=slack.bot_token)


async def test_post_message_argument_errors(web: AsyncWebClient) -> None:
    """A post without a channel fails with channel_not_found and one without text or blocks with no_text."""
    with pytest.raises(SlackApiError, match="channel_not_found"):
        await web.chat_postMessage(channel="", text="x")
    # Raw api_call: chat_postMessage() itself emits a UserWarning when text is missing.
    with pytest.raises(SlackApiError, match="no_text"):
        await web.api_call("chat.postMessage", json={"channel": "C1"})


async def test_chat_update_edits_message_and_records_history(slack: FakeSlack, web: AsyncWebClient) -> None:
    """chat.update rewrites the stored text, keeps the edit history and rejects unknown or foreign messages."""
    posted = await web.chat_postMessage(channel="C1", text="thinking…")
    await web.chat_update(channel="C1", ts=posted["ts"], text="final answer")
    assert slack.messages("C1")[0]["text"] == "final answer" and "edited" in slack.messages("C1")[0]
    assert slack.updates[0]["previous_text"] == "thinking…" and slack.updates[0]["text"] == "final answer"
    with pytest.raises(SlackApiError, match="message_not_found"):
        await web.chat_update(channel="C1", ts="1.000001", text="x")
    human = slack.add_message("C1", "mine", user="U1")
    with pytest.raises(SlackApiError, match="cant_update_message"):
        await web.chat_update(channel="C1", ts=human, text="x")


async def test_chat_delete_removes_only_the_bots_messages(slack: FakeSlack, web: AsyncWebClient) -> None:
    """chat.delete removes the bot's own message, leaves a tombstone for a parent with replies, rejects the rest."""
    posted = await web.chat_postMessage(channel="C1", text="oops")
    resp = await web.chat_delete(channel="C1", ts=posted["ts"])
    assert (resp["channel"], resp["ts"]) == ("C1", posted["ts"]) and slack.messages("C1") == []
    assert slack.deletes == [{"channel": "C1", "ts": posted["ts"], "text": "oops"}]
    with pytest.raises(SlackApiError, match="message_not_found"):
        await web.chat_delete(channel="C1", ts=posted["ts"])
    human = slack.add_message("C1", "mine", user="U1")
    with pytest.raises(SlackApiError, match="cant_delete_message"):
        await web.chat_delete(channel="C1", ts=human)
    parent = (await web.chat_postMessage(channel="C1", text="parent"))["ts"]
    reply = slack.add_message("C1", "answer", user="U1", thread_ts=parent)
    await web.chat_delete(channel="C1", ts=parent)
    thread = (await web.conversations_replies(channel="C1", ts=parent))["messages"]
    assert [(m["ts"], m.get("subtype")) for m in thread] == [(parent, "tombstone"), (reply, None)]
    assert thread[0]["text"] == "This message was deleted." and thread[0]["reply_count"] == 1


async def test_ts_values_strictly_increase_across_channels(web: AsyncWebClient, slack: FakeSlack) -> None:
    """Message ts strings are unique and strictly increasing across channels, seeded ones included."""
    # Seed slightly in the future: later ts values must still sort after it.
    seeded = slack.add_message("C9", "seed", ts=format_ts(ts_to_micros(new_ts()) + 5_000_000))
    stamps = [(await web.chat_postMessage(channel=f"C{i % 3}", text=str(i)))["ts"] for i in range(6)]
    micros = [ts_to_micros(ts) for ts in [seeded, *stamps]]
    assert micros == sorted(set(micros)) and all(len(ts.split(".")[1]) == 6 for ts in stamps)


async def test_replies_paginate_with_the_sdk_iterator(slack: FakeSlack, web: AsyncWebClient) -> None:
    """conversations.replies pages with opaque cursors that the SDK's async iterator follows to the end."""
    parent = slack.add_message("C1", "question", user="U1")
    replies = [slack.add_message("C1", f"r{i}", user="U2", thread_ts=parent) for i in range(5)]
    # The SDK iterator re-yields one mutated response object, so snapshot each page's data.
    pages = [dict(page.data) async for page in await web.conversations_replies(channel="C1", ts=parent, limit=3)]
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert pages[-1]["response_metadata"]["next_cursor"] == ""
    # The parent comes first on every page, so callers must de-duplicate by ts.
    assert all(p["messages"][0]["ts"] == parent for p in pages)
    seen = list(dict.fromkeys(m["ts"] for p in pages for m in p["messages"]))
    assert seen == [parent, *replies]
    assert slack.calls[-1].args["cursor"] and slack.calls[-1].http_method == "GET"


async def test_replies_edge_cases(slack: FakeSlack, web: AsyncWebClient) -> None:
    """Unknown threads are thread_not_found, a reply's ts returns only that reply, other apps' metadata is opt-in."""
    parent = slack.add_message("C1", "q", user="U1")
    reply = slack.add_message("C1", "a", user="U2", thread_ts=parent)
    slack.store.find("C1", reply)["metadata"] = {"event_type": "other_app", "event_payload": {}}
    with pytest.raises(SlackApiError, match="thread_not_found"):
        await web.conversations_replies(channel="C1", ts="1.000001")
    only = await web.conversations_replies(channel="C1", ts=reply)
    assert [m["ts"] for m in only["messages"]] == [reply] and "metadata" not in only["messages"][0]
    full = await web.conversations_replies(channel="C1", ts=parent, include_all_metadata=True)
    assert full["messages"][1]["metadata"]["event_type"] == "other_app"
    assert full["messages"][0]["reply_users"] == ["U2"] and full["messages"][0]["latest_reply"] == reply


async def test_replies_honour_the_time_window_and_the_limit(slack: FakeSlack, web: AsyncWebClient) -> None:
    """oldest/latest bound the replies (inclusive only when asked), the parent heads every page whatever the window,
    a limit above 1,000 is 1,000, and a malformed bound is Slack's invalid_ts_* error."""
    parent = slack.add_message("C1", "q", user="U1")
    replies = [slack.add_message("C1", f"r{i}", user="U2", thread_ts=parent) for i in range(1_200)]
    window = await web.conversations_replies(channel="C1", ts=parent, oldest=replies[10], latest=replies[20])
    assert [m["ts"] for m in window["messages"]] == [parent, *replies[11:20]] and not window["has_more"]
    inclusive = await web.conversations_replies(
        channel="C1", ts=parent, oldest=replies[10], latest=replies[20], inclusive=True, limit=5
    )
    assert [m["ts"] for m in inclusive["messages"]] == [parent, *replies[10:14]] and inclusive["has_more"]
    rest = await web.conversations_replies(
        channel="C1",
        ts=parent,
        oldest=replies[10],
        latest=replies[20],
        inclusive=True,
        limit=5,
        cursor=inclusive["response_metadata"]["next_cursor"],
    )
    assert [m["ts"] for m in rest["messages"]] == [parent, *replies[14:18]]
    most = await web.conversations_replies(channel="C1", ts=parent, limit=5_000)
    assert len(most["messages"]) == 1_000 and most["has_more"]
    for name in ("oldest", "latest"):
        with pytest.raises(SlackApiError, match=f"invalid_ts_{name}"):
            await web.conversations_replies(channel="C1", ts=parent, **{name: "yesterday"})


async def test_another_apps_mention_is_stored_and_delivered_as_a_bots(slack: FakeSlack, web: AsyncWebClient) -> None:
    """A mention another app posted is in the thread as that bot's message, and its app_mention event carries the
    bot's ids and no client_msg_id, as Slack sends them."""
    parent = slack.post_user_message("C1", "hi", user="U1")["event"]["ts"]
    envelope = slack.post_other_app_mention(
        "C1", "<@U0BOT> over to you", bot_id="B0OTHER", user="U0OTHERBOT", thread_ts=parent
    )
    event = envelope["event"]
    assert event["type"] == "app_mention" and event["bot_id"] == "B0OTHER" and event["user"] == "U0OTHERBOT"
    assert event["bot_profile"]["id"] == "B0OTHER" and "client_msg_id" not in event
    replies = await web.conversations_replies(channel="C1", ts=parent)
    stored = replies["messages"][-1]
    assert (stored["ts"], stored["bot_id"], stored["text"]) == (event["ts"], "B0OTHER", "<@U0BOT> over to you")


async def test_post_user_message_seeds_the_store_and_builds_the_event(slack: FakeSlack, web: AsyncWebClient) -> None:
    """post_user_message stores the human message and returns an envelope whose event matches the stored copy."""
    envelope = slack.post_user_message("C1", "<@U0BOT> help", user="U1", mention=True)
    event = envelope["event"]
    assert (envelope["type"], envelope["team_id"], event["type"]) == ("event_callback", "T0TEAM", "app_mention")
    assert envelope["authorizations"][0]["user_id"] == "U0BOT"
    reply = slack.post_user_message("C1", "more", user="U2", thread_ts=event["ts"])["event"]
    assert (reply["type"], reply["thread_ts"], reply["parent_user_id"]) == ("message", event["ts"], "U1")
    thread = (await web.conversations_replies(channel="C1", ts=event["ts"]))["messages"]
    assert [m["ts"] for m in thread] == [event["ts"], reply["ts"]]
    assert thread[0]["client_msg_id"] == event["client_msg_id"] and thread[0]["blocks"] == event["blocks"]
    empty = await web.conversations_history(channel="C404")
    assert empty["messages"] == [] and empty["has_more"] is False


async def test_history_returns_top_level_messages_newest_first(slack: FakeSlack, web: AsyncWebClient) -> None:
    """conversations.history lists top-level messages newest first and paginates with a cursor."""
    tops = [slack.add_message("C1", f"m{i}") for i in range(3)]
    slack.add_message("C1", "in thread", thread_ts=tops[0])
    first = await web.conversations_history(channel="C1", limit=2)
    second = await web.conversations_history(channel="C1", limit=2, cursor=first["response_metadata"]["next_cursor"])
    assert [m["ts"] for m in first["messages"] + second["messages"]] == tops[::-1]
    assert (first["has_more"], second["has_more"]) == (True, False)


async def test_reactions_and_their_errors(slack: FakeSlack, web: AsyncWebClient) -> None:
    """reactions.add/remove update the message and report already_reacted / no_reaction / message_not_found."""
    ts = slack.add_message("C1", "hi")
    await web.reactions_add(channel="C1", timestamp=ts, name="eyes")
    assert slack.messages("C1")[0]["reactions"] == [{"name": "eyes", "users": ["U0BOT"], "count": 1}]
    with pytest.raises(SlackApiError, match="already_reacted"):
        await web.reactions_add(channel="C1", timestamp=ts, name="eyes")
    await web.reactions_remove(channel="C1", timestamp=ts, name="eyes")
    assert "reactions" not in slack.messages("C1")[0]
    with pytest.raises(SlackApiError, match="no_reaction"):
        await web.reactions_remove(channel="C1", timestamp=ts, name="eyes")
    with pytest.raises(SlackApiError, match="message_not_found"):
        await web.reactions_add(channel="C1", timestamp="1.000001", name="eyes")


async def test_ephemeral_permalink_and_users(slack: FakeSlack, web: AsyncWebClient) -> None:
    """postEphemeral records the message, getPermalink builds Slack-style links and users.info serves seeded users."""
    parent = slack.add_message("C1", "q")
    resp = await web.chat_postEphemeral(channel="C1", user="U1", text="only you", thread_ts=parent)
    assert slack.ephemerals[0]["text"] == "only you" and slack.ephemerals[0]["message_ts"] == resp["message_ts"]
    link = await web.chat_getPermalink(channel="C1", message_ts=parent)
    assert link["permalink"] == f"https://fake.slack.com/archives/C1/p{parent.replace('.', '')}"
    slack.add_user("U1", "ada", real_name="Ada Lovelace", display_name="ada")
    user = (await web.users_info(user="U1"))["user"]
    assert (user["real_name"], user["profile"]["display_name"], user["is_bot"]) == ("Ada Lovelace", "ada", False)
    with pytest.raises(SlackApiError, match="user_not_found"):
        await web.users_info(user="U404")


async def test_users_info_carries_the_workspace_roles(slack: FakeSlack, web: AsyncWebClient) -> None:
    """users.info's user has Slack's three role flags (is_admin, is_owner, is_primary_owner), each as seeded, and
    the guest flags, false."""
    slack.add_user("U1", "ada")
    slack.add_user("U2", "olga", is_owner=True)
    flags = ("is_admin", "is_owner", "is_primary_owner", "is_restricted", "is_ultra_restricted")
    member = (await web.users_info(user="U1"))["user"]
    owner = (await web.users_info(user="U2"))["user"]
    assert [member[flag] for flag in flags] == [False] * 5
    assert [owner[flag] for flag in flags] == [False, True, False, False, False]


async def test_injected_failures(slack: FakeSlack) -> None:
    """fail_next produces ok:false errors or HTTP 429 with Retry-After that the SDK's rate-limit handler retries."""
    plain = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    slack.fail_next("chat.postMessage", error="channel_is_archived")
    with pytest.raises(SlackApiError, match="channel_is_archived"):
        await plain.chat_postMessage(channel="C1", text="x")
    slack.fail_next("auth.test", status=429, retry_after=0)
    with pytest.raises(SlackApiError) as info:
        await plain.auth_test()
    assert info.value.response.status_code == 429 and info.value.response.headers["Retry-After"] == "0"
    assert info.value.response["error"] == "ratelimited"
    retrying = AsyncWebClient(
        token=slack.bot_token,
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    slack.fail_next("auth.test", status=429, retry_after=0)
    assert (await retrying.auth_test())["ok"] is True
    assert len(slack.calls_to("auth.test")) == 3


async def test_delay_does_not_block_other_methods(slack: FakeSlack, web: AsyncWebClient) -> None:
    """A delayed method is served concurrently with other requests."""
    slack.delay("users.info", 0.5)
    slow = asyncio.ensure_future(web.users_info(user="U0BOT"))
    await wait_until(lambda: slack.calls_to("users.info"))
    assert (await web.auth_test())["ok"] and not slow.done()
    assert (await slow)["user"]["is_bot"] is True


# ---------------------------------------------------------------------------------------------- files


async def test_shared_files_reach_the_events_and_the_store(slack: FakeSlack, web: AsyncWebClient) -> None:
    """Files posted with a message ride on the app_mention and message events and in the stored thread."""
    file = slack.add_file("notes.txt", b"first\nsecond\n", mimetype="text/plain", user="U1")
    assert file["id"].startswith("F") and file["user_team"] == "T0TEAM"
    assert (file["filetype"], file["pretty_type"], file["mode"], file["size"]) == ("text", "Plain Text", "hosted", 13)
    assert file["url_private_download"] == f"{slack.url}files-pri/T0TEAM-{file['id']}/download/notes.txt"
    assert file["url_private"] == f"{slack.url}files-pri/T0TEAM-{file['id']}/notes.txt"
    assert file["is_public"] is False  # not shared anywhere yet
    mention = slack.post_user_message("C1", "<@U0BOT> read this", user="U1", mention=True, files=[file])["event"]
    assert mention["type"] == "app_mention" and "subtype" not in mention
    assert (mention["upload"], mention["display_as_bot"]) == (False, False)
    assert mention["files"] == [{**file, "is_public": True}]
    reply = slack.post_user_message("C1", "and this", user="U2", thread_ts=mention["ts"], files=[file])["event"]
    assert (reply["type"], reply["subtype"], reply["files"][0]["id"]) == ("message", "file_share", file["id"])
    thread = (await web.conversations_replies(channel="C1", ts=mention["ts"]))["messages"]
    assert [m.get("subtype") for m in thread] == ["file_share", "file_share"]
    assert thread[0]["files"] == mention["files"] and thread[0]["upload"] is False
    im = slack.post_user_message("D1", "private", user="U1", channel_type="im", files=[file])["event"]
    assert im["files"][0]["is_public"] is True  # already public from the channel share
    plain = slack.post_user_message("C1", "no files", user="U1")["event"]
    assert not {"files", "upload", "subtype"} & plain.keys()


async def test_file_urls_need_the_bot_token(slack: FakeSlack) -> None:
    """url_private(_download) answer the bytes only to the bot token; otherwise Slack's sign-in page, still 200."""
    content = b"\x89PNG\r\n\x1a\nnot really"
    file = slack.add_file("Chart 1.png", content, mimetype="image/png")
    assert (file["filetype"], file["pretty_type"]) == ("png", "PNG")
    assert file["url_private_download"].endswith("/download/chart_1.png")  # Slack's URL-safe name
    bearer = {"Authorization": f"Bearer {slack.bot_token}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(file["url_private_download"], headers=bearer) as resp:
            assert (resp.status, resp.content_type) == (200, "image/png")
            assert await resp.read() == content
            assert resp.headers["Content-Disposition"].startswith("attachment")
        async with session.get(file["url_private"], headers=bearer) as resp:
            assert (resp.status, resp.content_type, await resp.read()) == (200, "image/png", content)
        async with session.get(file["url_private_download"]) as resp:
            assert (resp.status, resp.content_type) == (200, "text/html")
            page = await resp.text()
        async with session.get(file["url_private_download"], headers={"Authorization": "Bearer xoxb-wrong"}) as resp:
            assert (resp.status, await resp.text()) == (200, LOGIN_PAGE)
        async with session.get(file["url_private_download"].replace(file["id"], "F0NOPE"), headers=bearer) as resp:
            assert resp.status == 404
    assert page == LOGIN_PAGE and "Sign in" in page
    assert slack.downloads[:4] == [
        SlackDownload(file["id"], authorized=True, download=True, token="xoxb-test"),
        SlackDownload(file["id"], authorized=True, download=False, token="xoxb-test"),
        SlackDownload(file["id"], authorized=False, download=True, token=None),
        SlackDownload(file["id"], authorized=False, download=True, token="xoxb-wrong"),
    ]


def test_snippets_and_filetypes(slack: FakeSlack) -> None:
    """Snippets are editable and carry a preview; filetype comes from the extension, else from the mimetype."""
    code = "\n".join(f"print({i})" for i in range(7)).encode()
    snippet = slack.add_file("run.py", code, mimetype="text/plain", mode="snippet")
    assert (snippet["mode"], snippet["editable"], snippet["filetype"], snippet["pretty_type"]) == (
        "snippet",
        True,
        "python",
        "Python",
    )
    assert (snippet["lines"], snippet["lines_more"], snippet["preview"].count("\n")) == (7, 2, 4)
    assert snippet["edit_link"] == snippet["permalink"] + "/edit"
    hosted = slack.add_file("data.bin", b"\0", mimetype="application/octet-stream", filetype="zip")
    assert (hosted["filetype"], hosted["editable"], "preview" in hosted) == ("zip", False, False)
    assert [filetype_for(n, m) for n, m in [("README", "text/plain"), ("a.xyz", "application/x-xyz")]] == [
        "text",
        "binary",
    ]
    with pytest.raises(ValueError):
        slack.add_file("x.txt", b"", mimetype="text/plain", mode="external")


async def test_remote_files_are_links_slack_does_not_serve(slack: FakeSlack) -> None:
    """A remote file is mode "external" with url_private set to its external URL; Slack holds no bytes of it."""
    remote = slack.add_remote_file("Plan.pdf", "https://docs.example.com/plan")
    assert (remote["mode"], remote["is_external"], remote["external_url"]) == (
        "external",
        True,
        "https://docs.example.com/plan",
    )
    assert remote["url_private"] == remote["external_url"] and "url_private_download" not in remote
    shared = slack.post_user_message("C1", "<@U0BOT> the plan", user="U1", mention=True, files=[remote])["event"]
    assert shared["files"][0]["id"] == remote["id"]
    served = f"{slack.url}files-pri/{slack.team_id}-{remote['id']}/plan.pdf"
    bearer = {"Authorization": f"Bearer {slack.bot_token}"}
    async with aiohttp.ClientSession() as session, session.get(served, headers=bearer) as resp:
        assert resp.status == 404


async def test_a_file_can_be_made_to_redirect(slack: FakeSlack) -> None:
    """With redirect_to, a file's URLs answer the bot token with a 302 there (and the sign-in page without it)."""
    file = slack.add_file("a.txt", b"bytes", mimetype="text/plain", redirect_to="http://127.0.0.1:9/elsewhere")
    bearer = {"Authorization": f"Bearer {slack.bot_token}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(file["url_private"], headers=bearer, allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (302, "http://127.0.0.1:9/elsewhere")
        async with session.get(file["url_private"], allow_redirects=False) as resp:
            assert (resp.status, await resp.text()) == (200, LOGIN_PAGE)


# ---------------------------------------------------------------------------------------------- response_url


async def test_response_url_takes_five_posts_then_expires(slack: FakeSlack) -> None:
    """A minted response_url records the webhook client's JSON posts, answers {"ok": true}, then 404 expired_url."""
    url = slack.response_url()
    assert url.startswith(slack.url + "commands/T0TEAM/")
    client = AsyncWebhookClient(url)
    resp = await client.send(text="working on it", replace_original=True)
    assert (resp.status_code, json.loads(resp.body)) == (200, {"ok": True})
    assert slack.responses == [
        {"url": url, "kind": "commands", "body": {"text": "working on it", "replace_original": True}}
    ]
    for i in range(4):
        assert (await client.send(text=str(i), response_type="in_channel")).status_code == 200
    used_up = await client.send(text="sixth")
    assert (used_up.status_code, json.loads(used_up.body)) == (404, {"ok": False, "error": "expired_url"})
    assert [r["body"].get("response_type") for r in slack.responses] == [None] + ["in_channel"] * 4
    assert (await AsyncWebhookClient(slack.response_url("actions", ttl=0)).send(text="late")).status_code == 404
    assert (await AsyncWebhookClient(slack.url + "actions/T0TEAM/1/forged").send(text="x")).status_code == 404


async def test_response_url_body_rules(slack: FakeSlack) -> None:
    """A post needs text, blocks or attachments unless it deletes the original; a rejected post uses up nothing."""
    client = AsyncWebhookClient(slack.response_url("actions", uses=1))
    empty = await client.send_dict({"replace_original": True})
    assert (empty.status_code, json.loads(empty.body)["error"]) == (400, "no_text")
    assert (await client.send(delete_original=True)).status_code == 200
    assert slack.responses[0]["body"] == {"delete_original": True} and len(slack.responses) == 1


# ---------------------------------------------------------------------------------------------- Socket Mode


async def test_socket_mode_client_receives_event_and_acks(slack: FakeSlack) -> None:
    """A real SocketModeClient connects via apps.connections.open, gets hello, receives an event and acks it."""
    raw: list[dict[str, Any]] = []
    got: list[SocketModeRequest] = []

    async def on_message(client: AsyncBaseSocketModeClient, message: dict[str, Any], _raw: str | None) -> None:
        raw.append(message)

    async def on_request(client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        got.append(req)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    async with socket_client(slack, on_request, on_message):
        await wait_until(lambda: raw)
        assert raw[0]["type"] == "hello" and raw[0]["connection_info"]["app_id"] == "A0APP"
        assert slack.calls[0].method == "apps.connections.open" and slack.calls[0].token == slack.app_token
        envelope = event_envelope(app_mention_event("<@U0BOT> hi", user="U1", channel="C1"))
        envelope_id = await slack.send_socket_event(envelope)
        ack = await slack.wait_for_ack(envelope_id)
        assert ack == {"envelope_id": envelope_id}
        assert got[0].type == "events_api" and got[0].payload["event"]["text"] == "<@U0BOT> hi"
        assert got[0].retry_attempt == 0
    await wait_until(lambda: not slack.socket_connected)


async def test_socket_mode_slash_command_ack_carries_payload(slack: FakeSlack) -> None:
    """Slash command envelopes accept a response payload, which arrives with the ack."""

    async def on_request(client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        assert req.accepts_response_payload
        reply = SocketModeResponse(envelope_id=req.envelope_id, payload={"text": "got " + req.payload["text"]})
        await client.send_socket_mode_response(reply)

    async with socket_client(slack, on_request):
        fields = slash_command_fields("/agent", "status", channel_id="C1", user_id="U1")
        envelope_id = await slack.send_socket_command(fields)
        assert (await slack.wait_for_ack(envelope_id))["payload"] == {"text": "got status"}


async def test_socket_mode_interactive_envelope(slack: FakeSlack) -> None:
    """block_actions payloads arrive over Socket Mode as "interactive" envelopes that take a plain ack."""
    got: list[SocketModeRequest] = []

    async def on_request(client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        got.append(req)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    async with socket_client(slack, on_request):
        payload = block_actions_payload("approve", "yes", channel_id="C1", user_id="U1")
        envelope_id = await slack.send_socket_interactive(payload)
        assert await slack.wait_for_ack(envelope_id) == {"envelope_id": envelope_id}
    assert (got[0].type, got[0].payload, got[0].accepts_response_payload) == ("interactive", payload, False)


async def test_socket_mode_disconnect_makes_client_reconnect(slack: FakeSlack) -> None:
    """A disconnect message makes the SDK fetch a new URL and open a second connection."""
    async with socket_client(slack):
        await wait_until(lambda: slack.socket_connected)
        await slack.send_socket_disconnect()
        await wait_until(lambda: slack.socket_connect_count == 2 and slack.socket_connected)
        assert len(slack.calls_to("apps.connections.open")) == 2


# ---------------------------------------------------------------------------------------------- Anthropic


async def test_create_returns_scripted_text(fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic) -> None:
    """messages.create parses the scripted reply, echoes the model and reports estimated usage."""
    fake_api.reply_text("Hello!", usage={"cache_read_input_tokens": 7})
    msg = await claude.messages.create(model=MODEL, max_tokens=100, system="be nice", messages=user_msg("x" * 40))
    assert (msg.content[0].type, msg.model, msg.stop_reason) == ("text", MODEL, "end_turn")
    assert text_of(msg.content[0]) == "Hello!" and msg.id.startswith("msg_")
    assert (msg.usage.input_tokens, msg.usage.output_tokens, msg.usage.cache_read_input_tokens) == (11, 1, 7)
    # anthropic 2.x sends the API key as a Bearer token; the fake accepts that or x-api-key.
    sent = fake_api.request_headers[-1]
    assert sent["authorization"] == "Bearer test" and "anthropic-version" in sent


async def test_default_responder_echoes_last_user_text(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """Without a script the fake answers "echo: " plus the last text block of the last user message."""
    messages: list[MessageParam] = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "second"}]},
    ]
    msg = await claude.messages.create(model=MODEL, max_tokens=10, system="sys", messages=messages)
    assert text_of(msg.content[0]) == "echo: second"
    assert user_texts(fake_api.last_request) == ["sys", "first", "ok", "a", "second"]


async def test_stream_helper_rebuilds_text_and_tool_use(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """messages.stream().get_final_message() rebuilds text, tool_use input and usage from the SSE events."""
    tool_input = {"query": "weather in Paris", "days": 3, "nested": {"units": "metric"}}
    fake_api.reply_tool_use("search", tool_input, tool_id="toolu_fixed", text_before="Let me look that up.")
    async with claude.messages.stream(model=MODEL, max_tokens=50, messages=user_msg("hi")) as stream:
        final = await stream.get_final_message()
    text, tool = final.content
    assert text.type == "text" and text.text == "Let me look that up."
    assert tool.type == "tool_use" and (tool.id, tool.name, tool.input) == ("toolu_fixed", "search", tool_input)
    assert final.stop_reason == "tool_use" and final.usage.input_tokens == 1
    assert final.usage.output_tokens == (len("Let me look that up.") + len(json.dumps(tool_input))) // 4
    assert fake_api.last_request["stream"] is True


async def test_create_stream_yields_the_real_event_sequence(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """messages.create(stream=True) yields message_start, chunked block deltas, message_delta and message_stop."""
    text = "streamed words here"
    fake_api.enqueue(Reply([{"type": "text", "text": text}], usage={"output_tokens": 42}, chunk_size=5))
    stream = await claude.messages.create(model=MODEL, max_tokens=50, messages=user_msg("hi"), stream=True)
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[2:-3] == ["content_block_delta"] * 4  # 19 characters in chunks of 5; the SDK drops ping events
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [
        e.delta.text for e in events if isinstance(e, RawContentBlockDeltaEvent) and isinstance(e.delta, TextDelta)
    ]
    assert "".join(deltas) == text
    delta = next(e for e in events if isinstance(e, RawMessageDeltaEvent))
    assert delta.delta.stop_reason == "end_turn" and delta.usage.output_tokens == 42


async def test_raw_sse_wire_format_has_ping_after_first_block_start(fake_api: FakeAnthropic) -> None:
    """On the wire each event is "event: NAME" + "data: JSON", with a ping right after the first content_block_start."""
    fake_api.reply_text("hey")
    body = {"model": MODEL, "max_tokens": 5, "messages": user_msg("hi"), "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake_api.base_url + "/v1/messages", json=body, headers={"x-api-key": "k"}) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = await resp.text()
    chunks = [c for c in raw.split("\n\n") if c]
    names = [c.split("\n")[0].removeprefix("event: ") for c in chunks]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(
        json.loads(c.split("\n")[1].removeprefix("data: "))["type"] == n for c, n in zip(chunks, names, strict=True)
    )


@pytest.mark.parametrize(
    ("status", "error_type", "exc_type"),
    [
        (429, "rate_limit_error", anthropic.RateLimitError),
        (500, "api_error", anthropic.InternalServerError),
        (529, "overloaded_error", anthropic.OverloadedError),
    ],
)
async def test_scripted_errors_raise_sdk_exceptions(
    fake_api: FakeAnthropic,
    claude: anthropic.AsyncAnthropic,
    status: int,
    error_type: str,
    exc_type: type[anthropic.APIStatusError],
) -> None:
    """Scripted HTTP errors surface as the SDK's typed exceptions with retry-after and the error body."""
    fake_api.reply_error(status, error_type, "try later", retry_after=7)
    with pytest.raises(exc_type) as info:
        await claude.messages.create(model=MODEL, max_tokens=5, messages=user_msg("hi"))
    err = info.value
    assert err.status_code == status and err.response.headers["retry-after"] == "7"
    assert err.body == {
        "type": "error",
        "error": {"type": error_type, "message": "try later"},
        "request_id": err.request_id,
    }
    assert err.request_id is not None and err.request_id.startswith("req_")


async def test_mid_stream_error_event(fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic) -> None:
    """An `error` SSE event inside a 200 stream raises APIStatusError carrying the error type."""
    fake_api.reply_stream_error("partial answer")
    with pytest.raises(anthropic.APIStatusError) as info:
        async with claude.messages.stream(model=MODEL, max_tokens=5, messages=user_msg("hi")) as stream:
            await stream.get_final_message()
    assert info.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


async def test_authentication_errors(fake_api: FakeAnthropic) -> None:
    """Requests without x-api-key (or with the wrong key) get a 401 authentication_error."""
    async with aiohttp.ClientSession() as session, session.post(fake_api.base_url + "/v1/messages", json={}) as resp:
        assert resp.status == 401
        body = await resp.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    fake_api.api_key = "right"
    async with anthropic.AsyncAnthropic(base_url=fake_api.base_url, api_key="wrong", max_retries=0) as client:
        with pytest.raises(anthropic.AuthenticationError):
            await client.messages.create(model=MODEL, max_tokens=5, messages=user_msg("hi"))


async def test_unanswered_tool_use_is_rejected(fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic) -> None:
    """Like the real API, a tool_use not followed by its tool_result is a 400 invalid_request_error."""
    messages: list[MessageParam] = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
        {"role": "user", "content": "no result here"},
    ]
    with pytest.raises(anthropic.BadRequestError, match="toolu_1"):
        await claude.messages.create(model=MODEL, max_tokens=5, messages=messages)
    messages[2] = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}]}
    msg = await claude.messages.create(model=MODEL, max_tokens=5, messages=messages)
    assert text_of(msg.content[0]) == "echo: 42"


async def test_gated_reply_leaves_server_responsive(fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic) -> None:
    """While one reply is held back, other requests are answered; releasing the gate completes the first."""
    gate = asyncio.Event()
    fake_api.reply_text("slow", gate=gate)
    fake_api.reply_text("fast")
    slow = asyncio.ensure_future(claude.messages.create(model=MODEL, max_tokens=5, messages=user_msg("1")))
    await wait_until(lambda: len(fake_api.requests) == 1)
    fast = await claude.messages.create(model=MODEL, max_tokens=5, messages=user_msg("2"))
    assert text_of(fast.content[0]) == "fast" and not slow.done()
    gate.set()
    slow_msg = await slow
    assert text_of(slow_msg.content[0]) == "slow"


async def test_dynamic_replies_and_count_tokens(fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic) -> None:
    """reply_with/set_default compute replies from the request, and count_tokens uses the same estimate."""
    fake_api.reply_with(lambda req: Reply([{"type": "text", "text": f"{len(req['messages'])} messages"}]))
    fake_api.set_default(lambda req: Reply([{"type": "text", "text": "default"}], stop_reason="max_tokens"))
    first = await claude.messages.create(model=MODEL, max_tokens=5, messages=user_msg("a"))
    second = await claude.messages.create(model=MODEL, max_tokens=5, messages=user_msg("b"))
    assert text_of(first.content[0]) == "1 messages"
    assert second.stop_reason == "max_tokens" and fake_api.pending == 0
    count = await claude.messages.count_tokens(model=MODEL, system="s" * 20, messages=user_msg("x" * 20))
    assert count.input_tokens == 10 and fake_api.count_requests[0]["system"] == "s" * 20


def image_block(data: str) -> ImageBlockParam:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


async def test_an_image_over_5_mb_of_base64_is_refused(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """Like the API, an image whose base64 data is over 5 MB is a 400 naming where it is; exactly 5 MB is taken."""
    big = "A" * (MAX_IMAGE_BASE64 + 4)
    messages: list[MessageParam] = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "see"}, image_block(big)]},
    ]
    with pytest.raises(anthropic.BadRequestError) as info:
        await claude.messages.create(model=MODEL, max_tokens=5, messages=messages)
    assert info.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": f"messages.2.content.1.image.source.base64: image exceeds 5 MB maximum: "
            f"{MAX_IMAGE_BASE64 + 4} bytes > 5242880 bytes",
        },
        "request_id": info.value.request_id,
    }
    messages[2] = {"role": "user", "content": [image_block("A" * MAX_IMAGE_BASE64)]}
    assert (await claude.messages.create(model=MODEL, max_tokens=5, messages=messages)).content


async def test_more_than_100_images_are_refused(fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic) -> None:
    """Like the API, a request with more than 100 images is a 400 "Too much media"; 100 are taken."""
    pixel = base64.b64encode(b"png").decode()
    blocks = [image_block(pixel) for _ in range(MAX_IMAGES + 1)]
    with pytest.raises(anthropic.BadRequestError, match=r"Too much media: 0 document pages \+ 101 images > 100"):
        await claude.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": blocks}])
    message = await claude.messages.create(
        model=MODEL,
        max_tokens=5,
        messages=[{"role": "user", "content": blocks[:MAX_IMAGES]}],
    )
    assert message.content


async def test_a_request_over_32_mb_is_refused_with_413(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """Like the API (Cloudflare before it), a body over 32 MB gets 413 request_too_large, for count_tokens too."""
    text = "x" * MAX_REQUEST_BYTES
    with pytest.raises(anthropic.APIStatusError) as info:
        await claude.messages.create(model=MODEL, max_tokens=5, messages=user_msg(text))
    assert info.value.status_code == 413
    assert info.value.body == {
        "type": "error",
        "error": {"type": "request_too_large", "message": "Request exceeds the maximum allowed number of bytes."},
    }
    with pytest.raises(anthropic.APIStatusError) as counted:
        await claude.messages.count_tokens(model=MODEL, messages=user_msg(text))
    assert counted.value.status_code == 413
    assert fake_api.requests == [] and fake_api.count_requests == []  # the API never saw them
    assert all(size > MAX_REQUEST_BYTES for size in fake_api.request_sizes)
    # Just under the cap, in images: as text, so many bytes would be over the context window instead.
    under: list[MessageParam] = [{"role": "user", "content": [image_block("A" * MAX_IMAGE_BASE64) for _ in range(6)]}]
    assert (await claude.messages.create(model=MODEL, max_tokens=5, messages=under)).content


async def test_a_prompt_longer_than_the_context_window_is_refused(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """Like the real API, a prompt over 200,000 tokens (or one that leaves no room for max_tokens) is a 400."""
    with pytest.raises(anthropic.BadRequestError, match=r"prompt is too long: 200001 tokens > 200000 maximum"):
        await claude.messages.create(model=MODEL, max_tokens=5, messages=user_msg("x" * 800_004))
    with pytest.raises(anthropic.BadRequestError, match=r"199000 \+ 4096 > 200000"):
        await claude.messages.create(model=MODEL, max_tokens=4096, messages=user_msg("x" * 796_000))
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "A" * 4_000_000},
    }  # 3 MB: 1,600 tokens, not 1M
    pictured: list[MessageParam] = [{"role": "user", "content": [image, {"type": "text", "text": "what is it?"}]}]
    await claude.messages.create(model=MODEL, max_tokens=5, messages=pictured)  # an image is not its base64 text


# ---------------------------------------------------------------------------------------------- payloads


def test_signature_verifier_accepts_signed_bodies_and_rejects_tampering() -> None:
    """slack_sdk's SignatureVerifier accepts sign() headers and rejects a modified body."""
    verifier = SignatureVerifier(SECRET)
    body, headers = signed_event_request(
        event_envelope(message_event("hi", user="U1", channel="C1")), SECRET, retry_num=1, retry_reason="http_timeout"
    )
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body.replace("hi", "ho"), headers)
    assert (headers["X-Slack-Retry-Num"], headers["X-Slack-Retry-Reason"]) == ("1", "http_timeout")
    form = slash_command_form("/agent", "hello world", channel_id="C1", user_id="U1")
    assert verifier.is_valid_request(form, sign(SECRET, form))


def test_new_ts_is_strictly_increasing() -> None:
    """new_ts() returns unique, strictly increasing Slack ts strings."""
    micros = [ts_to_micros(new_ts()) for _ in range(200)]
    assert micros == sorted(set(micros))


async def test_bolt_accepts_signed_event_and_slash_command(slack: FakeSlack) -> None:
    """A real Bolt AsyncApp verifies the signed requests and routes the app_mention and slash command payloads."""
    app = AsyncApp(client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url), signing_secret=SECRET)
    seen: list[dict[str, Any]] = []

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any]) -> None:
        seen.append(event)

    @app.command("/agent")
    async def on_command(ack: Any, command: dict[str, Any]) -> None:
        await ack(text=f"ok {command['text']}")

    parent = new_ts()
    event = app_mention_event("<@U0BOT> summarize", user="U1", channel="C1", thread_ts=parent)
    body, headers = signed_event_request(event_envelope(event), SECRET)
    resp = await app.async_dispatch(bolt_request(body, headers))
    assert resp.status == 200
    await wait_until(lambda: seen)
    assert seen[0]["thread_ts"] == parent and seen[0]["blocks"][0]["type"] == "rich_text"
    form = slash_command_form("/agent", "status", channel_id="C1", user_id="U1")
    resp = await app.async_dispatch(bolt_request(form, signed_form_request(form, SECRET)))
    assert resp.status == 200 and resp.body == "ok status"  # Bolt answers a text-only ack as plain text
    forged = await app.async_dispatch(bolt_request(form, signed_form_request(form, "wrong")))
    assert forged.status == 401


def test_block_actions_payload_shapes() -> None:
    """A click on a stored message carries that message; a click on an ephemeral one carries only its ts."""
    payload = block_actions_payload("approve", "yes", channel_id="C1", user_id="U1", thread_ts="1.000001", text="OK")
    ids = (payload["type"], payload["team"]["id"], payload["user"]["id"], payload["channel"]["id"])
    assert ids == ("block_actions", "T0TEAM", "U1", "C1")
    action = payload["actions"][0]
    assert action["type"] == "button" and action["text"] == {"type": "plain_text", "text": "OK"}
    assert (action["action_id"], action["value"], action["block_id"]) == ("approve", "yes", "actions")
    assert payload["message"]["blocks"][0]["elements"][0]["action_id"] == "approve"
    assert payload["container"]["message_ts"] == payload["message"]["ts"]
    assert payload["container"]["thread_ts"] == payload["message"]["thread_ts"] == "1.000001"
    assert payload["response_url"].startswith("https://hooks.slack.com/actions/T0TEAM/")
    ephemeral = block_actions_payload("approve", channel_id="C1", user_id="U1", message_ts="1.2", is_ephemeral=True)
    assert "message" not in ephemeral and "value" not in ephemeral["actions"][0]
    assert ephemeral["container"] == {"type": "message", "message_ts": "1.2", "channel_id": "C1", "is_ephemeral": True}


async def test_bolt_routes_a_button_click_and_respond_reaches_the_fake(slack: FakeSlack, web: AsyncWebClient) -> None:
    """A signed block_actions form from click_button reaches Bolt's action listener, whose respond() posts here."""
    app = AsyncApp(client=web, signing_secret=SECRET)
    clicks: list[dict[str, Any]] = []

    @app.action("cancel")
    async def on_cancel(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        clicks.append(body)
        await respond(text="cancelled", replace_original=True)

    blocks = [{"type": "actions", "elements": [button_element("cancel", "Cancel", "turn-1", style="danger")]}]
    parent = slack.add_message("C1", "question", user="U1")
    posted = await web.chat_postMessage(channel="C1", thread_ts=parent, text="working", blocks=blocks)
    form = block_actions_form(slack.click_button("C1", posted["ts"], "cancel", user="U1"))
    resp = await app.async_dispatch(bolt_request(form, signed_form_request(form, SECRET)))
    assert resp.status == 200
    await wait_until(lambda: slack.responses)
    assert (slack.responses[0]["kind"], slack.responses[0]["body"]) == (
        "actions",
        {"text": "cancelled", "replace_original": True},
    )
    body, stored = clicks[0], slack.bot_replies("C1", parent)[0]
    action = body["actions"][0]
    assert (action["value"], action["style"]) == ("turn-1", "danger")
    assert action["block_id"] == stored["blocks"][0]["block_id"]
    assert body["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "C1",
        "is_ephemeral": False,
        "thread_ts": parent,
    }
    assert body["message"] == stored
    ephemeral = await web.chat_postEphemeral(channel="C1", user="U1", text="sure?", blocks=blocks)
    click = slack.click_button("C1", ephemeral["message_ts"], "cancel", user="U1")
    assert click["container"]["is_ephemeral"] is True and "message" not in click
    with pytest.raises(LookupError):
        slack.click_button("C1", posted["ts"], "approve")


async def test_wait_until_times_out() -> None:
    """wait_until raises TimeoutError when the condition never holds."""
    with pytest.raises(TimeoutError):
        await wait_until(lambda: False, timeout=0.05)
