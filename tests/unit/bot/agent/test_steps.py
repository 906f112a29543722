"""Typed journal steps: the JSON form the journal has always held, parsed and written back unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.asyncio import Redis

from bot.agent.steps import (
    ModelStep,
    SummaryPartStep,
    SummaryStep,
    ToolStep,
    holds_answer,
    loop_steps,
    parse_step,
    parse_steps,
    total_usage,
)
from store.errors import CorruptRecord
from store.journal import TaskJournal
from store.models import Usage
from store.tasks import TaskQueue
from tests.unit.store.conftest import SPACE, THREAD, lease_on, make_groups, make_task

USAGE = (
    '{"input_tokens":120,"output_tokens":30,"cache_read_tokens":900,"cache_write_tokens":40,"model_calls":1,'
    '"cost_microusd":2150}'
)
# Records exactly as the release before typed steps wrote them (json.dumps with compact separators).
STORED = {
    "model": '{"kind":"model","content":[{"type":"text","text":"Let me look."},{"type":"tool_use","id":"toolu_1",'
    '"name":"read_thread","input":{"limit":3}}],"stop_reason":"tool_use","usage":' + USAGE + "}",
    "tool": '{"kind":"tool","tool_use_id":"toolu_1","name":"read_thread","result":"alice: hello"}',
    "tool error": '{"kind":"tool","tool_use_id":"toolu_2","name":"read_thread","result":"no such page",'
    '"is_error":true}',
    "summary_part": '{"kind":"summary_part","index":0,"evict":12,"chunk_chars":40000,"text":"Alice asked...","usage":'
    + USAGE
    + "}",
    "summary": '{"kind":"summary","text":"Alice asked about X.","evict":12,"failed":false,"usage":' + USAGE + "}",
}


def compact(record: dict[str, Any]) -> str:
    """A record as the journal stores it."""
    return json.dumps(record, separators=(",", ":"))


@pytest.mark.parametrize("name", list(STORED))
def test_a_stored_record_parses_and_is_written_back_byte_for_byte(name: str) -> None:
    """A record of the journal's existing shape parses, and its step writes the very same JSON again."""
    assert compact(parse_step(json.loads(STORED[name])).to_record()) == STORED[name]


def test_stored_records_parse_to_their_typed_steps() -> None:
    """Each kind of record becomes its step type, with its fields and usage read."""
    usage = Usage(
        input_tokens=120,
        output_tokens=30,
        model_calls=1,
        cache_read_tokens=900,
        cache_write_tokens=40,
        cost_microusd=2150,
    )
    steps = parse_steps([json.loads(raw) for raw in STORED.values()])
    assert [type(step) for step in steps] == [ModelStep, ToolStep, ToolStep, SummaryPartStep, SummaryStep]
    assert steps[2] == ToolStep("toolu_2", "read_thread", "no such page", is_error=True)
    assert steps[4] == SummaryStep("Alice asked about X.", 12, False, usage)
    assert total_usage(steps) == usage  # the model calls only; a fold's usage is the fold's to report


FINGERPRINTED = {
    "summary_part": '{"kind":"summary_part","index":1,"evict":12,"chunk_chars":40000,"text":"Alice asked...","usage":'
    + USAGE
    + ',"covers":5,"offset":310,"fingerprint":"0f3a"}',
    "summary": '{"kind":"summary","text":"Alice asked about X.","evict":12,"failed":false,"usage":'
    + USAGE
    + ',"fingerprint":"0f3a"}',
}


@pytest.mark.parametrize("name", list(FINGERPRINTED))
def test_a_fold_step_keeps_its_fingerprint_and_position(name: str) -> None:
    """A fold step with the turns it covers fingerprinted parses with them, and writes the same JSON back; one of
    the journal's existing shape has no fingerprint (it covers unknown turns)."""
    step = parse_step(json.loads(FINGERPRINTED[name]))
    assert isinstance(step, SummaryPartStep | SummaryStep) and step.fingerprint == "0f3a"
    assert compact(step.to_record()) == FINGERPRINTED[name]
    legacy = parse_step(json.loads(STORED[name]))
    assert isinstance(legacy, SummaryPartStep | SummaryStep) and legacy.fingerprint is None


def test_a_record_with_fewer_usage_counters_reads_the_rest_as_zero() -> None:
    """Usage written with only some counters (as older records were) parses with the others at zero."""
    step = parse_step({"kind": "model", "content": [], "stop_reason": "end_turn", "usage": {"input_tokens": 5}})
    assert step == ModelStep([], "end_turn", Usage(input_tokens=5))


@pytest.mark.parametrize(
    "record",
    [
        {"kind": "model", "content": [], "stop_reason": "end_turn"},  # no usage
        {"kind": "model", "content": "text", "stop_reason": "end_turn", "usage": {}},
        {"kind": "model", "content": ["text"], "stop_reason": "end_turn", "usage": {}},
        {"kind": "model", "content": [], "stop_reason": 3, "usage": {}},
        {"kind": "model", "content": [], "stop_reason": None, "usage": {"tokens": 1}},
        {"kind": "model", "content": [], "stop_reason": None, "usage": {"input_tokens": "1"}},
        {"kind": "tool", "name": "read_thread", "result": "x"},  # no tool_use_id
        {"kind": "tool", "tool_use_id": "t1", "name": "read_thread", "result": "x", "is_error": "yes"},
        {"kind": "summary_part", "index": 0, "evict": True, "chunk_chars": 10, "text": "", "usage": {}},
        {"kind": "summary", "text": "s", "evict": 1, "usage": {}},  # no failed
        {"kind": "summary", "text": "s", "evict": 1, "failed": False, "usage": {}, "fingerprint": 7},
        {
            "kind": "summary_part",
            "index": 0,
            "evict": 1,
            "chunk_chars": 10,
            "text": "",
            "usage": {},
            "fingerprint": "a",
        },
        {"kind": "thought", "text": "s"},
        {"text": "no kind"},
        ["not", "an", "object"],
    ],
)
def test_a_record_that_does_not_parse_is_a_corrupt_record(record: Any) -> None:
    """A step missing a field, with a field of the wrong type, or of no known kind raises CorruptRecord."""
    with pytest.raises(CorruptRecord):
        parse_step(record)


def test_a_journal_holds_an_answer_only_when_no_call_is_due() -> None:
    """Finished means a model step ended the turn; a due tool call, a pause, or a fold alone is not an answer."""
    done = {"kind": "model", "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "usage": {}}
    paused = {**done, "stop_reason": "pause_turn"}
    summary = json.loads(STORED["summary"])
    assert holds_answer([done, summary])
    assert not holds_answer([json.loads(STORED["model"])])
    assert not holds_answer([json.loads(STORED["model"]), json.loads(STORED["tool"])])
    assert not holds_answer([paused])
    assert not holds_answer([summary])
    assert not holds_answer([])
    assert [step.kind for step in loop_steps(parse_steps([done, summary, json.loads(STORED["tool"])]))] == [
        "model",
        "tool",
    ]


async def test_steps_journaled_in_redis_read_back_as_the_same_steps(redis: Redis) -> None:
    """Steps written through the store's journal and read back parse to equal steps, in order."""
    queue, journal = TaskQueue(redis, SPACE), TaskJournal(redis, SPACE)
    await make_groups(queue)
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    task = await queue.head(THREAD)
    assert task is not None
    steps = parse_steps([json.loads(raw) for raw in STORED.values()])
    for step in steps:
        await journal.record_step(lease, task, step.to_record())
    assert parse_steps(await journal.steps(task, attempt=2)) == steps  # as a resumed attempt reads them
