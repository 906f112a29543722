"""Errors raised by the store.

StoreError
├── CorruptRecord    a Redis value does not parse; the record is skipped or failed, never silently dropped
├── LeaseLost        the caller's lease on a thread passed to another worker; its write was refused
├── TaskStopped      a person asked to stop the task; its next step (or its start) was refused
├── UnusableRedis    REDIS_URL names a Redis the bot cannot use; the process stops with this one line
└── ShardChangeRefused  a change of the number of queue shards cannot run now; nothing was changed
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's own errors (Redis's own errors pass through as redis.exceptions.RedisError)."""


class CorruptRecord(StoreError):
    """A stored value is malformed."""


class LeaseLost(StoreError):
    """The caller's lease on a thread has passed to another worker; its write was refused."""


class TaskStopped(StoreError):
    """A person asked to stop the task (store/stops.py): the journal refuses its next step, and its start.

    `by` is who asked; `partial_text` is what the answer had shown when it stopped, filled in by the caller that was
    writing it (the store does not know it)."""

    def __init__(self, by: str, partial_text: str = "") -> None:
        super().__init__(f"stopped by {by}")
        self.by = by
        self.partial_text = partial_text


class UnusableRedis(StoreError):
    """REDIS_URL names a Redis the bot cannot use: a cluster that is down, a proxy that refuses scripts, data laid
    out for another number of queue shards."""


class ShardChangeRefused(StoreError):
    """A change of the number of queue shards cannot run now (bot processes are alive, or the data is not laid out as
    the change expects); it changed nothing."""
