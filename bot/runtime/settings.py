"""Settings, read from the environment and an optional `.env` file; nothing is read at import time."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.agent.mcp import McpServer, parse_mcp_servers
from bot.agent.thinking import Effort, Thinking, refuses_adaptive, refuses_effort
from bot.agent.tools import SERVER_TOOLS
from bot.core.errors import ConfigError
from bot.core.faults import CRASH_POINTS
from handlers.suggested_prompts import DEFAULT_SUGGESTED_PROMPTS, SuggestedPrompt, parse_suggested_prompts
from store.channel_config import MAX_MODEL_CHARS

LEVELS = "^(DEBUG|INFO|WARNING|ERROR)$"
DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_SUMMARY_MODEL = "claude-haiku-5-5"
# manifest.yml's bot scopes (a test keeps the two equal): what an OAuth install asks for unless SLACK_SCOPES says.
MANIFEST_BOT_SCOPES = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "groups:history",
    "im:history",
    "chat:write",
    "commands",
    "files:read",
    "reactions:write",
    "search:read.public",
    "users:read",
)
BOT_TOKEN_OR_OAUTH = "SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (OAuth install)"
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant that lives in one Slack thread. Several people may talk to you in the same "
    "thread; each of their messages starts with who wrote it. Answer the latest request, using what was said "
    "earlier in the thread. Be concise and write for Slack: short paragraphs, plain lists, no tables."
)


# CHANNEL_MODELS: a Slack menu's options, less the default's; each an id as a channel's configuration stores it.
MAX_CHANNEL_MODELS = 99
MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]*")


class Settings(BaseSettings):
    """Every setting of the bot; environment names are the field names in upper case."""

    # hide_input_in_errors: a ValidationError's text would otherwise quote a bad value whole, secrets included.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    slack_bot_token: SecretStr | None = Field(
        default=None,
        description="Bot token (xoxb-...) from the Slack app's install page: one workspace. Or the OAuth pair below.",
    )
    slack_client_id: str | None = Field(
        default=None, description="Client ID (Basic Information): install in many workspaces through /slack/install."
    )
    slack_client_secret: SecretStr | None = Field(
        default=None, description="Client Secret (Basic Information), with SLACK_CLIENT_ID."
    )
    slack_scopes: str = Field(
        default=",".join(MANIFEST_BOT_SCOPES),
        min_length=1,
        description="Comma-separated bot scopes the install asks for; default: manifest.yml's.",
    )
    slack_redirect_uri: str | None = Field(
        default=None,
        description="The app's Redirect URL ending in /slack/oauth_redirect, when it has several; else Slack's own.",
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, description="Signing secret from Basic Information; required unless SLACK_APP_TOKEN is set."
    )
    slack_app_token: SecretStr | None = Field(default=None, description="App-level token (xapp-...): Socket Mode.")
    slack_api_url: str = Field(default="https://slack.com/api/", description="Base URL of the Slack Web API.")
    slack_streaming: bool = Field(
        default=True,
        description="Stream answers with Slack's native streaming where it is available; false: update a message.",
    )
    anthropic_api_key: SecretStr = Field(description="Anthropic API key.")
    anthropic_base_url: str | None = Field(default=None, description="Base URL of the Anthropic API.")
    anthropic_model: str = Field(default=DEFAULT_MODEL, min_length=1, description="Claude model id for answers.")
    redis_url: str | None = Field(default=None, description="Redis URL; unset starts an embedded Redis.")
    redis_tls_verify: bool = Field(
        default=True, description="Verify a rediss:// server's certificate; false for self-signed ones (Heroku Redis)."
    )
    port: int = Field(default=3000, ge=1, le=65535, description="HTTP port for Slack requests and /healthz.")
    dyno: str = Field(default_factory=socket.gethostname, min_length=1, description="This process's stable name.")
    system_prompt: str = Field(default=DEFAULT_SYSTEM_PROMPT, min_length=1, description="System prompt override.")
    allowed_bot_ids: str = Field(
        default="", description="Bot ids (B...) whose messages count as people's; others' are ignored."
    )
    max_input_chars: int = Field(
        default=40_000, ge=100, le=1_000_000, description="Longest message read whole; longer ones are cut."
    )
    max_output_tokens: int = Field(
        default=16_000, ge=64, le=64_000, description="max_tokens of each model call of an answer."
    )
    max_answer_tokens: int = Field(
        default=32_000,
        ge=64,
        le=1_000_000,
        description="Output tokens one answer may reach over its continuations after max_tokens stops.",
    )
    run_workers_in_web: bool = Field(
        default=True, description="The web process also runs tasks; false leaves them to `python -m bot worker`."
    )
    max_concurrent_tasks: int = Field(default=200, ge=1, le=5000, description="Threads worked on at once.")
    redis_max_connections: int = Field(
        default=100, ge=4, le=10_000, description="Redis connections one process may open."
    )
    queue_shards: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Queue shards: streams the work is spread over (slots of a cluster); fixed for a deployment.",
    )
    context_token_budget: int = Field(
        default=24_000, ge=2_000, le=500_000, description="Most tokens of context (system, summary, turns) per request."
    )
    summary_max_tokens: int = Field(default=1_500, ge=100, le=8_000, description="Cap of the rolling summary.")
    prompt_cache_ttl: Literal["1h", "5m"] = Field(
        default="1h",
        description="TTL of the prompt cache's breakpoints: 1h (written at 2x the input price) or 5m (at 1.25x).",
    )
    summary_model: str = Field(default=DEFAULT_SUMMARY_MODEL, min_length=1, description="Model that summarizes.")
    agent_ttl_days: int = Field(default=30, ge=1, le=3650, description="Idle days before a thread's agent expires.")
    uninstall_grace_days: int = Field(
        default=7, ge=0, le=365, description="Days a workspace's agents are kept after it uninstalls the app."
    )
    task_lease_seconds: float = Field(
        default=30.0, ge=1, le=300, description="How long a dead worker's threads wait before another takes them."
    )
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=28, description="Time running tasks get on SIGTERM.")
    max_task_attempts: int = Field(default=3, ge=1, le=20, description="Attempts before a task is failed for good.")
    llm_retry_deadline_s: float = Field(
        default=120.0, ge=1, le=900, description="How long a Claude call is retried (429, 529, 5xx, network)."
    )
    max_model_calls: int = Field(default=10, ge=1, le=50, description="Model calls one answer may make (tool use).")
    anthropic_server_tools: str = Field(
        default="",
        description=(
            "Comma-separated Anthropic server tools the agents may use: web_search, web_fetch, code_execution "
            "(on in every channel unless its /agent config turns one off)."
        ),
    )
    channel_models: str = Field(
        default="",
        description="Comma-separated Claude model ids a channel may pick in `/agent config` besides ANTHROPIC_MODEL.",
    )
    # --- channel memory (issue 20) ---
    memory_enabled: bool = Field(
        default=True,
        description="Channels' agents share a memory (Anthropic's memory tool), on unless a channel turns it off.",
    )
    memory_max_bytes: int = Field(
        default=50_000, ge=1_000, le=1_000_000, description="Most bytes of text one channel's memory holds."
    )
    memory_max_files: int = Field(default=100, ge=1, le=1_000, description="Most files one channel's memory holds.")
    # --- end of channel memory ---
    mcp_servers: SecretStr = Field(
        default=SecretStr(""),
        description='Remote MCP servers: a JSON list of {"name", "url" (https), "token"?}; channels enable each.',
    )
    suggested_prompts: str = Field(
        default=DEFAULT_SUGGESTED_PROMPTS,
        description='Prompts atop the Messages tab: a JSON list of {"title", "message"} objects or strings; [] none.',
    )
    bot_crash_at: str | None = Field(default=None, description="Testing only: SIGKILL the process at this step.")
    bot_test_clock_file: str | None = Field(
        default=None,
        description="Testing only: a file whose number of seconds is added to the time the timers run by.",
    )
    # --- scheduled work (issue 21) ---
    schedules_per_thread: int = Field(
        default=10, ge=1, le=1000, description="Active schedules (paused ones too) one thread may have."
    )
    schedules_per_channel: int = Field(
        default=50, ge=1, le=100_000, description="Active schedules one channel may have, all its threads together."
    )
    schedule_min_interval_seconds: float = Field(
        default=300.0, ge=1, le=86_400 * 30, description="Shortest period of a recurring schedule."
    )
    schedule_max_lifetime_days: float = Field(
        default=30.0, gt=0, le=3650, description="Days after it is made that a schedule runs no more."
    )
    schedule_max_failures: int = Field(
        default=3, ge=0, le=100, description="Failed runs in a row that pause a recurring schedule; 0: never."
    )
    timer_poll_seconds: float = Field(
        default=1.0, ge=0.05, le=60, description="How often a worker looks for due timers (one read per shard)."
    )
    # --- end of scheduled work ---
    data_dir: str = Field(default="data", description="Where the embedded Redis keeps its files.")
    log_level: str = Field(default="INFO", pattern=LEVELS, description="Level of the bot's own log lines.")
    log_level_libraries: str | None = Field(
        default=None,
        pattern=LEVELS,
        description="Level of the libraries' loggers (Slack, Anthropic, HTTP, Redis); DEBUG logs whole requests.",
    )
    # --- operator controls (issue 19): logs ---
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: readable lines; json: one JSON object per line, with the task's ids and DYNO.",
    )
    # --- end of logs ---

    # --- operator controls (issue 19): gate ---
    allowed_channel_ids: str = Field(
        default="",
        description="Channel ids the bot works in, comma-separated, `dm` for direct messages; empty: everywhere.",
    )
    allowed_user_ids: str = Field(default="", description="User ids the bot answers, comma-separated; empty: everyone.")
    rate_limit_per_user: int = Field(default=0, ge=0, le=10_000, description="Mentions a minute per person; 0: none.")
    rate_limit_per_thread: int = Field(default=0, ge=0, le=10_000, description="Mentions a minute per thread; 0: none.")
    max_bot_turns_per_thread: int = Field(
        default=20, ge=0, le=10_000, description="Mentions from allowed bots a thread answers an hour; 0: no limit."
    )

    # --- extended thinking (issue 20) ---
    thinking: Literal["off", "adaptive"] = Field(
        default="off",
        description="adaptive: the answer model thinks before it answers (and between tool calls); off: it does not.",
    )
    thinking_effort: Effort | None = Field(
        default=None,
        description="Effort of a thinking answer (output_config.effort): low, medium, high, xhigh or max; unset: the "
        "model's default.",
    )

    @field_validator("thinking_effort", mode="before")
    @classmethod
    def _blank_effort_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("thinking")
    @classmethod
    def _model_thinks_adaptively(cls, value: str, info: ValidationInfo) -> str:
        # Refused at start, not on every mention: the API answers 400 to adaptive thinking on an older model.
        model = info.data.get("anthropic_model")
        if value == "adaptive" and isinstance(model, str) and refuses_adaptive(model):
            raise ValueError(f"ANTHROPIC_MODEL {model} has no adaptive thinking (Claude Opus/Sonnet 4.6 and later do)")
        return value

    @field_validator("thinking_effort")
    @classmethod
    def _effort_needs_thinking(cls, value: Effort | None, info: ValidationInfo) -> Effort | None:
        if value is not None and info.data.get("thinking") != "adaptive":
            raise ValueError("applies only with THINKING=adaptive")
        model = info.data.get("anthropic_model")
        if value is not None and isinstance(model, str) and refuses_effort(model, value):
            raise ValueError(f"ANTHROPIC_MODEL {model} has no effort level {value}")
        return value

    @property
    def answer_thinking(self) -> Thinking | None:
        """How the answer model thinks, or None when it does not."""
        return Thinking(self.thinking_effort) if self.thinking == "adaptive" else None

    # --- end of extended thinking ---

    @field_validator("allowed_channel_ids", "allowed_user_ids")
    @classmethod
    def _slack_ids(cls, value: str, info: ValidationInfo) -> str:
        # A name ("#general", "@alice") would silently allow nobody: ids are what Slack's events carry.
        extra = {"dm"} if info.field_name == "allowed_channel_ids" else set()
        wrong = [
            name for name in split_names(value) if name not in extra and not re.fullmatch(r"[A-Z][A-Z0-9]{2,}", name)
        ]
        if wrong:
            raise ValueError(
                f"not Slack ids: {', '.join(wrong)[:200]} (copy an id from its profile or channel details)"
            )
        return value

    @property
    def gate_allow_lists(self) -> tuple[list[str], list[str]]:
        """ALLOWED_CHANNEL_IDS and ALLOWED_USER_IDS, parsed."""
        return split_names(self.allowed_channel_ids), split_names(self.allowed_user_ids)

    # --- end of gate ---

    # --- metrics (issue 19) ---
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token a scrape of /metrics must send; unset: /metrics needs none."
    )
    metrics_basic_auth: SecretStr | None = Field(
        default=None, description='"user:password" a scrape of /metrics may send as basic auth instead.'
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of a worker-only process's /metrics and /healthz when PORT is not set; unset: none.",
    )
    # --- end of metrics ---

    # --- operator controls (issue 19): admins and budgets ---
    admin_user_ids: str = Field(
        default="", description="Comma-separated user ids (U...) of the bot's admins: channel resets, /agent limits."
    )
    workspace_admins_are_admins: bool = Field(
        default=True,
        description="Workspace admins and owners (users.info) are the bot's admins too; false: ADMIN_USER_IDS only.",
    )
    daily_budget_usd_per_user: float = Field(
        default=0.0, ge=0, le=1_000_000, description="US$ of Claude one person may spend a UTC day; 0: no limit."
    )
    daily_budget_usd_per_channel: float = Field(
        default=0.0, ge=0, le=1_000_000, description="US$ of Claude one channel may spend a UTC day; 0: no limit."
    )
    daily_budget_usd_per_workspace: float = Field(
        default=0.0, ge=0, le=1_000_000, description="US$ of Claude a workspace may spend a UTC day; 0: no limit."
    )

    @property
    def admin_ids(self) -> frozenset[str]:
        """ADMIN_USER_IDS, parsed."""
        return frozenset(split_names(self.admin_user_ids))

    # --- end of admins and budgets ---

    @field_validator("metrics_token", "metrics_basic_auth", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, value: object) -> object:
        # `heroku config:set METRICS_TOKEN=` leaves it empty: that must not become a token anyone can send.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("metrics_basic_auth")
    @classmethod
    def _user_and_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            user, colon, password = value.get_secret_value().partition(":")
            if not (user and colon and password):
                raise ValueError('must be "user:password", both non-empty')
        return value

    @property
    def worker_metrics_port(self) -> int | None:
        """Where a worker-only process serves /metrics: PORT if it is set in the environment, else METRICS_PORT."""
        return self.port if "port" in self.model_fields_set else self.metrics_port

    @model_validator(mode="after")
    def _http_mode_needs_signing_secret(self) -> Settings:
        if self.slack_app_token is None and self.slack_signing_secret is None:
            raise ValueError("SLACK_SIGNING_SECRET is required unless SLACK_APP_TOKEN is set (Socket Mode)")
        return self

    @field_validator("slack_bot_token", "slack_client_id", "slack_client_secret", "slack_redirect_uri", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `heroku config:set SLACK_BOT_TOKEN=` leaves the variable empty, not gone: it must not count as a way in.
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _one_way_to_reach_slack(self) -> Settings:
        problem = credentials_problem(
            bot_token=self.slack_bot_token is not None,
            client_id=self.slack_client_id is not None,
            client_secret=self.slack_client_secret is not None,
        )
        if problem is not None:
            raise ValueError(problem[1])
        return self

    @property
    def oauth_mode(self) -> bool:
        """True when workspaces install the app through /slack/install (the client id and secret are set)."""
        return self.slack_client_id is not None

    @property
    def bot_scopes(self) -> list[str]:
        """SLACK_SCOPES, parsed."""
        return split_names(self.slack_scopes)

    @field_validator("anthropic_server_tools")
    @classmethod
    def _known_server_tools(cls, value: str) -> str:
        unknown = [name for name in split_names(value) if name not in SERVER_TOOLS]
        if unknown:
            raise ValueError(f"unknown server tool(s) {', '.join(unknown)}; known: {', '.join(SERVER_TOOLS)}")
        return value

    @field_validator("channel_models")
    @classmethod
    def _valid_channel_models(cls, value: str) -> str:
        names = split_names(value)
        # The modal's model menu takes at most 100 options, the default one of them.
        if len(names) > MAX_CHANNEL_MODELS:
            raise ValueError(f"at most {MAX_CHANNEL_MODELS} models (a Slack menu holds 100 options)")
        if bad := [name for name in names if len(name) > MAX_MODEL_CHARS or not MODEL_ID.fullmatch(name)]:
            raise ValueError(f"not a model id: {bad[0][:40]!r}")
        return value

    @field_validator("mcp_servers")
    @classmethod
    def _valid_mcp_servers(cls, value: SecretStr) -> SecretStr:
        parse_mcp_servers(value.get_secret_value())  # its ValueError says what is wrong, never with a token
        return value

    @property
    def mcp_server_list(self) -> tuple[McpServer, ...]:
        """MCP_SERVERS, parsed."""
        return parse_mcp_servers(self.mcp_servers.get_secret_value())

    @field_validator("bot_crash_at")
    @classmethod
    def _known_crash_point(cls, value: str | None) -> str | None:
        if value is not None and value not in CRASH_POINTS:
            raise ValueError(f"unknown crash point; known: {', '.join(sorted(CRASH_POINTS))}")
        return value

    @field_validator("suggested_prompts")
    @classmethod
    def _valid_suggested_prompts(cls, value: str) -> str:
        parse_suggested_prompts(value)  # its ValueError says what is wrong
        return value

    @property
    def messages_tab_prompts(self) -> tuple[SuggestedPrompt, ...]:
        """SUGGESTED_PROMPTS, parsed: the prompts the Messages tab shows."""
        return parse_suggested_prompts(self.suggested_prompts)

    @property
    def models_for_channels(self) -> list[str]:
        """CHANNEL_MODELS: the models a channel may pick (ANTHROPIC_MODEL, its default, is not listed again)."""
        return [name for name in dict.fromkeys(split_names(self.channel_models)) if name != self.anthropic_model]

    @property
    def server_tools(self) -> list[str]:
        """Names of the enabled Anthropic server tools."""
        return split_names(self.anthropic_server_tools)

    @model_validator(mode="after")
    def _summary_fits_the_budget(self) -> Settings:
        if self.summary_max_tokens * 4 > self.context_token_budget:
            raise ValueError("SUMMARY_MAX_TOKENS must be at most a quarter of CONTEXT_TOKEN_BUDGET")
        return self

    @field_validator("max_answer_tokens")
    @classmethod
    def _answer_fits_one_call_at_least(cls, value: int, info: ValidationInfo) -> int:
        # A field validator, not a model one: its error carries the variable's name into ConfigError.
        max_output = info.data.get("max_output_tokens")  # absent when it was invalid itself
        if max_output is not None and value < max_output:
            raise ValueError(f"must be at least MAX_OUTPUT_TOKENS ({max_output})")
        return value

    @property
    def library_log_level(self) -> str:
        """LOG_LEVEL_LIBRARIES, else LOG_LEVEL but never below INFO: at DEBUG the libraries log whole requests."""
        if self.log_level_libraries is not None:
            return self.log_level_libraries
        return self.log_level if self.log_level != "DEBUG" else "INFO"

    @property
    def socket_mode(self) -> bool:
        """True when the bot connects to Slack over Socket Mode instead of receiving HTTP requests."""
        return self.slack_app_token is not None


def split_names(value: str) -> list[str]:
    """A comma-separated list of names, blanks dropped."""
    return [name.strip() for name in value.split(",") if name.strip()]


def credentials_problem(*, bot_token: bool, client_id: bool, client_secret: bool) -> tuple[str, str] | None:
    """What is wrong with the Slack credentials that are set, as ("missing" or "invalid", message), or None."""
    if bot_token and (client_id or client_secret):
        # Each would decide which workspace's token a request uses; a mix would answer some with the wrong one.
        return "invalid", "SLACK_BOT_TOKEN and SLACK_CLIENT_ID/SLACK_CLIENT_SECRET (set one way only: " + (
            BOT_TOKEN_OR_OAUTH + ")"
        )
    if client_id and not client_secret:
        return "missing", "SLACK_CLIENT_SECRET (with SLACK_CLIENT_ID)"
    if client_secret and not client_id:
        return "missing", "SLACK_CLIENT_ID (with SLACK_CLIENT_SECRET)"
    if not (bot_token or client_id):
        return "missing", BOT_TOKEN_OR_OAUTH
    return None


def load_settings(**overrides: Any) -> Settings:
    """Build Settings, turning pydantic's errors into one ConfigError that names every bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        missing: list[str] = []
        invalid: list[str] = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper()
            if error["type"] == "missing":
                missing.append(name)
            elif name:
                invalid.append(f"{name} ({error['msg']})")
        # pydantic checks the rules across fields only once every field is valid; name those variables now too.
        problem = credentials_problem(
            bot_token=_is_set("SLACK_BOT_TOKEN", overrides),
            client_id=_is_set("SLACK_CLIENT_ID", overrides),
            client_secret=_is_set("SLACK_CLIENT_SECRET", overrides),
        )
        if problem is not None:
            (missing if problem[0] == "missing" else invalid).insert(0, problem[1])
        if not any(_is_set(name, overrides) for name in ("SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN")):
            missing.append("SLACK_SIGNING_SECRET")
        raise ConfigError(missing=missing, invalid=invalid) from None


def _is_set(name: str, overrides: dict[str, Any]) -> bool:
    env_file = Settings.model_config.get("env_file")
    from_file = dotenv_values(str(env_file)) if isinstance(env_file, str) and Path(env_file).is_file() else {}
    value = overrides.get(name.lower()) or os.environ.get(name) or from_file.get(name)
    return bool(value)
