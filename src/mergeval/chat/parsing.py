"""Reading a rating or a verdict out of a judge's free text.

FastChat takes the *first* ``[[N]]`` (else the first ``[N]``) and stores -1 when there is none, which
show_result then drops without saying so. mergeval:
  - tries, in order, ``[[N]]``, ``[N]``, ``Rating: N`` / ``Score: N`` and ``N/10`` / ``N out of 10``;
  - within a form takes the *last* match, because judges that first quote the format ("for example
    [[5]]") put their own rating after it;
  - accepts only ratings from 1 to 10 (decimals allowed), so "[[0]]" or a year in brackets is not a score;
  - returns None for "no rating": the caller retries once with a format reminder, then records the judgment
    as unparsed and counts it in the report.
Verdicts (pairwise) are ``[[A]]``, ``[[B]]`` or ``[[C]]`` (tie), the last one in the text, with ``[A]``-style
single brackets as a fallback.
"""

from __future__ import annotations

import re

RATING_MIN, RATING_MAX = 1.0, 10.0

_NUMBER = r"(\d+(?:\.\d+)?)"
_RATING_FORMS = (
    re.compile(r"\[\[\s*" + _NUMBER + r"\s*\]\]"),
    re.compile(r"\[\s*" + _NUMBER + r"\s*\]"),
    re.compile(r"\b(?:rating|score)\s*(?:is|of)?\s*[:=]?\s*\**\s*" + _NUMBER, re.IGNORECASE),
    re.compile(_NUMBER + r"\s*(?:/|out of)\s*10\b", re.IGNORECASE),
)
_VERDICT_FORMS = (
    re.compile(r"\[\[\s*([ABC])\s*\]\]"),
    re.compile(r"\[\s*([ABC])\s*\]"),
)
VERDICTS = {"A": "A", "B": "B", "C": "tie"}


def parse_rating(text: str) -> float | None:
    """The judge's 1-10 rating in `text`, or None when it gave none in a recognised form."""
    for form in _RATING_FORMS:
        for match in reversed(list(form.finditer(text or ""))):
            value = float(match.group(1))
            if RATING_MIN <= value <= RATING_MAX:
                return value
        # a form that matched only out-of-range numbers does not stop the weaker forms from being tried
    return None


def parse_verdict(text: str) -> str | None:
    """'A', 'B' or 'tie' from a pairwise judgment, or None when it has no verdict."""
    for form in _VERDICT_FORMS:
        matches = form.findall(text or "")
        if matches:
            return VERDICTS[matches[-1]]
    return None
