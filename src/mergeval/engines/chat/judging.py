"""Judging answers: single grading (1-10 per turn) and pairwise A/B with position swap. No store: the caller
passes the answers and the judgments it already has, and stores what comes back.

How judging goes:
  1. Every judgment needed is a *unit*: one prompt to the judge (a question's turn, a repeat, or a pairwise
     order). Its cache key is the hash of (judge identity, the exact messages, repeat, format reminder), so a
     judgment already paid for (in any earlier run, for any check) is reused, never requested again.
  2. Units without a usable cached judgment go to the judge on a bounded thread pool. A reply without a
     rating (or verdict) gets one more request with a format reminder; if that fails too the judgment is
     *unparsed*, counted in every summary and report, never silently dropped. Ratings are read with the
     check's parser rule (FastChat's by default, see parsing.py); a cached judgment is read again with the
     current rule, and gets its format reminder then if that rule finds no rating in it.
  3. Each finished judgment comes back at once (to be cached), with the item it completes, if any, so
     killing the run loses at most the judgments in flight. A judge that stays down after the client's
     retries stops with a UserError that says how far it got.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from mergeval.core.identity import content_hash
from mergeval.engines.chat._endpoint import EndpointUnavailable, Messages
from mergeval.engines.chat._pool import bounded
from mergeval.engines.chat.judges import Judge
from mergeval.engines.chat.parsing import parse_rating, parse_verdict
from mergeval.engines.chat.prompts import (
    RATING_REMINDER,
    VERDICT_REMINDER,
    JudgePrompts,
    pairwise_messages,
    single_messages,
)
from mergeval.engines.chat.questions import Question
from mergeval.errors import UserError

Answers = Mapping[str, Sequence[str]]  # question item id -> (turn-1 answer, turn-2 answer)
Outcome = dict[str, Any]  # {"text", "reminder_text", "value"}: one judgment, as cached and stored


@dataclass(frozen=True)
class Row:
    """One judged item, as it is stored: `metrics` are numbers, `data` everything else."""

    item_id: str
    metrics: dict[str, float]
    data: dict[str, Any]


@dataclass(frozen=True)
class Unit:
    """One prompt to the judge."""

    item_id: str
    part: str  # which judgment of the item: "t1#0" (turn 1, repeat 0) or "ab" / "ba" (pairwise order)
    messages: Messages
    repeat: int
    key: str  # judgment cache key


def cache_key(judge: Judge, messages: Messages, repeat: int, reminder: str) -> str:
    return content_hash({"judge": judge.identity(), "messages": messages, "repeat": repeat, "reminder": reminder}, 32)


def pair_item_id(question: Question, turn: int) -> str:
    return f"{question.item_id}:t{turn}"


# -- what a judging task asks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SingleGrading:
    """1-10 grades of one model's answers, turn 1 and turn 2 (shown the whole conversation), `repeats` times."""

    questions: Sequence[Question]
    prompts: JudgePrompts
    repeats: int = 1
    parser: str = "fastchat"
    reminder = RATING_REMINDER

    def item_ids(self) -> list[str]:
        return [q.item_id for q in self.questions]

    def to_dict(self) -> dict[str, Any]:
        return {"mode": "single", "questions": [q.to_dict() for q in self.questions],
                "prompts": self.prompts.to_dict(), "repeats": self.repeats, "parser": self.parser}

    def parse(self, text: str) -> Any:
        return parse_rating(text, parser=self.parser)

    def units(self, judge: Judge, answers: Answers) -> dict[str, list[Unit]]:
        out: dict[str, list[Unit]] = {}
        for q in self.questions:
            out[q.item_id] = [
                Unit(q.item_id, f"t{turn}#{r}", messages, r, cache_key(judge, messages, r, self.reminder))
                for turn in (1, 2)
                for messages in [single_messages(self.prompts, q, tuple(answers[q.item_id]), turn)]
                for r in range(self.repeats)
            ]
        return out

    def row(self, item_id: str, outcomes: dict[str, Outcome]) -> Row:
        question = next(q for q in self.questions if q.item_id == item_id)
        metrics: dict[str, float] = {}
        turns: dict[str, Any] = {}
        unparsed_turns = []
        n_unparsed = 0
        for turn in (1, 2):
            judgments = [outcomes[f"t{turn}#{r}"] for r in range(self.repeats)]
            ratings = [j["value"] for j in judgments]
            valid = [float(x) for x in ratings if x is not None]
            n_unparsed += len(ratings) - len(valid)
            if valid:
                metrics[f"score_t{turn}"] = statistics.fmean(valid)
            else:
                unparsed_turns.append(turn)
            turns[str(turn)] = {
                "prompt": self.prompts.single(question, turn).name,
                "ratings": ratings,
                "judgments": [{"text": j["text"], "reminder_text": j["reminder_text"]} for j in judgments],
            }
        metrics["n_unparsed"] = n_unparsed
        data = {"question_id": question.question_id, "category": question.category, "turns": turns,
                "unparsed_turns": unparsed_turns}
        return Row(item_id, metrics, data)


# Verdicts of the two orders, mapped to the models: in order "ab" assistant A is model a; in "ba" it is b.
_ORDER_MAP = {"ab": {"A": "model_a", "B": "model_b", "tie": "tie"},
              "ba": {"A": "model_b", "B": "model_a", "tie": "tie"}}


def game_outcome(g1: str | None, g2: str | None) -> dict[str, int] | None:
    """win/tie/loss (for model a) and consistency from the two orders' winners; None if either is missing.

    FastChat's rule: a tie when the first order says tie or the two orders disagree; else the agreed winner.
    """
    if g1 is None or g2 is None:
        return None
    consistent = g1 == g2
    result = "tie" if g1 == "tie" or not consistent else g1
    return {"win": int(result == "model_a"), "tie": int(result == "tie"), "loss": int(result == "model_b"),
            "consistent": int(consistent)}


@dataclass(frozen=True)
class PairwiseGrading:
    """A/B games of model a's answers against model b's: every (question, turn) in both orders.

    A game is a win for a only when both orders agree that a is better; disagreeing orders are a tie
    (FastChat's rule)."""

    questions: Sequence[Question]
    prompts: JudgePrompts
    answers_b: Answers = field(default_factory=dict)
    parser: str = "fastchat"
    reminder = VERDICT_REMINDER

    def item_ids(self) -> list[str]:
        return [pair_item_id(q, t) for q in self.questions for t in (1, 2)]

    def to_dict(self) -> dict[str, Any]:
        return {"mode": "pairwise", "questions": [q.to_dict() for q in self.questions],
                "prompts": self.prompts.to_dict(), "answers_b": {k: list(v) for k, v in self.answers_b.items()},
                "parser": self.parser}

    def parse(self, text: str) -> Any:
        return parse_verdict(text, parser=self.parser)

    def units(self, judge: Judge, answers: Answers) -> dict[str, list[Unit]]:
        out: dict[str, list[Unit]] = {}
        for q in self.questions:
            a, b = tuple(answers[q.item_id]), tuple(self.answers_b[q.item_id])
            for turn in (1, 2):
                item_id = pair_item_id(q, turn)
                orders = {"ab": pairwise_messages(self.prompts, q, a, b, turn),
                          "ba": pairwise_messages(self.prompts, q, b, a, turn)}
                out[item_id] = [Unit(item_id, order, messages, 0, cache_key(judge, messages, 0, self.reminder))
                                for order, messages in orders.items()]
        return out

    def row(self, item_id: str, outcomes: dict[str, Outcome]) -> Row:
        question_id, _, turn_text = item_id.rpartition(":t")
        question = next(q for q in self.questions if q.item_id == question_id)
        turn = int(turn_text)
        winners = {order: _ORDER_MAP[order].get(outcomes[order]["value"]) for order in ("ab", "ba")}
        result = game_outcome(winners["ab"], winners["ba"])
        n_unparsed = sum(1 for order in ("ab", "ba") if outcomes[order]["value"] is None)
        metrics: dict[str, float] = {**(result or {}), "n_unparsed": n_unparsed}
        data = {
            "question_id": question.question_id, "category": question.category, "turn": turn,
            "prompt": self.prompts.pairwise(question, turn).name,
            "g1_winner": winners["ab"] or "error", "g2_winner": winners["ba"] or "error",
            "g1": {k: outcomes["ab"][k] for k in ("text", "reminder_text", "value")},
            "g2": {k: outcomes["ba"][k] for k in ("text", "reminder_text", "value")},
            "unparsed": result is None,
        }
        return Row(item_id, metrics, data)


Grading = SingleGrading | PairwiseGrading


def grading_from_dict(data: Mapping[str, Any]) -> Grading:
    """The grading a `to_dict()` describes (a judging work unit carries it to the process that judges)."""
    questions = [Question.from_dict(q) for q in data["questions"]]
    prompts = JudgePrompts.from_dict(data["prompts"])
    if data["mode"] == "single":
        return SingleGrading(questions, prompts, repeats=data["repeats"], parser=data["parser"])
    return PairwiseGrading(questions, prompts, answers_b=data["answers_b"], parser=data["parser"])


# -- one judgment ----------------------------------------------------------------------------------------------


def ask(judge: Judge, unit: Unit, parse: Callable[[str], Any], reminder: str, text: str | None = None) -> Outcome:
    """One judgment: the judge's reply (or `text`, a cached reply), and one retry with a format reminder when
    it holds no rating/verdict. `calls` counts the requests sent."""
    calls = 0
    if text is None:
        text, calls = judge.complete(unit.messages, repeat=unit.repeat), 1
    value, reminder_text = parse(text), None
    if value is None:
        follow_up = unit.messages + [{"role": "assistant", "content": text}, {"role": "user", "content": reminder}]
        reminder_text = judge.complete(follow_up, repeat=unit.repeat)
        value, calls = parse(reminder_text), calls + 1
    return {"text": text, "reminder_text": reminder_text, "value": value, "calls": calls}


def reparse(cached: Mapping[str, Any], parse: Callable[[str], Any]) -> Outcome | None:
    """A cached judgment read with the current rule; None when that rule finds nothing in the reply and no
    format reminder was asked for it yet (another rule had read it): the reminder is then still owed."""
    value = parse(cached["text"])
    if value is None and cached.get("reminder_text") is not None:
        value = parse(cached["reminder_text"])
    elif value is None:
        return None
    return {"text": cached["text"], "reminder_text": cached.get("reminder_text"), "value": value}


# -- judging a task's items -------------------------------------------------------------------------------------------


@dataclass
class Step:
    """What one finished judgment (or a cached item) gives: the items it completes, the judgment to cache."""

    rows: list[Row] = field(default_factory=list)
    cache: list[tuple[str, Outcome]] = field(default_factory=list)  # (cache key, outcome without "calls")


@dataclass
class Counts:
    items: int = 0  # items finished by this call
    calls: int = 0  # requests sent to the judge (format-reminder retries included)
    hits: int = 0  # judgments taken from the cache instead of the judge
    unparsed: int = 0  # judgments in the finished items that gave no rating / verdict even after the reminder

    def stats(self) -> dict[str, int]:
        return {"judge_calls": self.calls, "cache_hits": self.hits, "unparsed": self.unparsed}


class Judging:
    """Judges the items `item_ids` of `grading` for one model (`answers`) with `judge`, reusing `cached`
    judgments (cache key -> outcome). Iterate it for Steps; `counts` says what it did so far."""

    def __init__(self, grading: Grading, judge: Judge, answers: Answers, item_ids: Sequence[str],
                 cached: Mapping[str, Mapping[str, Any]]):
        self.grading, self.judge, self.cached = grading, judge, cached
        units = grading.units(judge, answers) if item_ids else {}
        self.todo = {item_id: units[item_id] for item_id in item_ids}
        self.outcomes: dict[str, dict[str, Outcome]] = {item_id: {} for item_id in self.todo}
        self.counts = Counts()

    def __iter__(self) -> Iterator[Step]:
        jobs, cached_texts = [], {}  # cached_texts: unit key -> a cached reply that still needs its reminder
        for item_id, units in self.todo.items():
            for unit in units:
                cached = self.cached.get(unit.key)
                outcome = None if cached is None else reparse(cached, self.grading.parse)
                if outcome is None:
                    jobs.append(unit)
                    if cached is not None:
                        cached_texts[unit.key] = cached["text"]
                else:
                    self.outcomes[item_id][unit.part] = outcome
                    self.counts.hits += 1
            step = Step(rows=self._finished(item_id))
            if step.rows:
                yield step
        work = partial(self._ask, cached_texts)
        try:
            for unit, outcome in bounded(jobs, work, concurrency=self.judge.concurrency):
                self.counts.calls += outcome.pop("calls")
                self.outcomes[unit.item_id][unit.part] = outcome
                yield Step(rows=self._finished(unit.item_id), cache=[(unit.key, outcome)])
        except EndpointUnavailable as exc:
            raise UserError(
                f"{exc} Judging stopped: {self.counts.items} of {len(self.todo)} items were judged and stored in "
                f"this run (plus {sum(len(o) for o in self.outcomes.values())} judgments cached). Run the same "
                "command again when the judge is back; it resumes without repeating them."
            ) from exc

    def _ask(self, cached_texts: dict[str, str], unit: Unit) -> Outcome:
        return ask(self.judge, unit, self.grading.parse, self.grading.reminder, cached_texts.get(unit.key))

    def _finished(self, item_id: str) -> list[Row]:
        """The item's row once all its judgments are in (once)."""
        outcomes = self.outcomes[item_id]
        if len(outcomes) != len(self.todo[item_id]):
            return []
        self.counts.items += 1
        self.counts.unparsed += sum(1 for o in outcomes.values() if o["value"] is None)
        return [self.grading.row(item_id, outcomes)]


__all__ = [
    "Counts",
    "Grading",
    "Judging",
    "PairwiseGrading",
    "Row",
    "SingleGrading",
    "Step",
    "Unit",
    "ask",
    "cache_key",
    "game_outcome",
    "grading_from_dict",
    "pair_item_id",
    "reparse",
]
