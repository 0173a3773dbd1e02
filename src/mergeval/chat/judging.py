"""Judging stored answers: single grading (1-10 per turn) and pairwise A/B with position swap.

How a run goes:
  1. Every judgment needed is listed as a *unit*: one prompt to the judge (a question's turn, a repeat, or a
     pairwise order). Its cache key is the hash of (judge identity, the exact messages, repeat), so a
     judgment already paid for (in any earlier run, for any check) is reused, never requested again.
  2. Missing units go to the judge on a bounded thread pool. A reply without a rating (or verdict) gets one
     more request with a format reminder; if that fails too the judgment is stored as *unparsed*, counted
     in every summary and report, never silently dropped.
  3. As soon as all units of a question are in, the question's row is stored, so killing the run loses at
     most the judgments in flight. A judge that stays down after the client's retries stops the run with a
     UserError; everything judged so far is kept, and the same call resumes from there.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mergeval.chat._checks import JUDGMENT_CACHE, PAIR_KIND, SINGLE_KIND, CheckSpec, set_name, stable_hash
from mergeval.chat._endpoint import EndpointUnavailable, Messages
from mergeval.chat._pool import run_bounded
from mergeval.chat.generation import GenerationConfig, answers_check, stored_answers
from mergeval.chat.judges import Judge
from mergeval.chat.parsing import parse_rating, parse_verdict
from mergeval.chat.progress import NullProgress, Progress
from mergeval.chat.prompts import (
    RATING_REMINDER,
    VERDICT_REMINDER,
    JudgePrompts,
    check_references,
    load_judge_prompts,
    pairwise_messages,
    single_messages,
)
from mergeval.chat.questions import Question, check_question_set, reference_source_of
from mergeval.errors import UserError
from mergeval.models import ModelRef
from mergeval.store import ItemRow, Store


@dataclass(frozen=True)
class JudgingSummary:
    """What one judge_single / judge_pairwise call did."""

    check_hash: str
    n_items: int  # rows of this check now stored for the requested questions
    n_new: int  # rows stored by this call
    n_judge_calls: int  # requests sent to the judge by this call (format-reminder retries included)
    n_cache_hits: int  # judgments taken from the cache instead of the judge
    n_unparsed: int  # judgments in the new rows that gave no rating / verdict even after the reminder


# -- checks ----------------------------------------------------------------------------------------------------


def single_check(
    questions: Sequence[Question], judge: Judge, *, generation: GenerationConfig | None = None,
    prompts: JudgePrompts | None = None, repeats: int = 1,
) -> CheckSpec:
    """The check under which `judge`'s single grades of a model's answers are stored."""
    prompts = prompts or load_judge_prompts()
    _check_repeats(repeats)
    set_id = check_question_set(questions)
    config = {
        "answers": answers_check(questions, generation).hash,
        "questions": set_id,
        "references": reference_source_of(questions),
        "judge": judge.identity(),
        "prompts": prompts.hash,
        "repeats": int(repeats),
    }
    return CheckSpec(kind=SINGLE_KIND, name=f"mt-bench:{set_name(set_id)}:{judge.name}", config=config)


def pair_check(
    questions: Sequence[Question], judge: Judge, opponent: ModelRef, *, generation: GenerationConfig | None = None,
    prompts: JudgePrompts | None = None,
) -> CheckSpec:
    """The check under which A/B verdicts of a model against `opponent` are stored."""
    prompts = prompts or load_judge_prompts()
    set_id = check_question_set(questions)
    config = {
        "answers": answers_check(questions, generation).hash,
        "questions": set_id,
        "references": reference_source_of(questions),
        "opponent": opponent.fingerprint,
        "judge": judge.identity(),
        "prompts": prompts.hash,
    }
    name = f"mt-bench:{set_name(set_id)}:{judge.name}:vs:{opponent.name}"
    return CheckSpec(kind=PAIR_KIND, name=name, config=config)


def _check_repeats(repeats: int) -> None:
    if int(repeats) != repeats or repeats < 1:
        raise UserError(f"judge_repeats must be a positive integer (got {repeats!r}).")


def pair_item_id(question: Question, turn: int) -> str:
    return f"{question.item_id}:t{turn}"


# -- one judgment ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    item_id: str
    part: str  # which judgment of the item: "t1#0" (turn 1, repeat 0) or "ab" / "ba" (pairwise order)
    messages: Messages
    repeat: int
    key: str  # judgment cache key


def _cache_key(judge: Judge, messages: Messages, repeat: int, reminder: str) -> str:
    return stable_hash({"judge": judge.identity(), "messages": messages, "repeat": repeat, "reminder": reminder}, 32)


def _ask(judge: Judge, unit: _Unit, parse: Callable[[str], Any], reminder: str) -> dict[str, Any]:
    """One judgment: the judge's reply, and one retry with a format reminder when it holds no rating/verdict."""
    text = judge.complete(unit.messages, repeat=unit.repeat)
    value, reminder_text, calls = parse(text), None, 1
    if value is None:
        follow_up = unit.messages + [{"role": "assistant", "content": text}, {"role": "user", "content": reminder}]
        reminder_text = judge.complete(follow_up, repeat=unit.repeat)
        value, calls = parse(reminder_text), 2
    return {"text": text, "reminder_text": reminder_text, "value": value, "calls": calls}


def _run_units(
    store: Store,
    ref: ModelRef,
    spec: CheckSpec,
    units: dict[str, list[_Unit]],
    judge: Judge,
    *,
    parse: Callable[[str], Any],
    reminder: str,
    make_item: Callable[[str, dict[str, dict[str, Any]]], ItemRow],
    progress: Progress,
    label: str,
    provenance: dict[str, Any],
) -> JudgingSummary:
    """Judge every unit of the items not stored yet, storing each item once all its units are judged."""
    stored = store.item_ids(ref.fingerprint, spec.hash)
    todo = {item_id: item_units for item_id, item_units in units.items() if item_id not in stored}
    if not todo:
        return JudgingSummary(spec.hash, len(units), 0, 0, 0, 0)
    spec.register(store, ref)
    run_id = store.start_run(ref.fingerprint, spec.hash, {**provenance, "judge": judge.identity()})
    outcomes: dict[str, dict[str, dict[str, Any]]] = {item_id: {} for item_id in todo}
    counts = {"new": 0, "calls": 0, "hits": 0, "unparsed": 0}

    def store_if_complete(item_id: str) -> None:
        if len(outcomes[item_id]) == len(todo[item_id]):
            item = make_item(item_id, outcomes[item_id])
            counts["new"] += store.add_items(ref.fingerprint, spec.hash, run_id, [item])
            counts["unparsed"] += sum(1 for o in outcomes[item_id].values() if o["value"] is None)
            progress.advance(1)

    progress.start(label, len(todo))
    jobs: list[_Unit] = []
    for item_id, item_units in todo.items():
        for unit in item_units:
            cached = store.cache_get(JUDGMENT_CACHE, unit.key)
            if cached is None:
                jobs.append(unit)
            else:
                outcomes[item_id][unit.part] = cached
                counts["hits"] += 1
        store_if_complete(item_id)

    def work(unit: _Unit) -> dict[str, Any]:
        return _ask(judge, unit, parse, reminder)

    def on_result(unit: _Unit, outcome: dict[str, Any]) -> None:
        counts["calls"] += outcome.pop("calls")
        store.cache_put(JUDGMENT_CACHE, unit.key, outcome)
        outcomes[unit.item_id][unit.part] = outcome
        store_if_complete(unit.item_id)

    started, status = time.time(), "failed"
    try:
        run_bounded(jobs, work, on_result, concurrency=judge.concurrency)
        status = "done"
    except EndpointUnavailable as exc:
        raise UserError(
            f"{exc} Judging stopped: {counts['new']} of {len(todo)} items were judged and stored in this run "
            f"(plus {sum(len(o) for o in outcomes.values())} judgments cached). Run the same command again "
            "when the judge is back; it resumes without repeating them."
        ) from exc
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        summary = {"seconds": round(time.time() - started, 3), "judge_calls": counts["calls"],
                   "cache_hits": counts["hits"], "unparsed": counts["unparsed"]}
        store.finish_run(run_id, status=status, provenance={**provenance, "judge": judge.identity(), **summary})
        progress.done()
    n_items = len(set(units) & store.item_ids(ref.fingerprint, spec.hash))
    return JudgingSummary(spec.hash, n_items, counts["new"], counts["calls"], counts["hits"], counts["unparsed"])


def _answers_or_fail(store: Store, ref: ModelRef, questions: Sequence[Question],
                     generation: GenerationConfig | None) -> dict[str, tuple[str, str]]:
    answers = stored_answers(store, ref, questions, generation)
    missing = [q.item_id for q in questions if q.item_id not in answers]
    if missing:
        raise UserError(
            f"{ref.name} has no stored answers for {len(missing)} of the {len(questions)} questions (ids "
            f"{', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}) under this generation config. "
            "Generate them first (generate_answers / `mergeval eval`), with the same max_new_tokens and temperatures."
        )
    return answers


# -- single grading ----------------------------------------------------------------------------------------------


def judge_single(
    store: Store,
    ref: ModelRef,
    questions: Sequence[Question],
    judge: Judge,
    *,
    generation: GenerationConfig | None = None,
    prompts: JudgePrompts | None = None,
    repeats: int = 1,
    progress: Progress | None = None,
) -> JudgingSummary:
    """Grade `ref`'s stored answers 1-10, turn 1 and turn 2 (shown the whole conversation), `repeats` times each.

    Math, reasoning and coding questions are graded against their reference answers.
    """
    prompts = prompts or load_judge_prompts()
    questions = list(questions)
    spec = single_check(questions, judge, generation=generation, prompts=prompts, repeats=repeats)
    check_references(questions)
    by_id = {q.item_id: q for q in questions}
    if by_id.keys() <= store.item_ids(ref.fingerprint, spec.hash):
        return JudgingSummary(spec.hash, len(questions), 0, 0, 0, 0)
    answers = _answers_or_fail(store, ref, questions, generation)
    units: dict[str, list[_Unit]] = {}
    for question in questions:
        units[question.item_id] = [
            _Unit(question.item_id, f"t{turn}#{r}", messages, r, _cache_key(judge, messages, r, RATING_REMINDER))
            for turn in (1, 2)
            for messages in [single_messages(prompts, question, answers[question.item_id], turn)]
            for r in range(repeats)
        ]

    def make_item(item_id: str, outcomes: dict[str, dict[str, Any]]) -> ItemRow:
        return _single_item(by_id[item_id], prompts, repeats, outcomes)

    return _run_units(
        store, ref, spec, units, judge, parse=parse_rating, reminder=RATING_REMINDER, make_item=make_item,
        progress=progress or NullProgress(), label=f"judging {ref.name} ({judge.name})",
        provenance={"mode": "single", "prompts": prompts.source, "prompts_hash": prompts.hash, "repeats": repeats},
    )


def _single_item(question: Question, prompts: JudgePrompts, repeats: int,
                 outcomes: dict[str, dict[str, Any]]) -> ItemRow:
    metrics: dict[str, float] = {}
    turns: dict[str, Any] = {}
    unparsed_turns = []
    n_unparsed = 0
    for turn in (1, 2):
        judgments = [outcomes[f"t{turn}#{r}"] for r in range(repeats)]
        ratings = [j["value"] for j in judgments]
        valid = [float(x) for x in ratings if x is not None]
        n_unparsed += len(ratings) - len(valid)
        if valid:
            metrics[f"score_t{turn}"] = statistics.fmean(valid)
        else:
            unparsed_turns.append(turn)
        turns[str(turn)] = {
            "prompt": prompts.single(question, turn).name,
            "ratings": ratings,
            "judgments": [{"text": j["text"], "reminder_text": j["reminder_text"]} for j in judgments],
        }
    metrics["n_unparsed"] = n_unparsed
    data = {"question_id": question.question_id, "category": question.category, "turns": turns,
            "unparsed_turns": unparsed_turns}
    return ItemRow(question.item_id, metrics, data)


# -- pairwise --------------------------------------------------------------------------------------------------


def judge_pairwise(
    store: Store,
    ref_a: ModelRef,
    ref_b: ModelRef,
    questions: Sequence[Question],
    judge: Judge,
    *,
    generation: GenerationConfig | None = None,
    prompts: JudgePrompts | None = None,
    progress: Progress | None = None,
) -> JudgingSummary:
    """Compare `ref_a`'s answers with `ref_b`'s, each turn in both orders (A first, then B first).

    Stored under `ref_a` (the candidate) with `ref_b` (a parent or baseline) in the check. A game is a win for
    A only when both orders agree that A is better; disagreeing orders are a tie (FastChat's rule).
    """
    if ref_a.fingerprint == ref_b.fingerprint:
        raise UserError(f"{ref_a.name} and {ref_b.name} are the same model (same fingerprint); compare two models.")
    prompts = prompts or load_judge_prompts()
    questions = list(questions)
    spec = pair_check(questions, judge, ref_b, generation=generation, prompts=prompts)
    check_references(questions)
    wanted = {pair_item_id(q, t) for q in questions for t in (1, 2)}
    if wanted <= store.item_ids(ref_a.fingerprint, spec.hash):
        return JudgingSummary(spec.hash, len(wanted), 0, 0, 0, 0)
    answers_a = _answers_or_fail(store, ref_a, questions, generation)
    answers_b = _answers_or_fail(store, ref_b, questions, generation)
    units: dict[str, list[_Unit]] = {}
    where: dict[str, tuple[Question, int]] = {}
    for question in questions:
        a, b = answers_a[question.item_id], answers_b[question.item_id]
        for turn in (1, 2):
            item_id = pair_item_id(question, turn)
            where[item_id] = (question, turn)
            orders = {"ab": pairwise_messages(prompts, question, a, b, turn),
                      "ba": pairwise_messages(prompts, question, b, a, turn)}
            units[item_id] = [_Unit(item_id, order, messages, 0, _cache_key(judge, messages, 0, VERDICT_REMINDER))
                              for order, messages in orders.items()]

    def make_item(item_id: str, outcomes: dict[str, dict[str, Any]]) -> ItemRow:
        question, turn = where[item_id]
        return _pair_item(item_id, question, turn, prompts, outcomes)

    return _run_units(
        store, ref_a, spec, units, judge, parse=parse_verdict, reminder=VERDICT_REMINDER, make_item=make_item,
        progress=progress or NullProgress(), label=f"A/B {ref_a.name} vs {ref_b.name} ({judge.name})",
        provenance={"mode": "pairwise", "opponent": ref_b.name, "prompts": prompts.source,
                    "prompts_hash": prompts.hash},
    )


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


def _pair_item(item_id: str, question: Question, turn: int, prompts: JudgePrompts,
               outcomes: dict[str, dict[str, Any]]) -> ItemRow:
    winners = {order: _ORDER_MAP[order].get(outcomes[order]["value"]) for order in ("ab", "ba")}
    result = game_outcome(winners["ab"], winners["ba"])
    n_unparsed = sum(1 for order in ("ab", "ba") if outcomes[order]["value"] is None)
    metrics: dict[str, float] = {**(result or {}), "n_unparsed": n_unparsed}
    data = {
        "question_id": question.question_id, "category": question.category, "turn": turn,
        "prompt": prompts.pairwise(question, turn).name,
        "g1_winner": winners["ab"] or "error", "g2_winner": winners["ba"] or "error",
        "g1": {k: outcomes["ab"][k] for k in ("text", "reminder_text", "value")},
        "g2": {k: outcomes["ba"][k] for k in ("text", "reminder_text", "value")},
        "unparsed": result is None,
    }
    return ItemRow(item_id, metrics, data)
