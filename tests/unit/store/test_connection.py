"""Opening Redis from a URL."""

from __future__ import annotations

import ssl

from bot.tasks.runner import RunnerSettings
from store.connection import connect


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
