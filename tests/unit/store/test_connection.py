"""Opening Redis from a URL."""

from __future__ import annotations

import ssl

from store.connection import connect


async def test_rediss_urls_accept_self_signed_certificates() -> None:
    """A rediss:// URL (Heroku Redis) does not verify the server certificate; redis:// has no TLS at all."""
    secure = connect("rediss://:secret@redis.example:6380/0")
    plain = connect("redis://127.0.0.1:6379/0")
    try:
        assert secure.connection_pool.connection_kwargs["ssl_cert_reqs"] in ("none", ssl.CERT_NONE)
        assert "ssl_cert_reqs" not in plain.connection_pool.connection_kwargs
    finally:
        await secure.aclose()
        await plain.aclose()
