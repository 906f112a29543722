"""Continuing an answer that stopped at max_tokens: the turn that asks for the rest, and the seam between pieces.

The partial answer is replayed as the assistant's turn and a short user turn asks for the rest. Prefilling (ending
the request with the assistant's partial turn) would continue it seamlessly, but not every current model accepts a
trailing assistant message, so the model is asked instead. Asked, a model sometimes starts the cut line again;
`joined` keeps such a repeat out of the answer, and `preview` holds back what may yet turn out to be one, so that
text shown while it streams only ever grows.
"""

from __future__ import annotations

CONTINUE_PROMPT = (
    "(Your reply above was cut off by the output length limit. Continue it exactly where it stopped, even in the "
    "middle of a word, line or code block: do not repeat anything already written, and add no preamble.)"
)
CUT_CALL_NOTE = " (A tool call you had started was cut off and was not made: make it again if you still need it.)"

# A restarted line is recognised only when the cut line holds at least this many visible characters: a shorter one
# could as well be the start of the next word ("ha" + "ha").
MIN_REPEAT = 4


def continue_prompt(cut_call: bool) -> str:
    """The user turn asking for the rest of a cut answer; `cut_call` when a tool call was cut off with it."""
    return CONTINUE_PROMPT + (CUT_CALL_NOTE if cut_call else "")


def _repeats(before: str) -> tuple[str, ...]:
    """What a continuation may start with when it starts the cut line again: the line as is, or unindented."""
    cut_line = before[before.rfind("\n") + 1 :]
    if len(cut_line.strip()) < MIN_REPEAT:
        return ()
    return (cut_line, cut_line.lstrip()) if cut_line != cut_line.lstrip() else (cut_line,)


def joined(before: str, after: str) -> str:
    """Two pieces of an answer cut at max_tokens, as one: the continuation's repeat of the cut line is dropped."""
    for repeat in _repeats(before):
        if after.startswith(repeat):
            return before + after[len(repeat) :]
    return before + after


def preview(before: str, after: str) -> str:
    """The answer so far while the continuation `after` is still streaming: like `joined`, but what may still
    become a repeat of the cut line is held back until the continuation shows whether it is one."""
    if any(repeat.startswith(after) and len(after) < len(repeat) for repeat in _repeats(before)):
        return before
    return joined(before, after)
