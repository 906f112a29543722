"""rediss:// against a real TLS redis-server with a self-signed certificate: verified unless REDIS_TLS_VERIFY=false."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from store.connection import certificate_rejected, connect
from tests.fakes import FakeAnthropic, FakeSlack, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import free_port
from tests.integration.redis_server import answers_ping

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"


class TlsRedis:
    """A redis-server child process that speaks TLS only, with a fresh self-signed certificate for 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.cert = folder / "cert.pem"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its rediss:// URL."""
        return f"rediss://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Make the certificate, start the server and wait until it answers over TLS."""
        openssl, server = shutil.which("openssl"), shutil.which("redis-server")
        assert openssl and server, "these tests need openssl and redis-server"
        self.folder.mkdir(parents=True, exist_ok=True)
        key = self.folder / "key.pem"
        request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        request += ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(self.cert)]
        subprocess.run([openssl, *request], check=True, capture_output=True)
        args = ["--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--tls-cert-file", str(self.cert), "--tls-key-file", str(key), "--tls-auth-clients", "no"]
        log = self.folder / "redis.log"
        self.process = subprocess.Popen([server, *args, "--logfile", str(log)], stdout=subprocess.DEVNULL)
        client = redis.Redis(
            host="127.0.0.1", port=self.port, ssl=True, ssl_ca_certs=str(self.cert), socket_connect_timeout=0.2
        )
        if answers_ping(client, self.process, timeout):
            return
        raise AssertionError(f"TLS redis-server did not start (built without TLS?):\n{log.read_text(errors='replace')}")

    def stop(self) -> None:
        """Stop it by its pid."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    """A TLS-only Redis with a self-signed certificate."""
    server = TlsRedis(tmp_path / "tls-redis")
    server.start()
    yield server
    server.stop()


async def test_a_self_signed_certificate_is_refused_unless_verification_is_off(tls_redis: TlsRedis) -> None:
    """By default the connection fails on the certificate; trusting that certificate or turning verification off
    (as Heroku Redis needs) connects."""
    verified = connect(tls_redis.url)
    trusted = connect(f"{tls_redis.url}?ssl_ca_certs={tls_redis.cert}")  # a private CA, named in the URL
    unverified = connect(tls_redis.url, tls_verify=False)
    try:
        with pytest.raises(RedisConnectionError) as refused:
            await verified.ping()
        assert certificate_rejected(refused.value) and "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
        assert await trusted.ping() is True
        assert await unverified.ping() is True
    finally:
        for client in (verified, trusted, unverified):
            await client.aclose()


async def test_the_bot_stops_with_one_clear_line_on_a_self_signed_redis(
    make_bot: BotFactory, tls_redis: TlsRedis
) -> None:
    """With verification on (the default) the bot exits 1 at startup with one line that names REDIS_TLS_VERIFY."""
    bot = make_bot(REDIS_URL=tls_redis.url)
    await bot.start(wait_ready=False)
    assert bot.process is not None
    assert await asyncio.wait_for(bot.process.wait(), timeout=30) == 1
    lines = [line for line in bot.output().splitlines() if "slack_bolt" not in line]  # Bolt's startup notice
    assert len(lines) == 1 and "REDIS_TLS_VERIFY=false" in lines[0] and "certificate" in lines[0], lines


async def test_the_bot_answers_over_tls_with_verification_off(
    make_bot: BotFactory, tls_redis: TlsRedis, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """With REDIS_TLS_VERIFY=false the bot runs on the self-signed Redis and answers a mention."""
    bot = make_bot(REDIS_URL=tls_redis.url, REDIS_TLS_VERIFY="false")
    await bot.start()
    envelope: dict[str, Any] = slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> over TLS?", user="U0ALICE", mention=True
    )
    assert await bot.post_event(envelope) == 200
    thread_ts = str(envelope["event"]["ts"])
    await wait_until(
        lambda: any("echo" in str(m.get("text")) for m in slack.bot_replies(CHANNEL, thread_ts)), timeout=20
    )
