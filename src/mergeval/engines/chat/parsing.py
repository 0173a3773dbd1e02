"""Reading a rating or a verdict out of a judge's free text.

Two rules, named in every judging check's identity (``parser`` in its config), so results read with one
rule are never mixed with results read with the other:

``fastchat`` (the default) is FastChat's rule, exactly (fastchat/llm_judge/common.py, run_judge_single and
run_judge_pair):
  - rating: the FIRST ``[[N]]`` (regex ``\\[\\[(\\d+\\.?\\d*)\\]\\]``), else the FIRST ``[N]``
    (``\\[(\\d+\\.?\\d*)\\]``); any number counts (``[[0]]`` is 0, "reference [2]" is 2); nothing else is a
    rating. The one difference: FastChat reads the number with ``ast.literal_eval`` and crashes on a
    leading zero ("[[07]]"); here it is 7.
  - verdict: ``[[A]]`` anywhere in the text, else ``[[B]]``, else ``[[C]]`` (a tie), tested in that order;
    single brackets are not a verdict.

``lenient`` (opt-in; mergeval's earlier rule) reads more: ``[[N]]``, ``[N]``, ``Rating: N`` / ``Score: N``,
``N/10`` / ``N out of 10``, the LAST match of the strongest form, only 1-10; verdicts are the last ``[[X]]``
(spaces allowed), ``[X]`` as a fallback. It reads ratings FastChat does not ("has a rating of 7.8",
"Confidence: 9/10"), so its numbers are not FastChat's.

Both return None for "no rating": the caller retries once with a format reminder, then records the judgment
as unparsed and counts it in the report.
"""

from __future__ import annotations

import re

from mergeval.errors import UserError

PARSERS = ("fastchat", "lenient")
DEFAULT_PARSER = "fastchat"

# FastChat's patterns, character for character (common.py: one_score_pattern, one_score_pattern_backup).
_FASTCHAT_RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_FASTCHAT_RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")

RATING_MIN, RATING_MAX = 1.0, 10.0  # the lenient rule's range

_NUMBER = r"(\d+(?:\.\d+)?)"
_LENIENT_RATING_FORMS = (
    re.compile(r"\[\[\s*" + _NUMBER + r"\s*\]\]"),
    re.compile(r"\[\s*" + _NUMBER + r"\s*\]"),
    re.compile(r"\b(?:rating|score)\s*(?:is|of)?\s*[:=]?\s*\**\s*" + _NUMBER, re.IGNORECASE),
    re.compile(_NUMBER + r"\s*(?:/|out of)\s*10\b", re.IGNORECASE),
)
_LENIENT_VERDICT_FORMS = (
    re.compile(r"\[\[\s*([ABC])\s*\]\]"),
    re.compile(r"\[\s*([ABC])\s*\]"),
)
VERDICTS = {"A": "A", "B": "B", "C": "tie"}


def check_parser(name: str) -> str:
    """`name` if it is a known rule, else a UserError listing them."""
    if name not in PARSERS:
        raise UserError(f"Unknown rating parser {name!r}: use {' or '.join(PARSERS)} (default {DEFAULT_PARSER}).")
    return name


def parse_rating(text: str, parser: str = DEFAULT_PARSER) -> float | None:
    """The judge's rating in `text` under rule `parser`, or None when it gave none."""
    text = text or ""
    if check_parser(parser) == "fastchat":
        match = _FASTCHAT_RATING.search(text) or _FASTCHAT_RATING_BACKUP.search(text)
        return float(match.group(1)) if match else None
    for form in _LENIENT_RATING_FORMS:
        for match in reversed(list(form.finditer(text))):
            value = float(match.group(1))
            if RATING_MIN <= value <= RATING_MAX:
                return value
        # a form that matched only out-of-range numbers does not stop the weaker forms from being tried
    return None


def parse_verdict(text: str, parser: str = DEFAULT_PARSER) -> str | None:
    """'A', 'B' or 'tie' from a pairwise judgment under rule `parser`, or None when it has no verdict."""
    text = text or ""
    if check_parser(parser) == "fastchat":
        for mark, verdict in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie")):
            if mark in text:
                return verdict
        return None
    for form in _LENIENT_VERDICT_FORMS:
        matches = form.findall(text)
        if matches:
            return VERDICTS[matches[-1]]
    return None
