"""Files shared with a mention, through the running bot: the bot token goes only to Slack, images stay within the
Messages API's limits, and whatever was not read is named in the answer."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.tasks.attachments import MAX_IMAGES_BASE64
from tests.fakes import MAX_REQUEST_BYTES, FakeAnthropic, FakeSlack, wait_until
from tests.fakes.other_host import OtherHost
from tests.integration.harness import BotProcess
from tests.integration.test_replies import PIXEL_PNG

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"


@pytest.fixture
async def other_host() -> AsyncIterator[OtherHost]:
    """A second local web server, which is not Slack."""
    async with OtherHost() as server:
        yield server


async def ask_with_files(bot: BotProcess, slack: FakeSlack, files: list[dict[str, Any]]) -> str:
    """Mention the bot with `files` and wait for its answer; the answer's text."""
    envelope = slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> look at these", user="U0ALICE", mention=True, files=files
    )
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])

    def answered() -> list[str]:
        texts = [str(m.get("text")) for m in slack.bot_replies(CHANNEL, thread_ts)]
        return [t for t in texts if t.startswith("echo") and not t.endswith("✍️")]  # ✍️: still being written

    await wait_until(answered, timeout=10)
    [answer] = answered()
    return answer


def question_blocks(claude: FakeAnthropic) -> list[dict[str, Any]]:
    """The content blocks of the question (the last user message) in the model's first request."""
    blocks: list[dict[str, Any]] = claude.requests[0]["messages"][-1]["content"]
    return blocks


def question_text(claude: FakeAnthropic) -> str:
    return "\n".join(str(block.get("text", "")) for block in question_blocks(claude))


async def test_the_bot_token_goes_to_slack_and_nowhere_else(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, other_host: OtherHost
) -> None:
    """A remote file, a file whose URLs name another host, one whose URLs carry a user name and password, and a Slack
    file that redirects to another host are not fetched from it (that host sees no request, so never the token); the
    answer names each, a Slack file is read."""
    remote = slack.add_remote_file("plan.txt", other_host.url + "docs/plan.txt", mimetype="text/plain")
    forged = slack.add_file("notes.txt", b"not these bytes", mimetype="text/plain")
    for key in ("url_private", "url_private_download"):
        forged[key] = other_host.url + forged[key].split("/", 3)[3]
    with_credentials = slack.add_file("creds.txt", b"nor these", mimetype="text/plain")
    for key in ("url_private", "url_private_download"):
        with_credentials[key] = "https://u:p@files.slack.com/" + with_credentials[key].split("/", 3)[3]
    moved = slack.add_file("moved.txt", b"not these either", mimetype="text/plain", redirect_to=other_host.url + "x")
    kept = slack.add_file("kept.txt", b"The word is HERON.", mimetype="text/plain")

    answer = await ask_with_files(bot, slack, [remote, forged, with_credentials, moved, kept])

    assert other_host.visits == [] and not other_host.saw(slack.bot_token)
    assert [d.file_id for d in slack.downloads] == [moved["id"], kept["id"]]  # from Slack only, with the token
    text = question_text(claude)
    assert "HERON" in text and "OSPREY" not in text
    assert "[File plan.txt could not be read: it is a link to a file kept outside Slack.]" in text
    assert "[File notes.txt could not be read.]" in text and "[File moved.txt could not be read.]" in text
    assert "[File creds.txt could not be read.]" in text
    unread = "plan.txt (kept outside Slack); notes.txt (could not be read); creds.txt (could not be read); moved.txt"
    assert f"Not read: {unread}" in answer
    assert "kept.txt" not in answer


async def test_a_photo_over_the_image_limit_is_skipped_and_the_answer_comes(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """A 4.5 MB photo (6 MB of base64, which the API refuses) is named and skipped; a small image still goes."""
    photo = slack.add_file("photo.jpg", b"\xff\xd8\xff" + bytes(4_500_000), mimetype="image/jpeg")
    chart = slack.add_file("chart.png", PIXEL_PNG, mimetype="image/png")

    answer = await ask_with_files(bot, slack, [photo, chart])

    images = [block for block in question_blocks(claude) if block["type"] == "image"]
    assert [image["source"]["data"] for image in images] == [base64.b64encode(PIXEL_PNG).decode()]
    assert "[Image photo.jpg skipped: larger than the 3.75 MB an image can have.]" in question_text(claude)
    assert "Not read: photo.jpg (larger than the 3.75 MB an image can have)" in answer
    assert [d.file_id for d in slack.downloads] == [chart["id"]]  # Slack said how large the photo was: not fetched


async def test_ten_large_photos_stay_within_the_request_limit(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """Ten 3.7 MB photos (each within the image limit, 49 MB of base64 together): as many go as fit the total cap,
    the request stays under the API's 32 MB, and the others are named."""
    photos = [
        slack.add_file(f"photo{n}.jpg", b"\xff\xd8\xff" + bytes([n]) * 3_700_000, mimetype="image/jpeg")
        for n in range(10)
    ]

    answer = await ask_with_files(bot, slack, photos)

    images = [block for block in question_blocks(claude) if block["type"] == "image"]
    sent = [base64.b64decode(image["source"]["data"]) for image in images]
    assert sent == [slack.file_content(photo["id"]) for photo in photos[:4]]  # whole, in order
    assert sum(len(image["source"]["data"]) for image in images) <= MAX_IMAGES_BASE64
    assert claude.request_sizes[0] < MAX_REQUEST_BYTES
    reason = "the images of one question can have 15 MB in all"
    for n in range(4, 10):
        assert f"[Image photo{n}.jpg skipped: {reason}.]" in question_text(claude)
        assert f"photo{n}.jpg ({reason})" in answer
