"""The steps of a task's journal, typed, and the helpers that replay them.

A task journals each step before the next starts (store/journal.py keeps them as JSON, oldest first), so that a
resumed task continues from the first step without a record: a model call is never paid for twice, a tool call is
never run twice, a passage is never summarized twice. The JSON form is the one the journal has always held: a
journal written by an older release parses here, and one written here resumes after an upgrade.

  model          one model call: the content blocks as the API returned them, its stop reason and usage (a call
                 that stopped at max_tokens is continued by the next model step, the same answer: see replay)
  tool           one tool call's result, for the tool_use block of the model step before it
  summary_part   one passage of a fold summarized, with the summary so far (every passage but the last)
  summary        the fold's result: the new summary and how many turns leave the window
  setup          the channel setup the task runs with (bot/agent/setup.py): now the "setup" field of its first model
                 step (one write for both); a step of its own in journals of the release that introduced it

A fold's steps carry a fingerprint of the turns they cover (bot/agent/compaction.py): a resumed task rebuilds its
window from Redis and Slack, which may now hold other turns, and a step is used only for the turns it was made for.
Steps journaled before fingerprints have none, and count as made for other turns: that fold starts again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from bot.agent.continuation import continue_prompt, joined
from bot.agent.setup import AgentSetup
from store.errors import CorruptRecord
from store.models import USAGE_FIELDS, Usage

# Journals one step's JSON form (Step.to_record()) before the next step starts.
Record = Callable[[dict[str, Any]], Awaitable[None]]

T = TypeVar("T")

# Blocks that call a tool: the client's tool_use, and server_tool_use / mcp_tool_use that Anthropic runs itself.
CALL_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})
# The model's thinking, signed (thinking) or encrypted (redacted_thinking): sent back as it came, never shown.
THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})


@dataclass(frozen=True)
class ModelStep:
    """One model call's result, in the plain JSON form the journal stores and the API accepts back."""

    kind: ClassVar[str] = "model"
    content: list[dict[str, Any]]
    stop_reason: str | None
    usage: Usage
    mcp_dropped: tuple[str, ...] = ()  # MCP servers the call was made without: they did not answer (bot/agent/mcp.py)

    def to_record(self) -> dict[str, Any]:
        """The journal record of this step (mcp_dropped only when some server was dropped)."""
        record: dict[str, Any] = {
            "kind": self.kind,
            "content": self.content,
            "stop_reason": self.stop_reason,
            "usage": self.usage.counters(),
        }
        if self.mcp_dropped:
            record["mcp_dropped"] = list(self.mcp_dropped)
        return record

    def cut_block(self) -> dict[str, Any] | None:
        """The tool call that max_tokens cut off while its input was being written, if it did."""
        last = self.content[-1] if self.content else None
        if self.stop_reason == "max_tokens" and last is not None and last.get("type") in CALL_BLOCKS:
            return last
        return None

    def replayable_content(self) -> list[dict[str, Any]]:
        """The content as it goes back to the API: without a cut tool call (it cannot be answered), without empty
        text blocks (the API refuses them; a stop right after a text block opened leaves one) and without a thinking
        block max_tokens cut before its signature came (the API accepts only signed ones). Every other block goes
        back exactly as it came: thinking blocks with their signature, redacted_thinking blocks with their data.

        A call cut at max_tokens right after a whole thinking block (its text not begun, or its tool call cut) leaves
        that thinking last: it is left out too, since the API refuses an assistant turn that ends in thinking (and
        needs it only before tool results, which a cut turn is not followed by)."""
        cut = self.cut_block()
        content = [block for block in self.content if block is not cut and not _unreplayable(block)]
        while self.stop_reason == "max_tokens" and content and content[-1].get("type") in THINKING_BLOCKS:
            content.pop()
        return content

    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool_use blocks the model asked for, whole (a call max_tokens cut off is not one)."""
        return [block for block in self.replayable_content() if block.get("type") == "tool_use"]

    def text(self) -> str:
        """The text blocks joined."""
        return "".join(block.get("text", "") for block in self.content if block.get("type") == "text")


@dataclass(frozen=True)
class ToolStep:
    """One tool call's result, answering the tool_use block `tool_use_id`."""

    kind: ClassVar[str] = "tool"
    tool_use_id: str
    name: str
    result: str
    is_error: bool = False

    def to_record(self) -> dict[str, Any]:
        """The journal record of this step (is_error only when set, as it always was)."""
        record: dict[str, Any] = {
            "kind": self.kind,
            "tool_use_id": self.tool_use_id,
            "name": self.name,
            "result": self.result,
        }
        if self.is_error:
            record["is_error"] = True
        return record


@dataclass(frozen=True)
class SummaryPartStep:
    """One passage of a fold done: the summary so far, how the fold cut its turns (so a resume cuts the same), and
    where in them the summary has got to: `covers` turns whole, and the first `offset` characters of the next."""

    kind: ClassVar[str] = "summary_part"
    index: int
    evict: int
    chunk_chars: int
    text: str
    usage: Usage
    covers: int = 0
    offset: int = 0
    fingerprint: str | None = None  # of the `evict` turns the fold takes; None in steps journaled before it

    def to_record(self) -> dict[str, Any]:
        """The journal record of this step (the position and fingerprint only when known, as before they were)."""
        record: dict[str, Any] = {
            "kind": self.kind,
            "index": self.index,
            "evict": self.evict,
            "chunk_chars": self.chunk_chars,
            "text": self.text,
            "usage": self.usage.counters(),
        }
        if self.fingerprint is not None:
            record.update(covers=self.covers, offset=self.offset, fingerprint=self.fingerprint)
        return record


@dataclass(frozen=True)
class SummaryStep:
    """A fold's result: the summary, how many of the oldest turns leave the window, whether summarizing failed, and
    what the fold's summary calls cost in all (those of earlier steps of the journal included)."""

    kind: ClassVar[str] = "summary"
    text: str
    evict: int
    failed: bool
    usage: Usage
    fingerprint: str | None = None  # of the `evict` turns leaving the window; None in steps journaled before it

    def to_record(self) -> dict[str, Any]:
        """The journal record of this step (the fingerprint only when known, as before there was one)."""
        record: dict[str, Any] = {
            "kind": self.kind,
            "text": self.text,
            "evict": self.evict,
            "failed": self.failed,
            "usage": self.usage.counters(),
        }
        if self.fingerprint is not None:
            record["fingerprint"] = self.fingerprint
        return record


Step = ModelStep | ToolStep | SummaryPartStep | SummaryStep | AgentSetup
LoopStep = ModelStep | ToolStep  # the tool loop's own steps; the summary steps belong to the fold after it


def _field(record: Mapping[str, Any], name: str, expected: type[T]) -> T:
    """A record's field of the given type; missing or of another type, the record is corrupt."""
    value = record.get(name)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise CorruptRecord(f"journal step {record.get('kind')!r}: field {name!r} is not {expected.__name__}")
    return value


def _usage(record: Mapping[str, Any]) -> Usage:
    """A step's usage counters (missing ones read as zero, as records with fewer counters were written)."""
    counters = _field(record, "usage", dict)
    if not set(counters) <= set(USAGE_FIELDS) or not all(type(value) is int for value in counters.values()):
        raise CorruptRecord(f"journal step {record.get('kind')!r}: malformed usage")
    return Usage(**counters)


def _model(record: Mapping[str, Any]) -> ModelStep:
    content = _field(record, "content", list)
    if not all(isinstance(block, dict) for block in content):
        raise CorruptRecord("journal step 'model': a content block is not an object")
    stop_reason = record.get("stop_reason")
    if stop_reason is not None and not isinstance(stop_reason, str):
        raise CorruptRecord("journal step 'model': field 'stop_reason' is not str")
    dropped = record.get("mcp_dropped", [])
    if not isinstance(dropped, list) or not all(isinstance(name, str) for name in dropped):
        raise CorruptRecord("journal step 'model': field 'mcp_dropped' is not a list of names")
    return ModelStep(content, stop_reason, _usage(record), tuple(dropped))


def _tool(record: Mapping[str, Any]) -> ToolStep:
    is_error = record.get("is_error", False)
    if not isinstance(is_error, bool):
        raise CorruptRecord("journal step 'tool': field 'is_error' is not bool")
    return ToolStep(
        _field(record, "tool_use_id", str), _field(record, "name", str), _field(record, "result", str), is_error
    )


def _fingerprint(record: Mapping[str, Any]) -> str | None:
    """A fold step's fingerprint; a step journaled before there were fingerprints has none."""
    return _field(record, "fingerprint", str) if "fingerprint" in record else None


def _summary_part(record: Mapping[str, Any]) -> SummaryPartStep:
    fingerprint = _fingerprint(record)
    known = fingerprint is not None
    return SummaryPartStep(
        _field(record, "index", int),
        _field(record, "evict", int),
        _field(record, "chunk_chars", int),
        _field(record, "text", str),
        _usage(record),
        _field(record, "covers", int) if known else 0,
        _field(record, "offset", int) if known else 0,
        fingerprint,
    )


def _summary(record: Mapping[str, Any]) -> SummaryStep:
    return SummaryStep(
        _field(record, "text", str),
        _field(record, "evict", int),
        _field(record, "failed", bool),
        _usage(record),
        _fingerprint(record),
    )


PARSERS: dict[str, Callable[[Mapping[str, Any]], Step]] = {
    ModelStep.kind: _model,
    ToolStep.kind: _tool,
    SummaryPartStep.kind: _summary_part,
    SummaryStep.kind: _summary,
    AgentSetup.kind: AgentSetup.from_record,
}


def parse_step(record: Mapping[str, Any]) -> Step:
    """The step a journal record holds; one that does not parse raises CorruptRecord, never a KeyError later."""
    # JSON from Redis may be anything, whatever the journal's type says.
    kind = record.get("kind") if isinstance(record, Mapping) else None
    parser = PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise CorruptRecord(f"not a journal step: kind {str(kind)[:40]!r}")  # bounded: it comes from Redis as is
    return parser(record)


def parse_steps(records: Sequence[Mapping[str, Any]]) -> list[Step]:
    """The steps of a journal's records, oldest first."""
    return [parse_step(record) for record in records]


def loop_steps(steps: Sequence[Step]) -> list[LoopStep]:
    """The tool loop's steps (model and tool calls), without the fold's."""
    return [step for step in steps if isinstance(step, ModelStep | ToolStep)]


def _unreplayable(block: dict[str, Any]) -> bool:
    """An empty text block, or a thinking block without its signature (cut off while the model was thinking)."""
    kind = block.get("type")
    return (kind == "text" and not block.get("text")) or (kind == "thinking" and not block.get("signature"))


def _plain_text(block: dict[str, Any]) -> bool:
    return block.get("type") == "text" and set(block) == {"type", "text"}


def _extended(content: list[dict[str, Any]], more: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An assistant turn's content with the continuation's appended: plain text at the seam becomes one block."""
    if content and more and _plain_text(content[-1]) and _plain_text(more[0]):
        seam = {"type": "text", "text": joined(content[-1]["text"], more[0]["text"])}
        return [*content[:-1], seam, *more[1:]]
    return [*content, *more]


def _mergeable(messages: list[dict[str, Any]], content: list[dict[str, Any]]) -> bool:
    """Whether a continuation (`content`) may join the piece before it, the turn asking for the rest dropped: not when
    either holds thinking. The API wants an assistant turn with thinking sent back as it wrote it, after what it was
    written after; each piece then stays a turn of its own, with the request for the rest between them."""
    before = messages[-2]["content"] if len(messages) > 1 and messages[-2]["role"] == "assistant" else []
    return not any(block.get("type") in THINKING_BLOCKS for block in [*before, *content] if isinstance(block, dict))


def _add_tool_result(messages: list[dict[str, Any]], step: ToolStep) -> None:
    """A tool result into the conversation: the results of one round share one user message."""
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": step.tool_use_id, "content": step.result}
    if step.is_error:
        block["is_error"] = True
    last = messages[-1]
    if last["role"] == "user" and isinstance(last["content"], list) and last["content"][0]["type"] == "tool_result":
        last["content"] = [*last["content"], block]
    else:
        messages.append({"role": "user", "content": [block]})


def replay(base: Sequence[dict[str, Any]], steps: Sequence[LoopStep]) -> list[dict[str, Any]]:
    """The conversation with the journaled steps applied: tool results of one round share one user message, and an
    answer continued after max_tokens is one assistant turn followed by the turn asking for the rest (unless a piece
    holds thinking: see _mergeable)."""
    messages = [dict(message) for message in base]
    asked_to_continue = False
    for step in steps:
        if isinstance(step, ToolStep):
            _add_tool_result(messages, step)
            continue
        content = step.replayable_content()
        if asked_to_continue and _mergeable(messages, content):  # one answer: one assistant turn
            messages.pop()
            if messages[-1]["role"] == "assistant":
                content = _extended(messages.pop()["content"], content)
        if content:  # a piece that was only a cut tool call leaves nothing to replay
            messages.append({"role": "assistant", "content": content})
        asked_to_continue = step.stop_reason == "max_tokens" and not step.tool_calls()
        if asked_to_continue:
            messages.append({"role": "user", "content": continue_prompt(step.cut_block() is not None)})
    return messages


def pending_tool_calls(steps: Sequence[LoopStep]) -> list[dict[str, Any]]:
    """Whole tool_use blocks of the last model step that have no journaled result yet (a step cut at max_tokens
    may hold some before the call it cut off)."""
    models = [(index, step) for index, step in enumerate(steps) if isinstance(step, ModelStep)]
    if not models or models[-1][1].stop_reason not in ("tool_use", "max_tokens"):
        return []
    last, model = models[-1]
    answered = {step.tool_use_id for step in steps[last + 1 :] if isinstance(step, ToolStep)}
    return [call for call in model.tool_calls() if call["id"] not in answered]


def needs_model_call(steps: Sequence[LoopStep]) -> bool:
    """True when the next step is a model call: at the start, after a round of tool results, or after a pause."""
    if not steps:
        return True
    last = steps[-1]
    if isinstance(last, ToolStep):
        return not pending_tool_calls(steps)
    return last.stop_reason == "pause_turn"


def answer_steps(steps: Sequence[LoopStep]) -> list[ModelStep]:
    """The model steps after the last tool result: the pieces of the answer, not the narration before tools."""
    tail: list[ModelStep] = []
    for step in reversed(steps):
        if not isinstance(step, ModelStep):
            break
        tail.insert(0, step)
    return tail


def answer_output_tokens(steps: Sequence[LoopStep]) -> int:
    """Output tokens of the answer so far, every piece of it counted."""
    return sum(step.usage.output_tokens for step in answer_steps(steps))


def continuation_due(steps: Sequence[LoopStep], max_answer_tokens: int | None = None) -> bool:
    """True when the last model call stopped at max_tokens with no whole tool call to run, and the answer is still
    under `max_answer_tokens` output tokens (None: no cap); the next call then continues the same answer."""
    last = steps[-1] if steps else None
    if not isinstance(last, ModelStep) or last.stop_reason != "max_tokens" or last.tool_calls():
        return False
    return max_answer_tokens is None or answer_output_tokens(steps) < max_answer_tokens


def holds_answer(records: Sequence[Mapping[str, Any]], max_answer_tokens: int | None = None) -> bool:
    """Whether a journal holds a finished answer: the loop made a step, and no model or tool call is due (without
    `max_answer_tokens`, an answer cut at max_tokens counts as due to be continued)."""
    steps = loop_steps(parse_steps(records))
    due = needs_model_call(steps) or pending_tool_calls(steps) or continuation_due(steps, max_answer_tokens)
    return bool(steps) and not due


def answer_so_far(steps: Sequence[LoopStep]) -> str:
    """The answer's pieces joined, as they were written (not stripped): after a max_tokens stop, the next piece
    goes on from the cut; after a pause, it simply follows."""
    text = ""
    cut = False
    for step in answer_steps(steps):
        text = joined(text, step.text()) if cut else text + step.text()
        cut = step.stop_reason == "max_tokens"
    return text


def final_text(steps: Sequence[LoopStep]) -> str:
    """The answer: its pieces joined, without the narration before tools."""
    return answer_so_far(steps).strip()


def last_stop_reason(steps: Sequence[LoopStep]) -> str | None:
    """The stop reason of the last model call, if any was made."""
    return next((step.stop_reason for step in reversed(steps) if isinstance(step, ModelStep)), None)


def counted_model_calls(steps: Sequence[LoopStep]) -> int:
    """Model calls that count toward MAX_MODEL_CALLS: every call but those continuing an answer cut at max_tokens
    (MAX_ANSWER_TOKENS bounds those), so that the call budget of tool use never cuts a long answer short."""
    calls = 0
    previous: LoopStep | None = None
    for step in steps:
        continuation = isinstance(previous, ModelStep) and previous.stop_reason == "max_tokens"
        if isinstance(step, ModelStep) and not continuation:
            calls += 1
        previous = step
    return calls


def total_usage(steps: Sequence[Step]) -> Usage:
    """Tokens of every journaled model call."""
    return sum((step.usage for step in steps if isinstance(step, ModelStep)), Usage())
