"""Files side of FakeSlack: Slack file objects, and url_private downloads that need the bot token like Slack's."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .slack_workspaces import InActiveWorkspace, TokenGrant

Args = dict[str, Any]

# Slack's `filetype` (and its `pretty_type`) for common extensions; the rest are "binary" (or "text" for text/*).
_EXTENSIONS: dict[str, tuple[str, str]] = {
    "txt": ("text", "Plain Text"),
    "log": ("text", "Plain Text"),
    "md": ("markdown", "Markdown (raw)"),
    "py": ("python", "Python"),
    "js": ("javascript", "JavaScript"),
    "sh": ("shell", "Shell"),
    "sql": ("sql", "SQL"),
    "go": ("go", "Go"),
    "rs": ("rust", "Rust"),
    "java": ("java", "Java"),
    "c": ("c", "C"),
    "cpp": ("cpp", "C++"),
    "diff": ("diff", "Diff"),
    "html": ("html", "HTML"),
    "css": ("css", "CSS"),
    "json": ("json", "JSON"),
    "xml": ("xml", "XML"),
    "yaml": ("yaml", "YAML"),
    "yml": ("yaml", "YAML"),
    "csv": ("csv", "CSV"),
    "tsv": ("tsv", "TSV"),
    "pdf": ("pdf", "PDF"),
    "png": ("png", "PNG"),
    "jpg": ("jpg", "JPEG"),
    "jpeg": ("jpg", "JPEG"),
    "gif": ("gif", "GIF"),
    "svg": ("svg", "SVG"),
    "zip": ("zip", "Zip"),
    "docx": ("docx", "Word Document"),
    "xlsx": ("xlsx", "Excel Spreadsheet"),
}
_PRETTY = {filetype: pretty for filetype, pretty in _EXTENSIONS.values()} | {"binary": "Binary"}
# A snippet's `preview` is its first few lines; `lines_more` counts the rest.
_PREVIEW_LINES = 5

# What files.slack.com answers a request without a valid token: the sign-in page, with HTTP 200.
LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en-US">
<head><meta charset="utf-8"><title>Sign in | Slack</title></head>
<body>
<h1>Sign in to Fake Team</h1>
<p>We suggest using the email address you use at work.</p>
<form id="signin_form" action="/" method="post"><input type="email" name="email"><button>Sign in</button></form>
</body>
</html>
"""


@dataclass
class SlackDownload:
    """One request for a file's url_private or url_private_download."""

    file_id: str
    authorized: bool  # carried "Authorization: Bearer <bot token>"; if not, it got the sign-in page
    download: bool  # url_private_download (True) or url_private (False)
    token: str | None = None


@dataclass
class _StoredFile:
    info: Args
    content: bytes
    redirect_to: str | None = None


def filetype_for(name: str, mimetype: str) -> str:
    """The `filetype` Slack derives from a file's name, falling back on its mimetype."""
    suffix = PurePosixPath(name).suffix.lower().lstrip(".")
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix][0]
    return "text" if mimetype.startswith("text/") else "binary"


def url_name(name: str) -> str:
    """The name as it appears in file URLs: Slack lower-cases it and turns anything unsafe into "_"."""
    return re.sub(r"[^a-z0-9._-]", "_", name.lower())


class SlackFilesMixin(InActiveWorkspace):
    """Adds file objects (add_file) and their url_private / url_private_download endpoints to FakeSlack."""

    bot_token: str
    _port: int
    clock: Callable[[], float]
    _tokens: dict[str, TokenGrant]

    if TYPE_CHECKING:

        def grant_reaches(self, grant: TokenGrant, team_id: str) -> bool: ...

    def _init_files(self) -> None:
        self.downloads: list[SlackDownload] = []
        self._files: dict[str, _StoredFile] = {}

    def _add_file_routes(self, app: web.Application) -> None:
        base = "/files-pri/{team:[A-Z0-9]+}-{file_id:F[A-Z0-9]+}"
        app.router.add_get(base + "/download/{name}", self._handle_file_download)
        app.router.add_get(base + "/{name}", self._handle_file_private)

    def add_file(
        self,
        name: str,
        content: bytes,
        *,
        mimetype: str,
        filetype: str | None = None,
        mode: str = "hosted",
        user: str = "U0HUMAN",
        redirect_to: str | None = None,
    ) -> Args:
        """Register a file uploaded by `user` and return its Slack file object, for `post_user_message(files=...)`.

        Its url_private(_download) point at this fake, so call it once the server runs. is_public stays False
        until the file is shared in a public channel, as on Slack. With `redirect_to` its URLs answer a token-bearing
        request with a 302 to that address instead of the bytes: for tests that no redirect takes the token off Slack.
        """
        if not self._port:
            raise RuntimeError("start FakeSlack before add_file: file URLs point at its port")
        if mode not in ("hosted", "snippet"):
            raise ValueError(f"mode must be 'hosted' or 'snippet', not {mode!r}")
        file_id = "F" + uuid.uuid4().hex[:10].upper()
        filetype = filetype or filetype_for(name, mimetype)
        now, slug = int(time.time()), url_name(name)
        private = f"http://127.0.0.1:{self._port}/files-pri/{self.team_id}-{file_id}"
        permalink = f"https://fake.slack.com/files/{user}/{file_id}/{slug}"
        info: Args = {
            "id": file_id,
            "created": now,
            "timestamp": now,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": _PRETTY.get(filetype, filetype.capitalize()),
            "user": user,
            "user_team": self.team_id,
            # Snippets can be edited in Slack after posting; uploaded files cannot.
            "editable": mode == "snippet",
            "size": len(content),
            "mode": mode,
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{private}/{slug}",
            "url_private_download": f"{private}/download/{slug}",
            "permalink": permalink,
            "permalink_public": f"https://slack-files.com/{self.team_id}-{file_id}-{uuid.uuid4().hex[:10]}",
        }
        if mode == "snippet":
            lines = content.decode("utf-8", errors="replace").splitlines()
            info.update(
                edit_link=permalink + "/edit",
                preview="\n".join(lines[:_PREVIEW_LINES]),
                lines=len(lines),
                lines_more=max(0, len(lines) - _PREVIEW_LINES),
                preview_is_truncated=False,
            )
        info.update(is_starred=False, has_rich_preview=False, file_access="visible")
        self._files[file_id] = _StoredFile(info, content, redirect_to)
        return dict(info)

    def add_remote_file(
        self, title: str, external_url: str, *, mimetype: str = "application/pdf", user: str = "U0HUMAN"
    ) -> Args:
        """Register a remote file (files.remote.add: a link to a document kept elsewhere) and return its file object.

        Slack stores no bytes for it: mode is "external", is_external is true, and url_private is the external URL,
        chosen by whoever added the file.
        """
        file_id = "F" + uuid.uuid4().hex[:10].upper()
        now = int(time.time())
        filetype = filetype_for(title, mimetype)
        info: Args = {
            "id": file_id,
            "created": now,
            "timestamp": now,
            "name": title,
            "title": title,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": _PRETTY.get(filetype, filetype.capitalize()),
            "user": user,
            "user_team": self.team_id,
            "editable": False,
            "size": 0,
            "mode": "external",
            "is_external": True,
            "external_type": "app",
            "external_id": uuid.uuid4().hex,
            "external_url": external_url,
            "url_private": external_url,
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "permalink": f"https://fake.slack.com/files/{user}/{file_id}/{url_name(title)}",
            "has_rich_preview": False,
            "file_access": "visible",
        }
        self._files[file_id] = _StoredFile(info, b"")
        return dict(info)

    def file_content(self, file_id: str) -> bytes:
        """The bytes registered for `file_id`."""
        return self._files[file_id].content

    def _shared_files(self, files: list[Args], channel: str) -> list[Args]:
        """Copies of `files` as a message in `channel` carries them; sharing in a public channel makes them public."""
        public = channel.startswith("C")
        shared = []
        for file in files:
            stored = self._files.get(file.get("id", ""))
            was_public = stored.info["is_public"] if stored is not None else file.get("is_public", False)
            if stored is not None:
                stored.info["is_public"] = public or was_public
            shared.append({**file, "is_public": public or was_public})
        return shared

    async def _handle_file_private(self, request: web.Request) -> web.Response:
        return self._serve_file(request, download=False)

    async def _handle_file_download(self, request: web.Request) -> web.Response:
        return self._serve_file(request, download=True)

    def _serve_file(self, request: web.Request, *, download: bool) -> web.Response:
        file_id = request.match_info["file_id"]
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        match = request.match_info
        # Only a working bot token of the workspace in the URL opens the file.
        grant = self._tokens.get(token or "")
        authorized = (
            grant is not None
            and grant.kind == "bot"
            and self.grant_reaches(grant, match["team"])
            and grant.works_at(self.clock())
        )
        self.downloads.append(SlackDownload(file_id, authorized, download, token))
        if not authorized:
            # The classic pitfall: no error status, just Slack's sign-in page where the file should be.
            return web.Response(text=LOGIN_PAGE, content_type="text/html", charset="utf-8")
        stored = self._files.get(file_id)
        if (
            stored is None
            or stored.info["is_external"]  # Slack holds no bytes of a remote file
            or match["team"] != stored.info["user_team"]
            or match["name"] != url_name(stored.info["name"])
        ):
            return web.Response(status=404, text="<html><body>File not found</body></html>", content_type="text/html")
        if stored.redirect_to is not None:
            raise web.HTTPFound(stored.redirect_to)
        headers = {"Content-Disposition": f'attachment; filename="{url_name(stored.info["name"])}"'} if download else {}
        return web.Response(body=stored.content, headers={"Content-Type": stored.info["mimetype"], **headers})


__all__ = ["LOGIN_PAGE", "SlackDownload", "SlackFilesMixin", "filetype_for", "url_name"]
