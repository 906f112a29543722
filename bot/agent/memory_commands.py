"""The memory tool's six commands (memory_20250818) over a snapshot of a channel's files: what a read shows, or
the change a write makes and the text that reports it.

Files live only as paths; a folder is any path prefix that holds files, so it exists while it holds one. Results
are plain text the model reads, in the shape Anthropic's documentation shows for each command (a listing with
sizes, numbered lines, one-line confirmations), with errors raised as CommandError for an is_error result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.agent.memory_paths import ROOT, checked_path, is_under, parents
from store.memory import MemoryChange, MemorySnapshot

LINE_NUMBER_WIDTH = 6
MAX_LIST_DEPTH = 2
WRITE_COMMANDS = frozenset({"create", "str_replace", "insert", "delete", "rename"})


class CommandError(ValueError):
    """A command that cannot be carried out; its message is the tool result the model reads."""


def view(snapshot: MemorySnapshot, command: Mapping[str, Any]) -> str:
    """A folder's listing, or a file's numbered lines (all, or a view_range [first, last], last -1 = the end)."""
    path = checked_path(command.get("path"), root_allowed=True)
    if path in snapshot.files:
        return _numbered(path, snapshot.files[path], command.get("view_range"))
    if path == ROOT or _is_folder(snapshot.files, path):
        return _listing(snapshot.files, path)
    raise CommandError(f"The path {path} does not exist.")


def change(snapshot: MemorySnapshot, command: Mapping[str, Any]) -> MemoryChange:
    """The change a write command makes to the snapshot."""
    name = command.get("command")
    if name == "create":
        return _create(snapshot.files, command)
    if name == "str_replace":
        return _str_replace(snapshot.files, command)
    if name == "insert":
        return _insert(snapshot.files, command)
    if name == "delete":
        return _delete(snapshot.files, command)
    if name == "rename":
        return _rename(snapshot.files, command)
    raise CommandError(f"Unknown command {str(name)[:40]!r}: use view, create, str_replace, insert, delete or rename.")


def _text(command: Mapping[str, Any], name: str) -> str:
    value = command.get(name)
    if not isinstance(value, str):
        raise CommandError(f"`{name}` is required and must be a string.")
    return value


def _is_folder(files: Mapping[str, str], path: str) -> bool:
    return any(is_under(name, path) for name in files)


def _size(count: int) -> str:
    if count < 1024:
        return f"{count}B"
    return f"{count / 1024:.1f}K"


def _listing(files: Mapping[str, str], folder: str) -> str:
    sizes: dict[str, int] = {}
    base_depth = folder.count("/")
    for name, text in files.items():
        if not is_under(name, folder):
            continue
        for entry in [*parents(name), name]:
            depth = entry.count("/") - base_depth
            if is_under(entry, folder) and depth <= MAX_LIST_DEPTH:
                sizes[entry] = sizes.get(entry, 0) + len(text.encode())
    total = sum(len(text.encode()) for name, text in files.items() if is_under(name, folder))
    lines = [f"{_size(total)}\t{folder}"]
    for entry in sorted(sizes):
        suffix = "/" if _is_folder(files, entry) and entry not in files else ""
        lines.append(f"{_size(sizes[entry])}\t{entry}{suffix}")
    heading = f"Files and folders in {folder}, up to {MAX_LIST_DEPTH} levels deep, with their sizes:"
    return heading + "\n" + "\n".join(lines)


def _numbered(path: str, text: str, view_range: object) -> str:
    lines = text.split("\n")
    first, last = 1, len(lines)
    if view_range is not None:
        if (
            not isinstance(view_range, list)
            or len(view_range) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in view_range)
        ):
            raise CommandError("`view_range` must be two line numbers [first, last]; last may be -1 for the end.")
        first, last = max(1, view_range[0]), len(lines) if view_range[1] == -1 else min(view_range[1], len(lines))
        if first > last:
            raise CommandError(f"`view_range` {view_range} is outside the file's {len(lines)} lines.")
    shown = [f"{str(number).rjust(LINE_NUMBER_WIDTH)}\t{lines[number - 1]}" for number in range(first, last + 1)]
    return f"Content of {path}, with line numbers:\n" + "\n".join(shown)


def _writable_file(files: Mapping[str, str], path: str) -> None:
    if _is_folder(files, path):
        raise CommandError(f"{path} is a folder, not a file.")
    for folder in parents(path):
        if folder in files:
            raise CommandError(f"{folder} is a file, so it cannot hold {path}.")


def _existing_file(files: Mapping[str, str], path: str) -> str:
    if path in files:
        return files[path]
    if _is_folder(files, path):
        raise CommandError(f"{path} is a folder, not a file.")
    raise CommandError(f"The path {path} does not exist.")


def _create(files: Mapping[str, str], command: Mapping[str, Any]) -> MemoryChange:
    path = checked_path(command.get("path"))
    text = _text(command, "file_text")
    _writable_file(files, path)
    verb = "overwritten" if path in files else "created"
    return MemoryChange({path: text}, f"File {verb}: {path}")


def _str_replace(files: Mapping[str, str], command: Mapping[str, Any]) -> MemoryChange:
    path = checked_path(command.get("path"))
    old, new = _text(command, "old_str"), command.get("new_str", "")
    if not isinstance(new, str):
        raise CommandError("`new_str` must be a string.")
    text = _existing_file(files, path)
    if not old:
        raise CommandError("`old_str` must not be empty.")
    count = text.count(old)
    if count != 1:
        where = "does not appear" if count == 0 else f"appears {count} times"
        raise CommandError(f"No change made: `old_str` {where} in {path}; it must appear exactly once.")
    at = text.index(old)
    updated = text.replace(old, new, 1)
    line = text[:at].count("\n")
    lines = updated.split("\n")
    snippet = [
        f"{str(number + 1).rjust(LINE_NUMBER_WIDTH)}\t{lines[number]}"
        for number in range(max(0, line - 2), min(len(lines), line + new.count("\n") + 3))
    ]
    return MemoryChange({path: updated}, f"Edited {path}. The changed lines now read:\n" + "\n".join(snippet))


def _insert(files: Mapping[str, str], command: Mapping[str, Any]) -> MemoryChange:
    path = checked_path(command.get("path"))
    addition = _text(command, "insert_text")
    at = command.get("insert_line")
    text = _existing_file(files, path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # a final newline ends the last line; it does not start another
    if not isinstance(at, int) or isinstance(at, bool) or not 0 <= at <= len(lines):
        raise CommandError(f"`insert_line` must be a line number from 0 to {len(lines)} (0 = before the first line).")
    lines[at:at] = addition.removesuffix("\n").split("\n")
    return MemoryChange({path: "\n".join(lines) + "\n"}, f"Inserted text after line {at} of {path}.")


def _delete(files: Mapping[str, str], command: Mapping[str, Any]) -> MemoryChange:
    path = checked_path(command.get("path"))
    gone = [name for name in files if name == path or is_under(name, path)]
    if not gone:
        raise CommandError(f"The path {path} does not exist.")
    return MemoryChange(dict.fromkeys(gone), f"Deleted {path}" + (f" ({len(gone)} files)" if len(gone) > 1 else ""))


def _rename(files: Mapping[str, str], command: Mapping[str, Any]) -> MemoryChange:
    old, new = checked_path(command.get("old_path")), checked_path(command.get("new_path"))
    moving = {name: text for name, text in files.items() if name == old or is_under(name, old)}
    if not moving:
        raise CommandError(f"The path {old} does not exist.")
    if new in files or _is_folder(files, new):
        raise CommandError(f"The destination {new} already exists.")
    if new == old or is_under(new, old):
        raise CommandError(f"{old} cannot be moved into itself.")
    writes: dict[str, str | None] = dict.fromkeys(moving)
    for name, text in moving.items():
        target = checked_path(new + name[len(old) :])
        _writable_file({k: v for k, v in files.items() if k not in moving}, target)
        writes[target] = text
    return MemoryChange(writes, f"Renamed {old} to {new}.")
