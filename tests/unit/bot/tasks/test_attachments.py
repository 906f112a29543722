"""Shared files read for one question, against the fake Slack: images within the Messages API's limits."""

from __future__ import annotations

from bot.tasks.attachments import MAX_IMAGE_BYTES, MAX_IMAGES, MAX_IMAGES_BASE64, encoded_size, read_attachments
from handlers.event_listeners import parse_files
from handlers.gateway import WebApiGateway
from tests.fakes import DEFAULT_TEAM_ID as TEAM
from tests.fakes import MAX_IMAGE_BASE64, FakeSlack


def test_the_limits_fit_the_api() -> None:
    """The largest image the bot sends is exactly the API's 5 MB of base64; the images of a request leave room."""
    assert encoded_size(MAX_IMAGE_BYTES) == MAX_IMAGE_BASE64
    assert encoded_size(MAX_IMAGE_BYTES + 1) > MAX_IMAGE_BASE64
    assert MAX_IMAGES_BASE64 <= 32_000_000 - 10_000_000


async def test_at_most_twenty_images_go_with_one_question(slack: FakeSlack, gateway: WebApiGateway) -> None:
    """Past MAX_IMAGES, images are named as skipped and not downloaded."""
    files = [slack.add_file(f"p{n}.png", b"\x89PNG" + bytes([n]), mimetype="image/png") for n in range(25)]
    found = await read_attachments(parse_files(files), gateway, TEAM)
    assert len(found.images) == MAX_IMAGES == 20
    assert found.unread == [f"p{n}.png (only 20 images go with one question)" for n in range(20, 25)]
    assert len(slack.downloads) == 20


async def test_an_image_larger_than_slack_said_is_skipped(slack: FakeSlack, gateway: WebApiGateway) -> None:
    """The size Slack states is checked before downloading, and the bytes that came are checked again."""
    file = slack.add_file("big.jpg", bytes(MAX_IMAGE_BYTES + 1), mimetype="image/jpeg")
    found = await read_attachments(parse_files([{**file, "size": 1000}]), gateway, TEAM)
    assert found.images == [] and found.unread == ["big.jpg (larger than the 3.75 MB an image can have)"]
    assert "[Image big.jpg skipped: larger than the 3.75 MB an image can have.]" in found.text
    exact = slack.add_file("exact.jpg", bytes(MAX_IMAGE_BYTES), mimetype="image/jpeg")
    found = await read_attachments(parse_files([exact]), gateway, TEAM)
    assert [len(image["source"]["data"]) for image in found.images] == [MAX_IMAGE_BASE64]
    assert found.unread == []


async def test_a_remote_file_is_named_and_not_fetched(slack: FakeSlack, gateway: WebApiGateway) -> None:
    """A remote file (a link kept outside Slack) is named as not read, and no request is made for it."""
    remote = slack.add_remote_file("plan.txt", "https://docs.example.com/plan", mimetype="text/plain")
    found = await read_attachments(parse_files([remote]), gateway, TEAM, with_images=False)
    assert found.text == "[File plan.txt could not be read: it is a link to a file kept outside Slack.]"
    assert found.unread == ["plan.txt (kept outside Slack)"] and slack.downloads == []


async def test_a_file_whose_url_carries_credentials_is_named_and_not_fetched(
    slack: FakeSlack, gateway: WebApiGateway
) -> None:
    """A file whose URL has a user name and password (on files.slack.com, or on the Slack the bot uses) is refused
    before any request, and named as not read; the question's other files are still read."""
    on_files_host = {**slack.add_file("a.txt", b"a", mimetype="text/plain"), "url_private_download": None}
    on_files_host["url_private"] = "https://u:p@files.slack.com/files-pri/T0-F0A/a.txt"
    local = slack.add_file("b.txt", b"b", mimetype="text/plain")
    local["url_private_download"] = local["url_private_download"].replace("http://", "http://u:p@", 1)
    kept = slack.add_file("c.txt", b"KEPT", mimetype="text/plain")
    found = await read_attachments(parse_files([on_files_host, local, kept]), gateway, TEAM)
    assert found.unread == ["a.txt (could not be read)", "b.txt (could not be read)"]
    assert "KEPT" in found.text and [d.file_id for d in slack.downloads] == [kept["id"]]
