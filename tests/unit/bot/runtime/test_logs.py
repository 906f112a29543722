"""The process's log: JSON lines with the dyno and the running work's ids, or the readable text lines as before."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator

import pytest

from bot.core.log_context import task_context
from bot.runtime.logs import JsonFormatter, configure_logging, url_secrets
from store.models import ThreadRef

THREAD = ThreadRef("T0TEAM", "C0GENERAL", "1700000000.000100")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put back the root's handlers and the levels configure_logging changes."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    ours = {name: logging.getLogger(name).level for name in ("bot", "handlers", "store")}
    yield
    logging.captureWarnings(False)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in ours.items():
        logging.getLogger(name).setLevel(saved)


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    """Each line written, parsed (every line must be a JSON object)."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_the_task_ids_and_the_dyno() -> None:
    """A record made inside a task's context is one JSON object with time, level, logger, message, dyno and the
    workspace, channel, thread and task id; one made outside carries the dyno and no ids."""
    stream = io.StringIO()
    configure_logging("INFO", "INFO", log_format="json", dyno="web.1", stream=stream)
    with task_context(THREAD, "Ev0TASK"):
        logging.getLogger("bot.tasks.answer").warning("task %s: model call failed: %s", "Ev0TASK", "overloaded")
    logging.getLogger("bot.runtime.app").info("bot %s stopped", "web.1")
    inside, outside = json_lines(stream)
    assert inside == {
        "time": inside["time"],
        "level": "WARNING",
        "logger": "bot.tasks.answer",
        "message": "task Ev0TASK: model call failed: overloaded",
        "dyno": "web.1",
        "team": "T0TEAM",
        "channel": "C0GENERAL",
        "thread": "1700000000.000100",
        "task_id": "Ev0TASK",
    }
    assert str(inside["time"]).endswith("Z") and str(inside["time"])[:4].isdigit()
    assert outside == {
        "time": outside["time"],
        "level": "INFO",
        "logger": "bot.runtime.app",
        "message": "bot web.1 stopped",
        "dyno": "web.1",
    }


@pytest.mark.usefixtures("restore_logging")
def test_a_librarys_record_made_during_a_task_carries_the_task_ids() -> None:
    """The ids reach the records of every logger that propagates to the root (httpx's, Bolt's), not only ours."""
    stream = io.StringIO()
    configure_logging("INFO", "INFO", log_format="json", dyno="worker.2", stream=stream)
    with task_context(THREAD, "Ev0TASK"):
        logging.getLogger("httpx").info("HTTP Request: POST %s", "http://127.0.0.1/v1/messages")
    [line] = json_lines(stream)
    assert line["logger"] == "httpx" and line["task_id"] == "Ev0TASK" and line["dyno"] == "worker.2"


@pytest.mark.usefixtures("restore_logging")
def test_a_traceback_stays_on_its_records_one_line() -> None:
    """An exception's traceback is the record's "exception" field, so a record is still exactly one line."""
    stream = io.StringIO()
    configure_logging("INFO", "INFO", log_format="json", stream=stream)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("bot.tasks.runner").exception("thread %s: task step failed; retrying", "T:C:1")
    [line] = json_lines(stream)
    assert line["message"] == "thread T:C:1: task step failed; retrying"
    assert "Traceback (most recent call last)" in str(line["exception"]) and "RuntimeError: boom" in str(
        line["exception"]
    )


@pytest.mark.usefixtures("restore_logging")
def test_text_lines_stay_as_they_were() -> None:
    """The default format is the readable line it always was: time, level, logger, message; no ids added."""
    stream = io.StringIO()
    configure_logging("INFO", "INFO", dyno="web.1", stream=stream)
    with task_context(THREAD, "Ev0TASK"):
        logging.getLogger("bot.tasks.answer").warning("task %s: model call failed", "Ev0TASK")
    [line] = stream.getvalue().splitlines()
    assert line.endswith(" WARNING bot.tasks.answer: task Ev0TASK: model call failed")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


@pytest.mark.usefixtures("restore_logging")
def test_our_loggers_and_the_libraries_get_their_own_levels() -> None:
    """At LOG_LEVEL=DEBUG our DEBUG lines are written while a library's stay out (its DEBUG holds whole requests)."""
    stream = io.StringIO()
    configure_logging("DEBUG", "INFO", log_format="json", stream=stream)
    logging.getLogger("handlers.signed_requests").debug("refused a request")
    logging.getLogger("anthropic._base_client").debug("Request options: a whole prompt")
    assert [line["logger"] for line in json_lines(stream)] == ["handlers.signed_requests"]


@pytest.mark.usefixtures("restore_logging")
def test_a_python_warning_is_a_json_line_too() -> None:
    """In JSON, a warning a library raises is a record like the others, not a stray line of text on stderr."""
    stream = io.StringIO()
    configure_logging("INFO", "INFO", log_format="json", dyno="web.1", stream=stream)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("an old parameter", DeprecationWarning, stacklevel=1)
    [line] = json_lines(stream)
    assert line["logger"] == "py.warnings" and line["level"] == "WARNING" and "an old parameter" in str(line["message"])


def test_a_unicode_line_break_in_a_record_stays_on_its_one_line() -> None:
    """U+2028, U+2029 and U+0085 (which JSON leaves as they are, and line readers split on) are escaped."""
    line = JsonFormatter().format(
        logging.LogRecord("bot.x", logging.INFO, __file__, 1, "a\u2028b\u2029c\x85d", None, None)
    )
    assert len(line.splitlines()) == 1
    assert json.loads(line)["message"] == "a\u2028b\u2029c\x85d"


def test_secrets_are_redacted_from_every_record(restore_logging: None) -> None:
    """A secret given to configure_logging (an MCP server's token) is replaced in any logger's message, arguments
    and traceback, the libraries' at DEBUG included."""
    stream = io.StringIO()
    configure_logging("DEBUG", "DEBUG", stream=stream, secrets=["tok-123", ""])
    logging.getLogger("anthropic._base_client").debug("Request options: %s", {"authorization_token": "tok-123"})
    try:
        raise ValueError("refused tok-123")
    except ValueError:
        logging.getLogger("bot.agent").exception("failed")
    logging.getLogger("bot").info("nothing secret here")
    written = stream.getvalue()
    assert "tok-123" not in written
    assert written.count("[redacted]") >= 2 and "nothing secret here" in written


def test_a_secret_is_redacted_as_json_and_repr_write_it_and_a_urls_credential_too(restore_logging: None) -> None:
    """A token with a quote or backslash is escaped in a JSON or repr dump of a request: that form is redacted too;
    an MCP server's URL, and its path when long enough to hold a credential, never reach the log."""
    token, url = 'to"k\\en-9', "https://mcp.example.com/s/4f9a8b7c6d5e4f3a/mcp"
    stream = io.StringIO()
    configure_logging("DEBUG", "DEBUG", stream=stream, secrets=[token, *url_secrets(url)])
    logging.getLogger("anthropic._base_client").debug("json: %s", json.dumps({"authorization_token": token}))
    logging.getLogger("anthropic._base_client").debug("repr: %r", {"authorization_token": token})
    logging.getLogger("httpx").debug("error from %s", "mcp.example.com/s/4f9a8b7c6d5e4f3a/mcp")
    written = stream.getvalue()
    assert "4f9a8b7c6d5e4f3a" not in written and 'to\\"k' not in written and 'to"k' not in written
    assert written.count("[redacted]") == 3
    assert url_secrets("https://mcp.example.com/mcp") == ["https://mcp.example.com/mcp"]  # nothing secret in "/mcp"
