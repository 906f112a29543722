"""Files shared with a mention, made readable for Claude: text as text, images as image blocks, the rest named.

Text files and snippets are read up to MAX_TEXT_CHARS (the turn says when one was cut) and go into the user's
turn, so they stay in the thread's history. Images go to Claude with the request that answers them, as base64
image blocks; the history keeps only their names, so that Redis does not hold megabytes of pictures.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from typing import Any

from bot.errors import SlackError
from bot.ports import SlackGateway
from store.models import SharedFile

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 20_000
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # the Messages API's limit for one image
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
    """What the files of one message add to its turn (text) and to its request (image blocks)."""

    text: str = ""
    images: list[dict[str, Any]] = field(default_factory=list)


def is_text(shared: SharedFile) -> bool:
    """Whether the file is something to read as text."""
    return shared.mode == "snippet" or shared.mimetype.startswith("text/") or shared.mimetype in TEXT_TYPES


async def read_attachments(
    files: tuple[SharedFile, ...], slack: SlackGateway, *, with_images: bool = True
) -> Attachments:
    """Download what can be read and say what could not, file by file. Without `with_images` (a message that is
    context, not a question: no request goes with it) images are only named."""
    found = Attachments()
    notes: list[str] = []
    for shared in files:
        try:
            if is_text(shared):
                notes.append(await _text(shared, slack))
            elif shared.mimetype in IMAGE_TYPES and not with_images:
                notes.append(f"[Image {shared.name} shared.]")
            elif shared.mimetype in IMAGE_TYPES:
                data, _ = await slack.download(shared.url, MAX_IMAGE_BYTES)
                if len(data) > MAX_IMAGE_BYTES:
                    notes.append(f"[Image {shared.name} skipped: larger than 5 MB.]")
                    continue
                encoded = base64.b64encode(data).decode()
                found.images.append(
                    {"type": "image", "source": {"type": "base64", "media_type": shared.mimetype, "data": encoded}}
                )
                notes.append(f"[Image {shared.name} attached.]")
            else:
                notes.append(f"[File {shared.name} ({shared.mimetype}) skipped: I can read text files and images.]")
        except SlackError as exc:
            log.warning("could not read shared file %s: %s", shared.file_id, exc)
            notes.append(f"[File {shared.name} could not be read.]")
    found.text = "\n\n".join(notes)
    return found


async def _text(shared: SharedFile, slack: SlackGateway) -> str:
    data, _ = await slack.download(shared.url, MAX_TEXT_CHARS * 4)  # UTF-8 takes at most 4 bytes a character
    text = data.decode("utf-8", errors="replace")
    cut = ""
    if len(text) > MAX_TEXT_CHARS or len(data) > MAX_TEXT_CHARS * 4:
        text = text[:MAX_TEXT_CHARS]
        cut = f" (cut: only its first {MAX_TEXT_CHARS:,} characters were read)"
    return f"[File {shared.name}{cut}:]\n```\n{text}\n```"
