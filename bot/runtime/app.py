"""The composition root: the one place that builds the parts and wires them together."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import ClientSession
from aiohttp.typedefs import Handler
from redis.asyncio import Redis
from redis.exceptions import RedisError
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.agent.client import ClaudeClient, default_retry_policy, sdk_client
from bot.agent.compaction import Compactor
from bot.agent.context import Budget, TokenEstimator
from bot.agent.loop import AgentLoop
from bot.agent.mcp import McpServers
from bot.agent.memory_tool import MemoryTool
from bot.agent.schedule_tool import NAME as SCHEDULE_TOOL
from bot.agent.schedule_tool import ScheduleTool
from bot.agent.setup import MEMORY_TOOL
from bot.agent.slack_search import SEARCH_SLACK, SearchSlack
from bot.agent.summarizer import Summarizer
from bot.agent.tools import SERVER_TOOLS, ClientTool, Offer, ToolBox
from bot.core.clock import clock_for
from bot.core.errors import RedisUnavailable
from bot.core.faults import CrashPoints
from bot.runtime.controls import (  # issue 19: admins and budgets
    StoredRateLimits,
    build_budget_guard,
    build_controls,
    limit_defaults,
)
from bot.runtime.health import healthz_handler, redis_health
from bot.runtime.metrics_page import MetricsAuth, metrics_handler, queue_sampler
from bot.runtime.migration import (
    MIGRATION_CLIENT_NAME,
    change_queue_shards,
    keep_migrating,
    migrate_until_done,
    prepare_layout,
)
from bot.runtime.redis_setup import redis_for
from bot.runtime.settings import Settings, split_names
from bot.runtime.web import TimedSocketModeHandler, WebFront
from bot.runtime.workspaces import build_workspaces
from bot.tasks.answer import Answerer
from bot.tasks.channel_reset import ChannelResetter
from bot.tasks.channel_setup import ChannelSetups
from bot.tasks.executor import ExecutorSettings, TaskExecutor, TaskHandler
from bot.tasks.fitting import ContextFitter, ContextSettings
from bot.tasks.gate import AllowLists, Gate
from bot.tasks.intake import Intake
from bot.tasks.metered_journal import MeteredJournal
from bot.tasks.people import People
from bot.tasks.priority import IntakeFirst
from bot.tasks.reset import ResetAnnouncer
from bot.tasks.runner import RunnerSettings, TaskRunner
from bot.tasks.scheduled import ScheduledRunner
from bot.tasks.small_tasks import Greeter, NoteKeeper, NoticePoster, StatusReporter
from bot.tasks.stopping import RunningAnswers, StopListener
from bot.tasks.timers import TimerLoop, TimerSettings
from handlers.agent_command import AgentCommands
from handlers.agent_view_listeners import MessagesTabPrompts, register_agent_view_listeners
from handlers.command_listeners import register_command_listeners
from handlers.config_desk import ConfigDesk
from handlers.config_listeners import register_config_listeners
from handlers.event_listeners import register_event_listeners
from handlers.feedback import register_feedback_listener
from handlers.gateway import WebApiGateway
from handlers.listener_errors import register_error_handler
from handlers.memory_command import MemoryCommands, register_memory_buttons
from handlers.oauth_pages import oauth_page_routes
from handlers.schedule_command import ScheduleCommands, register_schedule_buttons
from handlers.session_listeners import register_session_listeners
from handlers.signed_requests import slack_events_handler
from handlers.slack_retries import counted_retry_handlers
from handlers.uninstall_listeners import UninstallListeners, register_uninstall_listeners
from store.channel_config import ChannelConfigStore
from store.connection import RedisClient, first_line, warm_up
from store.errors import ShardChangeRefused, UnusableRedis
from store.feedback import FeedbackStore
from store.health import warn_if_evicting
from store.keys import DAY, TASK_TTL, KeySpace
from store.leaving import Departures
from store.limits import LimitStore
from store.memory import MemoryLimits, MemoryStore
from store.models import TaskKind
from store.rate_limits import RateLimiter
from store.schedules import ScheduleLimits, ScheduleStore
from store.stops import StopRequests
from store.tasks import TaskQueue
from store.threads import ThreadStore
from store.titles import SessionTitles

log = logging.getLogger(__name__)

Mode = Literal["web", "worker"]
# Connections opened once the bot runs: enough for a burst of 100 simultaneous Slack events to find one ready each.
# They open in the background a second after start, so a restarted dyno's unfinished tasks do not wait for them.
WARM_CONNECTIONS = 100


@dataclass
class Bot:
    """Everything one process runs, built from Settings."""

    settings: Settings
    redis: RedisClient
    space: KeySpace
    slack_client: AsyncWebClient
    bolt: AsyncApp
    runner: TaskRunner
    intake_first: IntakeFirst
    timers: TimerLoop | None = None  # fires due schedules in a process that runs tasks


def build_slack_client(settings: Settings, session: ClientSession | None = None) -> AsyncWebClient:
    """The Web API client: every call goes to SLACK_API_URL, and slack_sdk's own handlers do the retries.

    Without a shared `session` slack_sdk opens a new HTTP session (and connection) for every call.
    """
    return AsyncWebClient(
        # No token in OAuth mode: Bolt finds each workspace's in the installation store, per request.
        token=settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None,
        base_url=settings.slack_api_url,
        session=session,
        retry_handlers=counted_retry_handlers(),
    )


def build_memory_store(settings: Settings, redis: RedisClient) -> MemoryStore | None:
    """The channels' memories, unless MEMORY_ENABLED is false."""
    if not settings.memory_enabled:
        return None
    limits = MemoryLimits(max_bytes=settings.memory_max_bytes, max_files=settings.memory_max_files)
    return MemoryStore(redis, limits, ttl_seconds=settings.agent_ttl_days * DAY, applied_ttl_seconds=TASK_TTL)


def build_memory_tool(settings: Settings, redis: RedisClient, crash: CrashPoints) -> dict[str, ClientTool]:
    """The memory tool, offered and on by default unless MEMORY_ENABLED is false."""
    store = build_memory_store(settings, redis)
    return {} if store is None else {MEMORY_TOOL: MemoryTool(store, crash)}


def build_tools(
    settings: Settings,
    redis: RedisClient,
    gateway: WebApiGateway,
    crash: CrashPoints,
    schedules: ScheduleStore | None = None,
) -> tuple[ToolBox, ChannelSetups]:
    """The tools the deployment offers, and how a channel's configuration picks among them (and its model)."""
    # The operator's settings say which tools exist; a channel's admins choose among them (`/agent config`).
    server_tools = {name: SERVER_TOOLS[name] for name in settings.server_tools}
    # search_slack is offered, off by default in channels: a channel's admins turn it on, as its answers, which quote
    # what the asker may read, are read by the whole channel, guests and Slack Connect people included. In a DM only
    # the asker reads the answer: it is on there.
    # The channel's memory is on by default (unless MEMORY_ENABLED is false), never in a DM (ChannelSetups).
    memory = build_memory_tool(settings, redis, crash)
    # The agent's own follow-ups in its thread (issue 21) are on by default, in channels and DMs alike.
    schedules = schedules or build_schedules(settings, redis, KeySpace(settings.queue_shards))
    timing = {SCHEDULE_TOOL: ScheduleTool(schedules, gateway, clock_for(settings.bot_test_clock_file))}
    client_tools = {**memory, **timing, SEARCH_SLACK: SearchSlack(gateway)}
    defaults = (*memory, *timing, *settings.server_tools)
    # MCP servers (MCP_SERVERS) are offered, off by default: a channel enables each in its configuration.
    mcp = McpServers(settings.mcp_server_list)
    offer = Offer(client=client_tools, server={**server_tools, **mcp.toolsets}, defaults=defaults)
    tools = ToolBox(gateway, offer, mcp)
    setups = ChannelSetups(
        ChannelConfigStore(redis),
        tools.offer.names,
        tools.offer.defaults,
        dm_extras=(SEARCH_SLACK,),
        models=settings.models_for_channels,
    )
    return tools, setups


def build_executor(
    settings: Settings,
    redis: RedisClient,
    queue: TaskQueue,
    gateway: WebApiGateway,
    crash: CrashPoints,
    running: RunningAnswers,
    tooling: tuple[ToolBox, ChannelSetups],
    schedules: ScheduleStore | None = None,
) -> TaskExecutor:
    """The task executor and its table of handlers: Claude clients, tools, context budget and summarizer."""
    sdk = sdk_client(settings.anthropic_api_key.get_secret_value(), settings.anthropic_base_url)
    tools, setups = tooling
    claude = ClaudeClient(
        sdk,
        model=settings.anthropic_model,
        max_tokens=settings.max_output_tokens,
        retry=default_retry_policy(settings.llm_retry_deadline_s),
        thinking=settings.answer_thinking,
    )
    loop = AgentLoop(
        claude,
        tools,
        max_model_calls=settings.max_model_calls,
        max_answer_tokens=settings.max_answer_tokens,
        crash=crash,
    )
    budget = Budget(total=settings.context_token_budget, summary_max=settings.summary_max_tokens)
    estimator = TokenEstimator()
    # Summaries are off the critical path and best effort: a short retry; on failure the turns wait in the window.
    summary_client = ClaudeClient(
        sdk,
        model=settings.summary_model,
        max_tokens=settings.summary_max_tokens,
        retry=default_retry_policy(settings.llm_retry_deadline_s, attempts=2),
    )
    summarizer = Summarizer(summary_client, model=settings.summary_model, max_tokens=settings.summary_max_tokens)
    compactor = Compactor(
        summarizer, system_prompt=settings.system_prompt, budget=budget, estimator=estimator, crash=crash
    )
    space = queue.space
    journal = MeteredJournal(redis, space, agent_ttl=settings.agent_ttl_days * DAY)
    threads = ThreadStore(redis, space)
    people = People(threads, gateway)
    fitter = ContextFitter(
        ContextSettings(settings.system_prompt, budget, estimator, settings.prompt_cache_ttl),
        loop=loop,
        compactor=compactor,
        journal=journal,
        crash=crash,
    )
    budgets = build_budget_guard(settings, redis)
    schedules = schedules or build_schedules(settings, redis, space)
    answerer = Answerer(
        journal=journal,
        threads=threads,
        loop=loop,
        slack=gateway,
        crash=crash,
        fitter=fitter,
        people=people,
        titles=SessionTitles(redis, ttl=settings.agent_ttl_days * DAY),
        running=running,
        budgets=budgets,
        setups=setups,
    )
    handlers: dict[TaskKind, TaskHandler] = {
        TaskKind.ANSWER: answerer,
        TaskKind.NOTE: NoteKeeper(
            journal=journal, threads=threads, slack=gateway, people=people, fitter=fitter, budgets=budgets
        ),
        TaskKind.GREET: Greeter(journal, gateway),
        TaskKind.STATUS: StatusReporter(journal, threads, gateway, schedules),
        TaskKind.RESET: ResetAnnouncer(journal, gateway),
        TaskKind.CHANNEL_RESET: ChannelResetter(journal, queue, threads, schedules),
        TaskKind.NOTICE: NoticePoster(journal, gateway),
        TaskKind.SCHEDULED: ScheduledRunner(
            answerer=answerer,
            journal=journal,
            allow_lists=AllowLists.of(*settings.gate_allow_lists),
            schedules=schedules,
            slack=gateway,
            max_attempts=settings.max_task_attempts,
            clock=clock_for(settings.bot_test_clock_file),
        ),
    }
    return TaskExecutor(
        journal=journal,
        slack=gateway,
        handlers=handlers,
        settings=ExecutorSettings(max_attempts=settings.max_task_attempts),
    )


def build_bot(
    settings: Settings, redis: RedisClient, consumer: str | None = None, slack_session: ClientSession | None = None
) -> Bot:
    """Wire the store, the executor, the runner and the Bolt app together."""
    slack_client = build_slack_client(settings, slack_session)
    workspaces = build_workspaces(settings, redis, slack_client)
    gateway = WebApiGateway(workspaces.bots, streaming=settings.slack_streaming)
    crash = CrashPoints(settings.bot_crash_at)
    space = KeySpace(settings.queue_shards)
    queue = TaskQueue(redis, space, agent_ttl=settings.agent_ttl_days * DAY)
    threads = ThreadStore(redis, space)
    runner_settings = RunnerSettings(
        consumer=consumer or settings.dyno,
        max_concurrent=settings.max_concurrent_tasks,
        lease_seconds=settings.task_lease_seconds,
        grace_seconds=settings.shutdown_grace_seconds,
    )
    intake_first = IntakeFirst()
    stops = StopRequests(redis, space)
    running = RunningAnswers()
    schedules = build_schedules(settings, redis, space)
    tooling = build_tools(settings, redis, gateway, crash, schedules)
    executor = build_executor(settings, redis, queue, gateway, crash, running, tooling, schedules)
    listener = StopListener(stops, runner_settings.consumer, running)
    departures = Departures(redis, space, grace_seconds=settings.uninstall_grace_days * DAY)
    runner = TaskRunner(queue, executor, runner_settings, intake_first, listener, departures)
    signing_secret = settings.slack_signing_secret
    bolt = AsyncApp(
        name="slack-thread-agent",  # without a name Bolt inspects the call stack for one, a quarter second here
        # The client carries the token (none in OAuth mode) and SLACK_API_URL; Bolt takes both from it, and its
        # OAuth flow calls oauth.v2.access and auth.test through it, so those go to SLACK_API_URL too.
        client=slack_client,
        signing_secret=signing_secret.get_secret_value() if signing_secret else "",
        # Ack only after the listener has recorded the task: see handlers/event_listeners.py.
        process_before_response=True,
        request_verification_enabled=not settings.socket_mode,
        **workspaces.bolt_options(settings, redis, departures),
    )
    controls = build_controls(settings, redis, gateway)
    intake = Intake(
        queue,
        crash,
        stops=stops,
        slack=gateway,
        max_input_chars=settings.max_input_chars,
        gate=build_gate(settings, redis),
        admins=controls.admins,
        schedules=schedules,
    )
    register_error_handler(bolt)
    register_event_listeners(bolt, intake, allowed_bot_ids=frozenset(split_names(settings.allowed_bot_ids)))
    feedback = FeedbackStore(redis, space, agent_ttl=settings.agent_ttl_days * DAY)
    config = ConfigDesk(ChannelConfigStore(redis), tooling[1], controls.admins, gateway, settings.anthropic_model)
    memory = MemoryCommands(build_memory_store(settings, redis), controls.admins)
    clock = clock_for(settings.bot_test_clock_file)
    schedule_commands = ScheduleCommands(schedules, controls.admins, gateway, clock)
    register_command_listeners(
        bolt,
        AgentCommands(threads, queue, intake, gateway, feedback, controls, config),
        config,
        memory,
        schedule_commands,
    )
    register_schedule_buttons(bolt, schedule_commands)
    register_config_listeners(bolt, config)
    register_memory_buttons(bolt, memory)
    register_feedback_listener(bolt, feedback)
    register_session_listeners(bolt, intake, gateway)
    titles = SessionTitles(redis, ttl=settings.agent_ttl_days * DAY)
    register_agent_view_listeners(bolt, titles, MessagesTabPrompts(settings.messages_tab_prompts))
    # In both modes: an uninstalled workspace's work stops at once (OAuth mode also forgets its installation).
    register_uninstall_listeners(bolt, UninstallListeners(departures, workspaces.bots, workspaces.installations))
    timers = TimerLoop(schedules, clock, TimerSettings(settings.timer_poll_seconds), crash)
    return Bot(settings, redis, space, slack_client, bolt, runner, intake_first, timers)


def build_schedules(settings: Settings, redis: RedisClient, space: KeySpace) -> ScheduleStore:
    """The schedules of durable timers, with the limits of the settings (issue 21)."""
    limits = ScheduleLimits(
        per_thread=settings.schedules_per_thread,
        per_channel=settings.schedules_per_channel,
        min_interval=settings.schedule_min_interval_seconds,
        max_lifetime=settings.schedule_max_lifetime_days * DAY,
        max_failures=settings.schedule_max_failures,
    )
    return ScheduleStore(redis, space, limits, agent_ttl=settings.agent_ttl_days * DAY)


def build_gate(settings: Settings, redis: RedisClient) -> Gate:
    """The gate at intake: allow-lists from the settings, rate limits from the settings as `/agent limits`
    overrides them (issue 19, gate)."""
    limits = StoredRateLimits(LimitStore(redis, limit_defaults(settings)))
    return Gate(RateLimiter(redis), AllowLists.of(*settings.gate_allow_lists), limits)


def stop_on_signals(stopping: asyncio.Event) -> None:
    """SIGTERM (Heroku's restart) and SIGINT (Ctrl-C) start a graceful stop."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)


async def serve(settings: Settings, mode: Mode = "web") -> None:
    """Run the bot until SIGTERM or SIGINT: intake (HTTP or Socket Mode) in web mode, and the task runner."""
    stopping = asyncio.Event()
    stop_on_signals(stopping)
    runs_tasks = mode == "worker" or settings.run_workers_in_web
    background: set[asyncio.Task[None]] = set()
    async with redis_for(settings) as (redis, consumer), ClientSession() as slack_session:
        bot = build_bot(settings, redis, consumer, slack_session)
        await _prepare(bot)
        await warn_if_evicting(redis)
        work = bot.runner.run(stopping) if runs_tasks else stopping.wait()
        # The runner starts first: a restarted dyno's unfinished tasks resume while intake gets ready.
        runner_task: asyncio.Task[Any] = asyncio.create_task(work, name="task-runner")
        front = build_web_front(bot) if mode == "web" else build_worker_front(bot)
        warming = asyncio.create_task(_warm_up_later(redis), name="redis-warm-up")
        if runs_tasks and bot.timers is not None:
            background.add(asyncio.create_task(bot.timers.run(stopping), name="timers"))
        if isinstance(redis, Redis) and runs_tasks:  # (the old layout never ran on a cluster)
            background.add(asyncio.create_task(keep_migrating(redis, bot.space, stopping), name="migration"))
        try:
            front = await _start_front(front, mode)
            log.info("bot %s running: %s", settings.dyno, _running_as(mode, front, runs_tasks))
            await _until_stopped(stopping, runner_task)
        finally:
            stopping.set()
            warming.cancel()
            for task in background:
                task.cancel()
            if front is not None:
                await front.stop_listening()
            await _finish(runner_task)
            if front is not None:
                await front.close()
    log.info("bot %s stopped", settings.dyno)


async def _start_front(front: WebFront | None, mode: Mode) -> WebFront | None:
    """Start the front; a worker whose port is taken (a web process of the same host on PORT) runs without one."""
    if front is None:
        return None
    try:
        await front.start()
    except OSError as exc:
        if mode == "web":
            raise
        log.warning("this worker serves no /metrics: %s (set METRICS_PORT to a free port)", exc.strerror or exc)
        await front.close()
        return None
    return front


def _running_as(mode: Mode, front: WebFront | None, runs_tasks: bool) -> str:
    """How this process runs, for its start line."""
    if mode == "worker":
        return "worker only" + (f", {front.describe()}" if front is not None else "")
    assert front is not None  # a web process always has its front
    return front.describe() + (", with workers" if runs_tasks else "")


async def _prepare(bot: Bot) -> None:
    """Check the layout, load the scripts and make the queue; one line, not a traceback, if Redis refuses. (Data
    of an earlier release is moved in the background: keep_migrating.)"""
    try:
        await prepare_layout(bot.redis, bot.space)
        await bot.runner.prepare()
    except UnusableRedis as exc:
        raise RedisUnavailable(str(exc)) from None
    except RedisError as exc:
        raise RedisUnavailable(f"Redis refused to set up the task queue: {first_line(exc)}") from None


def build_web_front(bot: Bot) -> WebFront:
    """The web front with what it serves: /healthz, Slack's events (HTTP mode) or the socket (Socket Mode)."""
    settings = bot.settings

    def details() -> dict[str, object]:
        mode = "socket" if settings.socket_mode else "http"
        return {"mode": mode, "dyno": settings.dyno, "active_threads": bot.runner.active_threads}

    health = healthz_handler(functools.partial(redis_health, bot.redis), details)
    secret = settings.slack_signing_secret
    events = None
    if not settings.socket_mode and secret is not None:
        events = slack_events_handler(bot.bolt, secret.get_secret_value(), bot.intake_first)
    app_token = settings.slack_app_token
    socket = TimedSocketModeHandler(bot.bolt, app_token.get_secret_value()) if app_token is not None else None
    flow = bot.bolt.oauth_flow
    pages = oauth_page_routes(flow) if flow is not None else None
    return WebFront(
        port=settings.port, health=health, events=events, socket=socket, pages=pages, metrics=build_metrics(bot)
    )


def build_worker_front(bot: Bot) -> WebFront | None:
    """A worker-only process's HTTP server, /metrics and /healthz alone: on PORT if set, else METRICS_PORT; None
    (no server) when neither is."""
    settings = bot.settings
    port = settings.worker_metrics_port
    if port is None:
        return None

    def details() -> dict[str, object]:
        return {"mode": "worker", "dyno": settings.dyno, "active_threads": bot.runner.active_threads}

    health = healthz_handler(functools.partial(redis_health, bot.redis), details)
    return WebFront(port=port, health=health, events=None, socket=None, metrics=build_metrics(bot))


def build_metrics(bot: Bot) -> Handler:
    """GET /metrics of this process, behind METRICS_TOKEN / METRICS_BASIC_AUTH if set."""
    settings = bot.settings
    token, basic = settings.metrics_token, settings.metrics_basic_auth
    auth = MetricsAuth(
        token=token.get_secret_value() if token else None, basic=basic.get_secret_value() if basic else None
    )
    if token is None and basic is None:
        log.info("GET /metrics is open to whoever reaches this port (METRICS_TOKEN or METRICS_BASIC_AUTH protect it)")
    sample = queue_sampler(bot.redis, bot.space, lambda: bot.runner.active_threads)
    # The consumer name, not DYNO: two processes of one host without DYNO set would share the host name.
    return metrics_handler(auth, bot.runner.consumer, sample)


async def _until_stopped(stopping: asyncio.Event, runner_task: asyncio.Task[Any]) -> None:
    stop_wait = asyncio.create_task(stopping.wait())
    await asyncio.wait({stop_wait, runner_task}, return_when=asyncio.FIRST_COMPLETED)
    stop_wait.cancel()
    if runner_task.done() and not stopping.is_set():
        runner_task.result()  # the runner died on its own: surface its error


async def _finish(runner_task: asyncio.Task[Any]) -> None:
    if not runner_task.done():
        await runner_task


async def _warm_up_later(redis: RedisClient, delay: float = 1.0) -> None:
    # A restarted dyno's resumed tasks get the first second of CPU; opening a hundred connections can wait.
    await asyncio.sleep(delay)
    await warm_up(redis, WARM_CONNECTIONS)


async def migrate(settings: Settings) -> bool:
    """`python -m bot migrate`: move data of an earlier release to the current layout; True once nothing is left."""
    async with redis_for(settings) as (redis, _consumer):
        try:
            return await migrate_until_done(redis, KeySpace(settings.queue_shards))
        except UnusableRedis as exc:
            raise RedisUnavailable(str(exc)) from None


async def migrate_shards(settings: Settings, shards: int) -> bool:
    """`python -m bot migrate --queue-shards N`: move the data to N queue shards, every process stopped; False
    (with the reason logged) if it cannot run now."""
    async with redis_for(settings, tool=MIGRATION_CLIENT_NAME) as (redis, _name):
        try:
            await change_queue_shards(redis, shards)
        except ShardChangeRefused as exc:
            log.error("%s", exc)
            return False
    if settings.queue_shards != shards:
        log.warning("QUEUE_SHARDS is %d here: start every process with QUEUE_SHARDS=%d", settings.queue_shards, shards)
    return True
