"""An audit of every log call of the bot: none passes what people wrote (a message, a prompt, an answer) to the log.

The names below are those the code gives to what people wrote and what the model answered, and to the objects that
hold it (a Task's or a Turn's repr holds its text). A log call may name such an object's ids (`task.task_id`) or
count it (`len(body)`), never pass it or its text.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers", "store")
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}
LOGGERS = {"log", "logger", "logging"}
# What people wrote or the model answered, or an object that carries it whole.
TEXT_NAMES = {
    "text",
    "texts",
    "prompt",
    "prompts",
    "content",
    "question",
    "answer",
    "written",
    "body",
    "payload",
    "event",
    "message",
    "messages",
    "turn",
    "turns",
    "task",
    "summary",
    "request",
    "response",
}
HARMLESS_CALLS = {"len", "type"}  # a length or a type name says nothing of the text
# Arguments that name a text-holding object but log none of its text, each with why: {(file, name): reason}.
REVIEWED = {
    ("handlers/oauth_pages.py", "request"): "_reason() takes only the error code Slack put in the redirect URL",
}


def is_log_call(node: ast.AST) -> bool:
    """Whether the node is `log.info(...)` and the like."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in LOG_METHODS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in LOGGERS
    )


def text_passed(expression: ast.expr) -> list[str]:
    """The text-holding names an argument passes whole (or as their text), as source snippets."""
    if (
        isinstance(expression, ast.Call)
        and isinstance(expression.func, ast.Name)
        and expression.func.id in HARMLESS_CALLS
    ):
        return []
    if isinstance(expression, ast.Name | ast.Attribute):
        # The last part decides: `task` and `message.text` pass text; `task.task_id` and `message.event_id` do not.
        name = expression.id if isinstance(expression, ast.Name) else expression.attr
        return [ast.unparse(expression)] if name in TEXT_NAMES else []
    if isinstance(expression, ast.Subscript):  # text[:100] is still text
        return text_passed(expression.value)
    found: list[str] = []
    for child in ast.iter_child_nodes(expression):
        if isinstance(child, ast.expr):
            found += text_passed(child)
    return found


def test_no_log_call_passes_what_people_wrote() -> None:
    """Across bot/, handlers/ and store/, no log call's arguments (format string aside) carry a message's text, a
    prompt, an answer or an object holding one, at any level: LOG_FORMAT=json and text alike write only ids."""
    offending: list[str] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not is_log_call(node):
                    continue
                assert isinstance(node, ast.Call)
                skip = 2 if isinstance(node.func, ast.Attribute) and node.func.attr == "log" else 1  # level, format
                file = str(path.relative_to(ROOT))
                for argument in [*node.args[skip:], *(keyword.value for keyword in node.keywords)]:
                    names = [name for name in text_passed(argument) if (file, name) not in REVIEWED]
                    offending += [f"{file}:{node.lineno}: {name}" for name in names]
                if node.args and isinstance(node.args[skip - 1], ast.JoinedStr):  # an f-string as the format
                    offending += [
                        f"{path.relative_to(ROOT)}:{node.lineno}: f-string {ast.unparse(node.args[skip - 1])}"
                    ]
    assert offending == []


def test_the_audit_finds_a_message_passed_to_the_log() -> None:
    """The audit itself flags what it is meant to: a text, a task, a slice of a text; not their ids or lengths."""
    flagged = [text_passed(ast.parse(source, mode="eval").body) for source in ("message.text", "task", "text[:80]")]
    assert all(flagged)
    harmless = ("task.task_id", "message.event_id", "len(body)", "thread.encode()", "exc")
    assert not any(text_passed(ast.parse(source, mode="eval").body) for source in harmless)
