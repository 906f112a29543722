"""Shared files as the Slack-facing layer handles them: remote files are told apart, and the bot token goes only to
Slack's file host, redirects included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from aiohttp import ClientSession, TraceConfig, TraceRequestStartParams
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import SlackError
from handlers.event_listeners import parse_files
from handlers.gateway import WebApiGateway, is_slack_file_url
from tests.fakes import DEFAULT_TEAM_ID as TEAM
from tests.fakes import FakeSlack
from tests.fakes.other_host import OtherHost

SLACK_API = "https://slack.com/api/"
LOCAL_API = "http://127.0.0.1:8123/api/"


@pytest.fixture
async def other_host() -> AsyncIterator[OtherHost]:
    """A second local web server, which is not Slack."""
    async with OtherHost() as server:
        yield server


@pytest.mark.parametrize(
    ("url", "api_url", "allowed"),
    [
        ("https://files.slack.com/files-pri/T1-F1/download/a.png", SLACK_API, True),
        ("HTTPS://Files.Slack.com:443/files-pri/T1-F1/a.png", SLACK_API, True),
        ("https://slack.com/files-pri/T1-F1/a.png", SLACK_API, True),  # the Web API's own origin
        ("http://files.slack.com/files-pri/T1-F1/a.png", SLACK_API, False),  # not https
        ("https://files.slack.com:8443/files-pri/T1-F1/a.png", SLACK_API, False),
        ("https://files.slack.com.example.com/a.png", SLACK_API, False),
        ("https://files.slack.com@example.com/a.png", SLACK_API, False),  # example.com is the host
        ("https://u:p@files.slack.com/files-pri/T1-F1/a.png", SLACK_API, False),  # credentials beside the token
        ("https://u@files.slack.com/files-pri/T1-F1/a.png", SLACK_API, False),
        ("https://:p@files.slack.com/files-pri/T1-F1/a.png", SLACK_API, False),
        ("https://example.com\\@files.slack.com/a.png", SLACK_API, False),  # urllib's host is files.slack.com
        ("https://example.com/files.slack.com/a.png", SLACK_API, False),
        ("https://docs.google.com/document/d/1", SLACK_API, False),
        ("https://files.slack.com:99999/a.png", SLACK_API, False),  # not a port
        ("ftp://files.slack.com/a.png", SLACK_API, False),
        ("/files-pri/T1-F1/a.png", SLACK_API, False),
        ("http://127.0.0.1:8123/files-pri/T1-F1/a.png", LOCAL_API, True),  # a local Slack: the playground, tests
        ("http://127.0.0.1:8124/files-pri/T1-F1/a.png", LOCAL_API, False),  # the same host, another port
        ("http://u:p@127.0.0.1:8123/files-pri/T1-F1/a.png", LOCAL_API, False),
        ("http://localhost:8123/files-pri/T1-F1/a.png", LOCAL_API, False),
        ("https://127.0.0.1:8123/files-pri/T1-F1/a.png", LOCAL_API, False),
    ],
)
def test_only_slack_file_urls_may_carry_the_token(url: str, api_url: str, allowed: bool) -> None:
    """The token may go to https on files.slack.com or to the exact origin of SLACK_API_URL, nowhere else."""
    assert is_slack_file_url(url, api_url) is allowed


def test_remote_files_are_parsed_as_external(slack: FakeSlack) -> None:
    """A remote file keeps mode "external" (also when only is_external says so), so it is named, never fetched."""
    remote = slack.add_remote_file("plan.pdf", "https://docs.example.com/plan")
    hosted = slack.add_file("a.txt", b"a", mimetype="text/plain")
    odd = {**slack.add_file("b.txt", b"b", mimetype="text/plain"), "is_external": True}
    bare = {"id": "F0LINK", "name": "sheet", "mode": "external", "is_external": True}  # no URL at all
    parsed = parse_files([remote, hosted, odd, bare, {"id": "F0GONE", "mode": "tombstone"}])
    assert [(f.name, f.mode, f.url) for f in parsed] == [
        ("plan.pdf", "external", "https://docs.example.com/plan"),
        ("a.txt", "hosted", hosted["url_private_download"]),
        ("b.txt", "external", odd["url_private_download"]),
        ("sheet", "external", ""),
    ]


async def test_a_redirect_is_followed_within_slack_and_not_beyond(
    gateway: WebApiGateway, slack: FakeSlack, other_host: OtherHost
) -> None:
    """A redirect to another Slack file URL is followed with the token; one to another host is not followed."""
    target = slack.add_file("target.txt", b"the bytes", mimetype="text/plain")
    inside = slack.add_file("inside.txt", b"", mimetype="text/plain", redirect_to=target["url_private_download"])
    assert await gateway.download(TEAM, inside["url_private_download"], 100) == (b"the bytes", "text/plain")
    outside = slack.add_file("outside.txt", b"", mimetype="text/plain", redirect_to=other_host.url + "x.txt")
    with pytest.raises(SlackError, match="not a Slack file URL"):
        await gateway.download(TEAM, outside["url_private_download"], 100)
    with pytest.raises(SlackError, match="not a Slack file URL"):
        await gateway.download(TEAM, other_host.url + "files-pri/T0TEAM-F1/a.txt", 100)
    assert other_host.visits == []
    assert [d.file_id for d in slack.downloads] == [inside["id"], target["id"], outside["id"]]


async def test_a_long_chain_of_redirects_is_given_up(gateway: WebApiGateway, slack: FakeSlack) -> None:
    """Past three redirects the download stops, even within Slack."""
    url = slack.add_file("end.txt", b"the end", mimetype="text/plain")["url_private"]
    for n in range(4):
        url = slack.add_file(f"hop{n}.txt", b"", mimetype="text/plain", redirect_to=url)["url_private"]
    with pytest.raises(SlackError, match="too many redirects"):
        await gateway.download(TEAM, url, 100)
    assert len(slack.downloads) == 4  # the fifth request, which would have had the bytes, is not made


async def test_a_request_aiohttp_refuses_is_a_failed_download(slack: FakeSlack) -> None:
    """A ValueError from aiohttp (its answer to a request it will not make) is a SlackError, so the answer names the
    file as unread instead of failing."""

    async def refuse(_session: ClientSession, _context: SimpleNamespace, _params: TraceRequestStartParams) -> None:
        raise ValueError("Cannot combine AUTHORIZATION header with AUTH argument or credentials encoded in URL")

    trace = TraceConfig()
    trace.on_request_start.append(refuse)
    file = slack.add_file("a.txt", b"a", mimetype="text/plain")
    async with ClientSession(trace_configs=[trace]) as session:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, session=session)
        with pytest.raises(SlackError, match="file download failed: ValueError"):
            await WebApiGateway(client).download(TEAM, file["url_private_download"], 100)
