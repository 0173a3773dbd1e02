"""Reading ratings and verdicts out of judge texts (fixed texts, including the awkward ones)."""

from __future__ import annotations

import pytest

from mergeval.chat import parse_rating, parse_verdict


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is helpful and accurate. Rating: [[8]]", 8),
        ("Rating: [[7.5]]", 7.5),
        ("[[ 6 ]]", 6),
        ("Solid answer. [9]", 9),  # FastChat's single-bracket fallback
        ("Overall rating: 4", 4),
        ("Score: **3**", 3),
        ("I would give this 7/10.", 7),
        ("Seven out of ten... I rate it 6 out of 10", 6),
        # a judge quoting the format before its own rating: the last [[N]] is the verdict
        ('You asked for "[[rating]]", for example "Rating: [[5]]". My rating: [[2]]', 2),
        # [[N]] wins over weaker forms anywhere in the text
        ("Rating: 3 ... final answer [[9]]", 9),
        # out-of-range numbers are not ratings; a weaker in-range form still counts
        ("See reference [[2023]]. I rate it 8/10", 8),
        ("[[0]]", None),
        ("[[11]]", None),
        ("The answer is good but misses a step.", None),
        ("", None),
    ],
)
def test_parse_rating(text, expected):
    assert parse_rating(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Assistant A is clearly better. [[A]]", "A"),
        ("Final verdict: [[B]]", "B"),
        ("They are equally good: [[C]]", "tie"),
        # format quoted first ("[[A]] if A is better, [[B]] ..."), verdict last
        ('Format: "[[A]]" if A is better, "[[B]]" if B is better. After comparing: [[B]]', "B"),
        ("Verdict [B]", "B"),
        ("Both answers are fine.", None),
        ("[[D]]", None),
    ],
)
def test_parse_verdict(text, expected):
    assert parse_verdict(text) == expected
