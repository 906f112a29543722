"""Narrowing redis-py's `bytes | str` results: the pool is opened with decode_responses=True, so they are str."""

from __future__ import annotations

from collections.abc import Mapping


def text(value: object) -> str:
    """One decoded value."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a Redis string, got {type(value).__name__}")


def fields(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """A decoded hash."""
    return {text(key): text(value) for key, value in raw.items()}


def numbered(fields: Mapping[str, str], prefix: str) -> list[tuple[int, str]]:
    """The values of a hash's fields named `prefix` + a number (turn:N, step:N), by number."""
    found = ((name.removeprefix(prefix), value) for name, value in fields.items() if name.startswith(prefix))
    return sorted((int(number), value) for number, value in found if number.isdigit())
