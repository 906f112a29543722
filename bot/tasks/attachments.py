"""Files shared with a mention, made readable for Claude: text as text, images as image blocks, the rest named.

Text files and snippets are read up to MAX_TEXT_CHARS (the turn says when one was cut) and go into the user's
turn, so they stay in the thread's history. Images go to Claude with the request that answers them, as base64
image blocks; the history keeps only their names, so that Redis does not hold megabytes of pictures. Images are
held to the Messages API's limits (5 MB of base64 each, 32 MB a request): what does not fit is named and skipped,
so one answer holds at most MAX_IMAGES_BASE64 of images (plus the one being read). Remote files (links to
documents kept outside Slack) are named and never fetched: the bot token goes only to Slack.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from typing import Any

from bot.core.errors import SlackError
from bot.core.ports import SlackGateway
from store.models import SharedFile

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 20_000
# The API refuses an image whose base64 data is over 5 MB ("image exceeds 5 MB maximum: N bytes > 5242880 bytes");
# base64 takes 4 characters for 3 bytes, so a file may have at most 3.75 MiB.
MAX_IMAGE_BASE64 = 5 * 1024 * 1024
MAX_IMAGE_BYTES = MAX_IMAGE_BASE64 // 4 * 3
# The API takes up to 100 images a request, but past 20 it refuses any image over 2000 px a side (a phone photo
# is larger): 20 keeps ordinary photos valid, and is more than people share with one question.
MAX_IMAGES = 20
# The API refuses a request over 32 MB. Images may fill 20 MiB of it, leaving about 11 MB for the rest (the
# context, at most CONTEXT_TOKEN_BUDGET tokens, and the tool loop's results).
MAX_IMAGES_BASE64 = 20 * 1024 * 1024
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
TEXT_TYPES = {
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-yaml",
    "application/yaml",
    "application/x-sh",
    "application/sql",
    "application/toml",
}
# What an image costs in input tokens, for the context estimate (a 1,000 x 1,000 picture is about 1,300).
IMAGE_TOKENS = 1_600


@dataclass
class Attachments:
    """What the files of one message add to its turn (text) and to its request (image blocks), and which of them
    could not go to Claude (`unread`: one short phrase each, naming the file, for the answer to say so)."""

    text: str = ""
    images: list[dict[str, Any]] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)

    @property
    def image_chars(self) -> int:
        """Characters of base64 image data held so far."""
        return sum(len(image["source"]["data"]) for image in self.images)


def is_text(shared: SharedFile) -> bool:
    """Whether the file is something to read as text."""
    return shared.mode == "snippet" or shared.mimetype.startswith("text/") or shared.mimetype in TEXT_TYPES


def encoded_size(raw_bytes: int) -> int:
    """Characters of base64 for `raw_bytes` bytes."""
    return 4 * -(-raw_bytes // 3)


async def read_attachments(
    files: tuple[SharedFile, ...], slack: SlackGateway, team_id: str, *, with_images: bool = True
) -> Attachments:
    """Download what can be read (with the bot token of `team_id`) and say what could not, file by file. Without
    `with_images` (a message that is context, not a question: no request goes with it) images are only named."""
    found = Attachments()
    notes: list[str] = []
    for shared in files:
        try:
            if shared.mode == "external":
                notes.append(f"[File {shared.name} could not be read: it is a link to a file kept outside Slack.]")
                found.unread.append(f"{shared.name} (kept outside Slack)")
            elif is_text(shared):
                notes.append(await _text(shared, slack, team_id))
            elif shared.mimetype in IMAGE_TYPES and not with_images:
                notes.append(f"[Image {shared.name} shared.]")
            elif shared.mimetype in IMAGE_TYPES:
                notes.append(await _image(shared, slack, team_id, found))
            else:
                notes.append(f"[File {shared.name} ({shared.mimetype}) skipped: I can read text files and images.]")
        except SlackError as exc:
            log.warning("could not read shared file %s: %s", shared.file_id, exc)
            notes.append(f"[File {shared.name} could not be read.]")
            found.unread.append(f"{shared.name} (could not be read)")
    found.text = "\n\n".join(notes)
    return found


def unread_note(found: Attachments) -> str:
    """The line an answer ends with when files of its question did not reach Claude ("" when all did)."""
    return f"\n\n_(Not read: {'; '.join(found.unread)}.)_" if found.unread else ""


async def _image(shared: SharedFile, slack: SlackGateway, team_id: str, found: Attachments) -> str:
    """Add the image to `found` if it fits the API's limits; the note for the turn either way."""
    room = MAX_IMAGES_BASE64 - found.image_chars
    why = _no_room(shared.size, room, len(found.images))  # Slack's stated size: skip before downloading
    data = b""
    if why is None:
        data, _ = await slack.download(team_id, shared.url, min(MAX_IMAGE_BYTES, room // 4 * 3))
        why = _no_room(len(data), room, len(found.images))  # what came, if Slack's size was wrong
    if why is not None:
        found.unread.append(f"{shared.name} ({why})")
        return f"[Image {shared.name} skipped: {why}.]"
    encoded = base64.b64encode(data).decode()
    found.images.append({"type": "image", "source": {"type": "base64", "media_type": shared.mimetype, "data": encoded}})
    return f"[Image {shared.name} attached.]"


def _no_room(raw_bytes: int, room: int, count: int) -> str | None:
    """Why an image of `raw_bytes` cannot join the request, or None if it can."""
    if raw_bytes > MAX_IMAGE_BYTES:
        return f"larger than the {_mb(MAX_IMAGE_BYTES)} an image can have"
    if count >= MAX_IMAGES:
        return f"only {MAX_IMAGES} images go with one question"
    if encoded_size(raw_bytes) > room:
        return f"the images of one question can have {_mb(MAX_IMAGES_BASE64 // 4 * 3)} in all"
    return None


def _mb(raw_bytes: int) -> str:
    return f"{raw_bytes / 2**20:g} MB"


async def _text(shared: SharedFile, slack: SlackGateway, team_id: str) -> str:
    data, _ = await slack.download(team_id, shared.url, MAX_TEXT_CHARS * 4)  # UTF-8 takes at most 4 bytes a character
    text = data.decode("utf-8", errors="replace")
    cut = ""
    if len(text) > MAX_TEXT_CHARS or len(data) > MAX_TEXT_CHARS * 4:
        text = text[:MAX_TEXT_CHARS]
        cut = f" (cut: only its first {MAX_TEXT_CHARS:,} characters were read)"
    return f"[File {shared.name}{cut}:]\n```\n{text}\n```"
