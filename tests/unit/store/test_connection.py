"""Opening Redis from a URL."""

from __future__ import annotations

import os
import ssl
from typing import Any

import pytest

from bot.tasks.runner import RunnerSettings
from store.connection import connect, lost_mid_write


async def test_rediss_urls_verify_the_server_certificate_unless_told_not_to() -> None:
    """A rediss:// URL checks the certificate and host name by default; tls_verify=False (Heroku Redis, with its
    self-signed certificates) checks neither; redis:// has no TLS at all."""
    verified = connect("rediss://:secret@redis.example:6380/0")
    unverified = connect("rediss://:secret@redis.example:6380/0", tls_verify=False)
    plain = connect("redis://127.0.0.1:6379/0", tls_verify=False)
    try:
        options = verified.connection_pool.connection_kwargs
        assert options.get("ssl_cert_reqs", "required") in ("required", ssl.CERT_REQUIRED)
        assert options.get("ssl_check_hostname", True) is True
        options = unverified.connection_pool.connection_kwargs
        assert options["ssl_cert_reqs"] in ("none", ssl.CERT_NONE) and options["ssl_check_hostname"] is False
        assert "ssl_cert_reqs" not in plain.connection_pool.connection_kwargs
    finally:
        for client in (verified, unverified, plain):
            await client.aclose()


def test_a_blocked_queue_read_ends_in_redis_before_the_client_gives_up_on_it() -> None:
    """The runner's reads block up to block_ms in Redis; the socket waits longer, on standalone and cluster, so a
    read never times out in the client while Redis may still be handing it an entry."""
    block_seconds = RunnerSettings(consumer="web.1").block_ms / 1000
    standalone = connect("redis://127.0.0.1:6379")
    assert standalone.connection_pool.connection_kwargs["socket_timeout"] > block_seconds


def test_a_write_on_a_connection_closed_under_it_is_told_from_a_bug_of_ours() -> None:
    """redis-py leaks AttributeError/TypeError from a transport closed under a write (redis-py #3546, #4287): raised
    in its connection's write, that is a lost connection; the same error types raised in our code are not."""
    namespace: dict[str, Any] = {}
    # The write as redis-py's asyncio connection makes it, its writer gone under it.
    source = "def send(writer):\n    writer.writelines([b'PING'])\n"
    exec(compile(source, os.path.join("site-packages", "redis", "asyncio", "connection.py"), "exec"), namespace)
    with pytest.raises(AttributeError) as leaked:
        namespace["send"](None)
    assert lost_mid_write(leaked.value)

    with pytest.raises(AttributeError) as ours:
        None.writelines([])  # type: ignore[attr-defined]
    assert not lost_mid_write(ours.value)
    assert not lost_mid_write(ConnectionError("refused"))
