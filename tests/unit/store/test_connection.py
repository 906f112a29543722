"""Opening Redis from a URL."""

from __future__ import annotations

import ssl

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
