"""The stop rule of continuous-batching generation: a row ends where lm-eval would cut its text."""

from __future__ import annotations

from lm_eval.models.utils import postprocess_generated_text

from mergeval.engines.lmeval.scoring._continuous import StopChecker

# One character per token keeps the examples readable; "<E>" stands for a special token kept by the decoder.
SPECIAL = "<E>"


def _tokens(text: str) -> list[str]:
    out, i = [], 0
    while i < len(text):
        if text.startswith(SPECIAL, i):
            out.append(SPECIAL)
            i += len(SPECIAL)
        else:
            out.append(text[i])
            i += 1
    return out


def _checker(stops):
    return StopChecker(lambda tokens: "".join(tokens), _tokens, stops)


def _first_stop(checker: StopChecker, text: str) -> str | None:
    """The text at the first step where a row of this text would end (None: it never ends)."""
    tokens = _tokens(text)
    seen = False
    for n in range(1, len(tokens) + 1):
        seen = seen or checker.seen(tokens[:n])
        if seen and checker.decided(tokens[:n]):
            return "".join(tokens[:n])
    return None


def test_a_row_ends_at_its_stop_and_the_cut_is_lm_evals():
    stops = ["Question:", "\n\n"]
    full = " 16 * 3 = 48\n#### 48\n\nQuestion: Next one"
    ended = _first_stop(_checker(stops), full)
    assert ended == " 16 * 3 = 48\n#### 48\n\n"
    assert postprocess_generated_text(ended, stops, None) == postprocess_generated_text(full, stops, None)


def test_overlapping_stops_wait_until_the_earliest_cut_is_decided():
    stops = ["\n\nQuestion:", "Question"]
    full = "ans 4\n\nQuestion: more"
    ended = _first_stop(_checker(stops), full)
    # "Question" shows first, but "\n\nQuestion:" began earlier and needs the colon to be decided
    assert ended == "ans 4\n\nQuestion:"
    assert (
        postprocess_generated_text(ended, stops, None)
        == "ans 4"
        == postprocess_generated_text(full, stops, None)
    )
    # and when the longer one does not complete, the shorter one's cut applies
    other = "ans 4\n\nQuestions are"
    ended = _first_stop(_checker(stops), other)
    assert ended == "ans 4\n\nQuestions"
    assert postprocess_generated_text(ended, stops, None) == postprocess_generated_text(other, stops, None)


def test_a_special_token_stop_is_seen_and_text_without_stops_never_ends():
    assert _first_stop(_checker(["Question:", SPECIAL]), "The answer is 4." + SPECIAL + "user: hi") == (
        "The answer is 4." + SPECIAL
    )
    assert _first_stop(_checker(["Question:"]), "no stop here at all") is None
    assert _first_stop(_checker([]), "Question:") is None
