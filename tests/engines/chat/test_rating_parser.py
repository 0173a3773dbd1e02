"""Reading ratings and verdicts out of judge texts: the default rule is FastChat's, checked against FastChat's
own run_judge_single / run_judge_pair (fastchat.llm_judge.common) on the same texts; the lenient rule is opt-in."""

from __future__ import annotations

import pytest

from mergeval.engines.chat import parse_rating, parse_verdict
from mergeval.errors import UserError

# Judge texts, including the ones on which mergeval's earlier rule and FastChat's disagreed.
RATING_TEXTS = [
    "The answer is helpful and accurate. Rating: [[8]]",
    "Rating: [[7.5]]",
    "[[ 6 ]]",
    "Solid answer. [9]",
    "Overall rating: 4",
    "Score: **3**",
    "I would give this 7/10.",
    "Seven out of ten... I rate it 6 out of 10",
    'You asked for "[[rating]]", for example "Rating: [[5]]". My rating: [[2]]',
    "Rating: 3 ... final answer [[9]]",
    "See reference [[2023]]. I rate it 8/10",
    "[[0]]",
    "[0]",
    "[[11]]",
    "the Google Pixel has a rating of 7.8",
    "Confidence: 9/10",
    "-3/10",
    "As the reference [2] says, the proof is right. Rating: 9",
    "[[3]] at first, but on reflection [[9]]",
    "[1] first point ... Rating: [[6]]",
    "[[7.]]",
    "[[7.25]] and [8]",
    "The answer is good but misses a step.",
    "",
]

VERDICT_TEXTS = [
    "Assistant A is clearly better. [[A]]",
    "Final verdict: [[B]]",
    "They are equally good: [[C]]",
    'Format: "[[A]]" if A is better, "[[B]]" if B is better. After comparing: [[B]]',
    "Verdict [B]",
    "[[ A ]]",
    "[[B]] ... on second thought [[A]]",
    "Both answers are fine.",
    "[[D]]",
]


@pytest.fixture(scope="module")
def fastchat_common():
    """FastChat's llm_judge.common, with its API call answering the text under test (nothing else replaced)."""
    from fastchat.llm_judge import common

    original = common.chat_completion_openai
    yield common
    common.chat_completion_openai = original


def _fastchat_rating(common, text):
    common.chat_completion_openai = lambda *args, **kwargs: text
    judge = common.Judge("gpt-4", {"name": "single-v1", "type": "single", "system_prompt": "s",
                                   "prompt_template": "{question} {answer}", "output_format": "[[rating]]"})
    rating, _, judgment = common.run_judge_single({"turns": ["q1", "q2"]}, {"choices": [{"turns": ["a1", "a2"]}]},
                                                  judge, None)
    assert judgment == text
    return None if rating == -1 else rating


def _fastchat_verdict(common, text):
    common.chat_completion_openai = lambda *args, **kwargs: text
    judge = common.Judge("gpt-4", {"name": "pair-v2", "type": "pairwise", "system_prompt": "s",
                                   "prompt_template": "{question} {answer_a} {answer_b}", "output_format": "[[A]]"})
    winner, _, _ = common.run_judge_pair({"turns": ["q1", "q2"]}, {"choices": [{"turns": ["a1", "a2"]}]},
                                         {"choices": [{"turns": ["b1", "b2"]}]}, judge, None)
    return None if winner == "error" else winner


@pytest.mark.parametrize("text", RATING_TEXTS)
def test_default_rating_rule_is_fastchats(fastchat_common, text):
    assert parse_rating(text) == _fastchat_rating(fastchat_common, text)


@pytest.mark.parametrize("text", VERDICT_TEXTS)
def test_default_verdict_rule_is_fastchats(fastchat_common, text):
    assert parse_verdict(text) == _fastchat_verdict(fastchat_common, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the cases issue 10 found: FastChat reads none of the first three, and reads the reference number
        ("the Google Pixel has a rating of 7.8", None),
        ("Confidence: 9/10", None),
        ("-3/10", None),
        ("As the reference [2] says, the proof is right. Rating: 9", 2),
        ("[[3]] at first, but on reflection [[9]]", 3),  # the FIRST [[N]]
        ("[0]", 0),  # any number
        ("[[2023]]", 2023),
        ("[[07]]", 7),  # FastChat's ast.literal_eval raises SyntaxError on a leading zero; mergeval reads 7
    ],
)
def test_fastchat_rule_values(text, expected):
    assert parse_rating(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Rating: [[7.5]]", 7.5),
        ("[[ 6 ]]", 6),
        ("Solid answer. [9]", 9),
        ("Overall rating: 4", 4),
        ("Score: **3**", 3),
        ("I would give this 7/10.", 7),
        ('You asked for "[[rating]]", for example "Rating: [[5]]". My rating: [[2]]', 2),  # the last [[N]]
        ("Rating: 3 ... final answer [[9]]", 9),
        ("See reference [[2023]]. I rate it 8/10", 8),  # only 1-10
        ("[[0]]", None),
        ("The answer is good but misses a step.", None),
    ],
)
def test_lenient_rule_is_opt_in(text, expected):
    assert parse_rating(text, "lenient") == expected


@pytest.mark.parametrize(
    ("text", "fastchat", "lenient"),
    [
        ('Format: "[[A]]" if A is better, "[[B]]" if B is better. After comparing: [[B]]', "A", "B"),
        ("Verdict [B]", None, "B"),
        ("[[ A ]]", None, "A"),
        ("[[C]]", "tie", "tie"),
    ],
)
def test_verdict_rules(text, fastchat, lenient):
    assert parse_verdict(text) == fastchat
    assert parse_verdict(text, "lenient") == lenient


def test_unknown_rule_is_refused():
    with pytest.raises(UserError, match="fastchat or lenient"):
        parse_rating("[[5]]", "strict")
