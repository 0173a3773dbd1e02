"""MT-Bench scores and A/B results from judged items: pure functions of the stored rows.

Single grading (as FastChat's show_result): a turn's score is the judge's rating (the mean of the K ratings
when the judge repeats); turn 1 and turn 2 are the means over questions; the *average* is the mean of all
valid turn scores together (so a question with one unparsed turn counts once, not twice). Judgments with no
rating are left out of the means, exactly as FastChat drops its score -1 rows, but here they are counted
and reported (`n_unparsed`).

Uncertainty: percentile bootstrap CIs that resample *questions* (both turns of a question move together).
With repeats, `judge_sd` is the judge's own noise: the pooled standard deviation of repeated ratings of the
same answer, and `repeat_averages` the MT-Bench average each repeat alone would have given.

Pairwise: a game (question, turn) is a win only when both orders agree; win rate = wins / games,
adjusted win rate = (wins + ties / 2) / games, position-consistency = games whose two orders agree / games.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mergeval.engines.chat.judging import pair_item_id
from mergeval.engines.chat.questions import CATEGORIES, Question

DEFAULT_N_BOOT = 2000


@dataclass(frozen=True)
class ScoreCI:
    """A mean with its percentile bootstrap CI over questions; `n` = scores behind the mean."""

    mean: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class CategoryScores:
    turn1: float | None
    turn2: float | None
    average: ScoreCI | None
    n_questions: int


@dataclass(frozen=True)
class QuestionRatings:
    """One question's ratings: turn -> the K repeats' ratings (None = unparsed)."""

    item_id: str
    category: str
    ratings: dict[int, list[float | None]]

    def turn_score(self, turn: int) -> float | None:
        valid = [r for r in self.ratings.get(turn, []) if r is not None]
        return statistics.fmean(valid) if valid else None


@dataclass(frozen=True)
class MTBenchScores:
    model: str
    judge: str
    turn1: ScoreCI | None
    turn2: ScoreCI | None
    average: ScoreCI | None
    per_category: dict[str, CategoryScores]
    n_questions: int  # questions with stored judgments
    n_missing: int  # requested questions not judged yet
    n_judgments: int  # ratings asked for (questions x turns x repeats)
    n_unparsed: int  # judgments that gave no rating even after the format reminder
    n_unscored_turns: int  # turns with no rating in any repeat: left out of the means
    repeats: int
    judge_sd: float | None = None  # pooled SD of repeated ratings of the same answer (repeats > 1)
    repeat_averages: tuple[float, ...] = field(default_factory=tuple)
    # From a FastChat judgment file (mtbench_scores_from_fastchat) only:
    n_duplicate_rows: int = 0  # exact copies of another row (same question, turn, judge, judgment): not repeats
    fastchat: dict[str, float] | None = None  # what FastChat's show_result prints for the file (turn1/turn2/average)
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairwiseResult:
    model_a: str
    model_b: str
    judge: str
    wins: int  # games model_a won (both orders agree)
    ties: int
    losses: int
    n_games: int  # games with a verdict in both orders
    n_unparsed: int  # games left out because an order gave no verdict even after the reminder
    n_missing: int  # requested games not judged yet
    consistency_rate: float | None  # share of games whose two orders agree (the judge's position consistency)
    win_rate: float | None  # wins / games (FastChat's win_rate)
    loss_rate: float | None
    win_rate_adjusted: ScoreCI | None  # (wins + ties / 2) / games, bootstrap CI over questions
    per_turn: dict[int, dict[str, int]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- bootstrap ---------------------------------------------------------------------------------------------------


def _bootstrap_ratio(sums: np.ndarray, counts: np.ndarray, *, n_boot: int, seed: int,
                     alpha: float) -> ScoreCI | None:
    """sum(sums) / sum(counts) with a percentile CI from resampling the rows (questions) with replacement."""
    keep = counts > 0
    if not keep.any():
        return None
    sums, counts = sums[keep], counts[keep]
    estimate = float(sums.sum() / counts.sum())
    rng = np.random.default_rng(seed)
    n = len(sums)
    ratios = np.empty(n_boot)
    chunk = max(1, (1 << 20) // n)  # bounded memory whatever n is
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        ratios[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    low, high = np.percentile(ratios, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return ScoreCI(estimate, float(low), float(high), int(counts.sum()))


def _turn_arrays(rows: Sequence[QuestionRatings], turns: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    sums, counts = np.zeros(len(rows)), np.zeros(len(rows))
    for i, row in enumerate(rows):
        for turn in turns:
            score = row.turn_score(turn)
            if score is not None:
                sums[i] += score
                counts[i] += 1
    return sums, counts


# -- single grading --------------------------------------------------------------------------------------------


def _per_category(rows: Sequence[QuestionRatings], boot: dict[str, Any]) -> dict[str, CategoryScores]:
    """Turn 1, turn 2 and average of each category, in MT-Bench's category order (others after, sorted)."""
    categories = [c for c in CATEGORIES if any(r.category == c for r in rows)]
    categories += sorted({r.category for r in rows} - set(CATEGORIES))
    out = {}
    for category in categories:
        subset = [r for r in rows if r.category == category]
        t1 = _bootstrap_ratio(*_turn_arrays(subset, [1]), **boot)
        t2 = _bootstrap_ratio(*_turn_arrays(subset, [2]), **boot)
        out[category] = CategoryScores(
            turn1=t1.mean if t1 else None, turn2=t2.mean if t2 else None,
            average=_bootstrap_ratio(*_turn_arrays(subset, [1, 2]), **boot), n_questions=len(subset),
        )
    return out


def _judge_sd(rows: Sequence[QuestionRatings]) -> float | None:
    """The pooled SD of repeated ratings of the same answer (None without repeats)."""
    variances = [statistics.variance(valid) for row in rows for turn in row.ratings.values()
                 for valid in [[r for r in turn if r is not None]] if len(valid) >= 2]
    return math.sqrt(statistics.fmean(variances)) if variances else None


def _repeat_averages(rows: Sequence[QuestionRatings], repeats: int) -> tuple[float, ...]:
    """The average each repeat alone would give (empty without repeats)."""
    out = []
    for k in range(repeats if repeats > 1 else 0):
        values = [turn[k] for row in rows for turn in row.ratings.values() if len(turn) > k and turn[k] is not None]
        if values:
            out.append(statistics.fmean(values))
    return tuple(out)


def scores_from_ratings(
    rows: Sequence[QuestionRatings], *, model: str, judge: str, repeats: int = 1, n_missing: int = 0,
    n_boot: int = DEFAULT_N_BOOT, seed: int = 0, alpha: float = 0.05,
) -> MTBenchScores:
    """MT-Bench scores from per-question ratings (`question_ratings` of the stored rows)."""
    rows = sorted(rows, key=lambda r: r.item_id)  # results depend on the data only, not on row order
    boot = {"n_boot": n_boot, "seed": seed, "alpha": alpha}
    all_ratings = [r for row in rows for turn in row.ratings.values() for r in turn]
    return MTBenchScores(
        model=model, judge=judge,
        turn1=_bootstrap_ratio(*_turn_arrays(rows, [1]), **boot),
        turn2=_bootstrap_ratio(*_turn_arrays(rows, [2]), **boot),
        average=_bootstrap_ratio(*_turn_arrays(rows, [1, 2]), **boot),
        per_category=_per_category(rows, boot),
        n_questions=len(rows), n_missing=n_missing, n_judgments=len(all_ratings),
        n_unparsed=sum(1 for r in all_ratings if r is None),
        n_unscored_turns=sum(1 for row in rows for turn in row.ratings if row.turn_score(turn) is None),
        repeats=repeats, judge_sd=_judge_sd(rows), repeat_averages=_repeat_averages(rows, repeats),
    )


def question_ratings(items: Iterable[Any], questions: Sequence[Question]) -> list[QuestionRatings]:
    """The ratings of the single-grading rows `items` (stored ItemRows) of `questions`; others are ignored."""
    by_id = {q.item_id: q for q in questions}
    return [QuestionRatings(item.item_id, by_id[item.item_id].category,
                            {int(turn): list(info["ratings"]) for turn, info in item.data["turns"].items()})
            for item in items if item.item_id in by_id]


# -- pairwise --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Game:
    """One pairwise game's outcome for model a (None = unparsed)."""

    question: str
    turn: int
    outcome: dict[str, int] | None


def result_from_games(
    games: Sequence[Game], *, model_a: str, model_b: str, judge: str, n_missing: int = 0,
    n_boot: int = DEFAULT_N_BOOT, seed: int = 0, alpha: float = 0.05,
) -> PairwiseResult:
    scored = [g for g in games if g.outcome is not None]
    wins = sum(g.outcome["win"] for g in scored)
    ties = sum(g.outcome["tie"] for g in scored)
    losses = sum(g.outcome["loss"] for g in scored)
    n = len(scored)
    per_turn: dict[int, dict[str, int]] = {}
    for g in scored:
        counts = per_turn.setdefault(g.turn, {"win": 0, "tie": 0, "loss": 0})
        for key in counts:
            counts[key] += g.outcome[key]
    # Bootstrap over questions: both games of a question are resampled together.
    questions = sorted({g.question for g in scored})
    position = {q: i for i, q in enumerate(questions)}
    points, counts = np.zeros(len(questions)), np.zeros(len(questions))
    for g in scored:
        points[position[g.question]] += g.outcome["win"] + 0.5 * g.outcome["tie"]
        counts[position[g.question]] += 1
    return PairwiseResult(
        model_a=model_a, model_b=model_b, judge=judge, wins=wins, ties=ties, losses=losses, n_games=n,
        n_unparsed=len(games) - n, n_missing=n_missing,
        consistency_rate=sum(g.outcome["consistent"] for g in scored) / n if n else None,
        win_rate=wins / n if n else None, loss_rate=losses / n if n else None,
        win_rate_adjusted=_bootstrap_ratio(points, counts, n_boot=n_boot, seed=seed, alpha=alpha),
        per_turn=dict(sorted(per_turn.items())),
    )


def games(items: Iterable[Any], questions: Sequence[Question]) -> list[Game]:
    """The games of the pairwise rows `items` (stored ItemRows) of `questions`; others are ignored."""
    wanted = {pair_item_id(q, t): (q, t) for q in questions for t in (1, 2)}
    out = []
    for item in items:
        if item.item_id in wanted:
            question, turn = wanted[item.item_id]
            outcome = None if "win" not in item.metrics else {
                k: int(item.metrics[k]) for k in ("win", "tie", "loss", "consistent")}
            out.append(Game(question.item_id, turn, outcome))
    return out
