"""The paths the memory tool may name: /memories and what lies under it, nothing else.

The model chooses the paths, so they are held to a narrow form rather than cleaned up: no "." or ".." segment (no
way out of /memories, however it is spelled), no empty segment, no hidden names, no backslashes, percent signs or
control characters (no encoded traversal either), and bounded lengths.
"""

from __future__ import annotations

import re

ROOT = "/memories"
MAX_PATH_CHARS = 200
MAX_DEPTH = 6
_SEGMENT = re.compile(r"[\w\- ][\w.\- ]{0,99}")


class BadPath(ValueError):
    """A path the memory tool refuses."""


def checked_path(path: object, *, root_allowed: bool = False) -> str:
    """The path in canonical form (no trailing slash), or BadPath saying what is wrong with it."""
    if not isinstance(path, str) or not path:
        raise BadPath("a path is required, like /memories/notes.md")
    if len(path) > MAX_PATH_CHARS:
        raise BadPath(f"paths have at most {MAX_PATH_CHARS} characters")
    trimmed = path.rstrip("/") if path != "/" else path
    if trimmed == ROOT:
        if not root_allowed:
            raise BadPath(f"this command needs a path under {ROOT}, not {ROOT} itself")
        return ROOT
    if not trimmed.startswith(ROOT + "/"):
        raise BadPath(f"every path must be under {ROOT}, like {ROOT}/notes.md; got {path[:60]!r}")
    segments = trimmed[len(ROOT) + 1 :].split("/")
    if len(segments) > MAX_DEPTH:
        raise BadPath(f"paths go at most {MAX_DEPTH} folders deep")
    for segment in segments:
        if segment in (".", "..") or not _SEGMENT.fullmatch(segment) or segment != segment.strip():
            raise BadPath(
                f"{path[:60]!r} is not a valid memory path: use names of letters, digits, '-', '_', '.' and spaces, "
                "separated by '/', without '.' or '..' segments or names starting with '.'"
            )
    return trimmed


def is_under(path: str, folder: str) -> bool:
    """Whether `path` lies inside `folder` (not the folder itself)."""
    return path.startswith(folder + "/")


def parents(path: str) -> list[str]:
    """The folders that hold `path`, from /memories/x down to its own folder (not /memories)."""
    segments = path[len(ROOT) + 1 :].split("/")[:-1]
    return [ROOT + "/" + "/".join(segments[: depth + 1]) for depth in range(len(segments))]
