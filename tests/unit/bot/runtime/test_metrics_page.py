"""GET /metrics: Prometheus' text format, every sample labelled with its dyno, optional bearer or basic auth."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from bot.core import metrics
from bot.runtime.app import _start_front, build_bot, build_worker_front
from bot.runtime.metrics_page import MetricsAuth, metrics_handler, queue_sampler
from bot.runtime.web import WebFront, build_web_app
from store.keys import KeySpace
from store.models import Task, TaskKind, ThreadRef
from store.tasks import TaskQueue
from tests.fakes import FakeSlack
from tests.unit.handlers.scenario import settings_for
from tests.unit.metric_values import sample

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


async def no_health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """Test clients of the HTTP server with /metrics, closed at the end."""
    clients: list[Client] = []

    async def make(auth: MetricsAuth | None = None, sampler: Callable[[], Awaitable[None]] | None = None) -> Client:
        handler = metrics_handler(auth or MetricsAuth(), "web.7", sampler)
        app = build_web_app(health=no_health, events=None, metrics=handler)
        client: Client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def families(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """The page parsed by prometheus-client's own parser: samples (name, labels, value) by family."""
    return {
        family.name: [(sample.name, sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(text)
    }


async def test_the_page_parses_and_every_sample_names_its_dyno(make_client: MakeClient) -> None:
    """Without auth set, /metrics answers in text format 0.0.4, parsed by prometheus-client, each sample with dyno."""
    metrics.MENTIONS.labels(outcome="accepted", reason="none").inc()
    client = await make_client()
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    parsed = families(await response.text())
    assert "slack_agent_mentions" in parsed and "process_cpu_seconds" in parsed
    samples = [sample for family in parsed.values() for sample in family]
    assert samples and all(labels.get("dyno") == "web.7" for _, labels, _ in samples)
    [accepted] = [
        value
        for name, labels, value in parsed["slack_agent_mentions"]
        if name.endswith("_total") and labels["outcome"] == "accepted"
    ]
    assert accepted >= 1


async def test_a_bearer_token_is_required_once_set(make_client: MakeClient) -> None:
    """With METRICS_TOKEN, a scrape without it or with another is refused with 401; the right one gets the page."""
    client = await make_client(MetricsAuth(token="s3cret"))
    refused = await client.get("/metrics")
    assert refused.status == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    assert "slack_agent" not in await refused.text()
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await client.get("/metrics", headers={"Authorization": "Basic czNjcmV0"})).status == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})).status == 200


def basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


async def test_basic_auth_is_required_once_set(make_client: MakeClient) -> None:
    """With METRICS_BASIC_AUTH, only the same user and password let a scrape in; a malformed header is refused."""
    client = await make_client(MetricsAuth(basic="prom:pa:ss"))
    refused = await client.get("/metrics")
    assert refused.status == 401 and refused.headers["WWW-Authenticate"] == 'Basic realm="metrics"'
    assert (await client.get("/metrics", headers=basic("prom:wrong"))).status == 401
    assert (await client.get("/metrics", headers={"Authorization": "Basic !!not base64"})).status == 401
    assert (await client.get("/metrics", headers=basic("prom:pa:ss"))).status == 200


async def test_with_both_set_either_lets_a_scrape_in(make_client: MakeClient) -> None:
    """With a token and basic credentials both set, a scrape may send either."""
    client = await make_client(MetricsAuth(token="tok", basic="prom:pw"))
    assert (await client.get("/metrics", headers={"Authorization": "Bearer tok"})).status == 200
    assert (await client.get("/metrics", headers=basic("prom:pw"))).status == 200
    assert (await client.get("/metrics", headers={"Authorization": "Bearer pw"})).status == 401


async def test_no_metrics_route_without_a_handler() -> None:
    """A server built without a metrics handler has no /metrics."""
    app = build_web_app(health=no_health, events=None)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/metrics")).status == 404


async def test_a_scrape_reads_the_queue_from_redis(make_client: MakeClient, redis: Redis) -> None:
    """Each scrape refreshes the queue gauges from Redis and this process's active threads."""
    space = KeySpace(4)
    queue = TaskQueue(redis, space)
    for shard in range(space.shards):
        await queue.ensure_group(shard)
    for index in range(3):
        thread = ThreadRef("T1", "C1", f"170000000{index}.000100")
        await queue.submit(Task(f"Ev{index}", TaskKind.ANSWER, thread, "hi", "U1", thread.thread_ts, 0.0))
    client = await make_client(sampler=queue_sampler(redis, space, lambda: 5))
    parsed = families(await (await client.get("/metrics")).text())
    assert parsed["slack_agent_queue_waiting_threads"][0][2] == 3
    assert parsed["slack_agent_queue_running_threads"][0][2] == 0
    assert parsed["slack_agent_queue_oldest_wait_seconds"][0][2] >= 0
    assert parsed["slack_agent_active_threads"][0][2] == 5


async def test_a_scrape_with_redis_down_serves_the_last_figures(make_client: MakeClient) -> None:
    """When Redis does not answer, the page is still served, with the queue figures last read, and the error counted."""
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    before = sample("slack_agent_redis_errors_total", where="metrics")
    metrics.QUEUE_WAITING.set(7)
    try:
        client = await make_client(sampler=queue_sampler(dead, KeySpace(2), lambda: 0))
        response = await client.get("/metrics")
        assert response.status == 200
        assert families(await response.text())["slack_agent_queue_waiting_threads"][0][2] == 7
        assert sample("slack_agent_redis_errors_total", where="metrics") == before + 1
    finally:
        await dead.aclose()


async def test_scrapes_read_redis_at_most_once_per_interval(make_client: MakeClient, redis: Redis) -> None:
    """A flood of scrapes reads the queue from Redis once per interval; the others serve the figures last read."""
    space = KeySpace(2)
    queue = TaskQueue(redis, space)
    for shard in range(space.shards):
        await queue.ensure_group(shard)
    now = [100.0]
    client = await make_client(sampler=queue_sampler(redis, space, lambda: 0, interval=5.0, clock=lambda: now[0]))
    first = families(await (await client.get("/metrics")).text())
    thread = ThreadRef("T1", "C1", "1700000000.000100")
    await queue.submit(Task("Ev1", TaskKind.ANSWER, thread, "hi", "U1", thread.thread_ts, 0.0))

    for _ in range(20):
        within = families(await (await client.get("/metrics")).text())
        assert within["slack_agent_queue_waiting_threads"][0][2] == first["slack_agent_queue_waiting_threads"][0][2]
    now[0] += 5.0
    after = families(await (await client.get("/metrics")).text())
    assert after["slack_agent_queue_waiting_threads"][0][2] == first["slack_agent_queue_waiting_threads"][0][2] + 1


async def test_an_undecodable_authorization_header_is_refused_not_an_error(make_client: MakeClient) -> None:
    """Header bytes that are no UTF-8 get a 401 like any wrong credentials, not a 500."""
    client = await make_client(MetricsAuth(token="s3cret", basic="prom:pw"))
    for value in (b"Bearer \xff\xfe", b"Basic \xff\xfe"):
        response = await client.get("/metrics", headers={"Authorization": value.decode("latin-1")})
        assert response.status == 401
    assert MetricsAuth(token="s3cret").allows("Bearer \udcff\udcfe") is False


async def test_a_worker_serves_metrics_only_where_told(slack: FakeSlack, redis: Redis) -> None:
    """A worker-only process gets a /metrics server on METRICS_PORT (PORT unset), and none with neither set."""
    assert build_worker_front(build_bot(settings_for(slack), redis)) is None
    front = build_worker_front(build_bot(settings_for(slack, metrics_port=9464), redis))
    assert front is not None and front.describe() == "serving /metrics and /healthz on port 9464"


async def test_a_worker_whose_port_is_taken_runs_without_metrics_and_a_web_process_stops() -> None:
    """A worker sharing a host (and PORT) with a web process goes on without /metrics; a web process cannot."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = WebFront(port=port, health=no_health, events=None, socket=None)
        assert await _start_front(worker, "worker") is None
        web_front = WebFront(port=port, health=no_health, events=None, socket=None)
        with pytest.raises(OSError):
            await _start_front(web_front, "web")
        await web_front.close()
