"""Errors raised by the store.

StoreError
└── CorruptRecord    a Redis value does not parse; the record is skipped or failed, never silently dropped
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's own errors (Redis's own errors pass through as redis.exceptions.RedisError)."""


class CorruptRecord(StoreError):
    """A stored value is malformed."""


class LeaseLost(StoreError):
    """The caller's lease on a thread has passed to another worker; its write was refused."""
