"""`- type: pairwise`: MT-Bench A/B, candidates against one opponent (a parent or baseline), both answer orders.

Two stages through the runner: the answers the store lacks (of the opponent and of each candidate; an
`mtbench` check with the same questions and max_new_tokens shares them), then the A/B judgments the store
lacks: every (question, turn) is judged twice, the candidate's answer shown first and then second. A game is
a win only when both orders agree; disagreeing orders are a tie (FastChat's rule).

What lands in the comparison, per candidate: the facts win_rate, tie_rate, loss_rate (fractions of the games
with a verdict in both orders) and position_consistency (the share of games whose two orders agree: the
judge's own consistency). Facts are only given when the games are complete. A second pairwise check (another
opponent) prefixes its facts with its label: `vs-b.win_rate`.

The library calls on a store are here too: judge_pairwise, pairwise_summary, export_fastchat_judgments.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from mergeval.checks._chat import (
    PAIR_KIND,
    ChatCheck,
    ChatConfig,
    ChatInputs,
    JudgingSummary,
    answers_model,
    answers_or_fail,
    judge_missing,
    judging_check,
    judging_task,
    stored_answers,
    why_missing,
)
from mergeval.checks.mtbench import export_single_judgments
from mergeval.core.check import MetricSpec, Task
from mergeval.core.context import CheckContext, PlanModel
from mergeval.core.progress import Progress
from mergeval.core.registry import check
from mergeval.core.results import CheckData, Missing
from mergeval.core.runner import WorkUnit
from mergeval.engines.chat.fastchat import fastchat_model_name, write_fastchat_pair_judgments
from mergeval.engines.chat.generation import GenerationConfig
from mergeval.engines.chat.judges import Judge
from mergeval.engines.chat.judging import PairwiseGrading, pair_item_id
from mergeval.engines.chat.parsing import DEFAULT_PARSER
from mergeval.engines.chat.prompts import JudgePrompts, check_references, load_judge_prompts
from mergeval.engines.chat.questions import Question
from mergeval.engines.chat.scores import DEFAULT_N_BOOT, PairwiseResult, games, result_from_games
from mergeval.errors import UserError
from mergeval.models import ModelRef
from mergeval.store import Store


class PairwiseConfig(ChatConfig):
    """`- type: pairwise`: A/B judging of candidates against one opponent, both answer orders."""

    type: Literal["pairwise"] = "pairwise"
    opponent: str = Field(description="the plan model (a parent or baseline) the candidates are compared with")
    models: Literal["candidates"] | list[str] = Field(
        "candidates", description="the models compared with the opponent: candidates (default) or a list of names"
    )


_RATE = {"kind": "fact", "scale": 1.0, "range": (0.0, 1.0), "unit": "fraction"}


def pairwise_metrics(label: str = "pairwise", prefix: str = "") -> list[MetricSpec]:
    """The facts a pairwise check provides per candidate (with a later check's label prefix)."""
    return [
        MetricSpec(prefix + "win_rate", "Win rate", check=label, **_RATE,
                   description="games won: both answer orders prefer the candidate"),
        MetricSpec(prefix + "tie_rate", "Tie rate", check=label, higher_is_better=False, **_RATE,
                   description="games tied: a tie verdict, or orders that disagree"),
        MetricSpec(prefix + "loss_rate", "Loss rate", check=label, higher_is_better=False, **_RATE,
                   description="games lost: both answer orders prefer the opponent"),
        MetricSpec(prefix + "position_consistency", "Position consistency", check=label, **_RATE,
                   description="games whose two answer orders agree (the judge's consistency)"),
    ]


@check("pairwise")
class Pairwise(ChatCheck):
    Config = PairwiseConfig
    description = "MT-Bench A/B: candidates vs a parent or baseline, both orders, win/tie/loss rates"
    metric_specs = staticmethod(pairwise_metrics)
    known_metrics = ("win_rate", "tie_rate", "loss_rate", "position_consistency")
    models_hint = " (opponent: a parent or baseline)"

    def named_models(self, config: PairwiseConfig) -> list[str]:
        return [config.opponent]

    def targets(self, config: PairwiseConfig, ctx: CheckContext, *, strict: bool = False) -> list[PlanModel]:
        return [m for m in super().targets(config, ctx, strict=strict) if m.name != config.opponent]

    def opponent(self, config: PairwiseConfig, ctx: CheckContext, *, strict: bool = False) -> PlanModel:
        return answers_model(config, ctx, ctx.model(config.opponent), strict=strict)

    def plan_models(self, config: PairwiseConfig, ctx: CheckContext) -> list[PlanModel]:
        """The opponent (its answers) and the candidates (their answers, then their games)."""
        targets = self.targets(config, ctx, strict=True)
        return [self.opponent(config, ctx, strict=True), *targets] if targets else []

    def judging_tasks(self, config: PairwiseConfig, ctx: CheckContext, model: PlanModel,
                      inputs: ChatInputs) -> list[Task]:
        if model.name == config.opponent:
            return []
        opponent = self.opponent(config, ctx)
        answers_b = stored_answers(ctx.store, opponent.ref, inputs.questions, inputs.generation)
        answers = stored_answers(ctx.store, model.ref, inputs.questions, inputs.generation)
        questions = [q for q in inputs.questions if q.item_id in answers and q.item_id in answers_b]
        if not questions:
            return []
        return [pair_task(ctx.store, model.ref, opponent.ref, questions, inputs.judge, (answers, answers_b),
                          generation=inputs.generation, prompts=inputs.prompts, parser=config.parser)]

    def check_data(self, config: PairwiseConfig, prefix: str) -> CheckData:
        return CheckData(check=config.label, type=config.type, fact_specs=pairwise_metrics(config.label, prefix))

    def collect_model(self, data: CheckData, ctx: CheckContext, inputs: ChatInputs,
                      m: PlanModel) -> dict[str, Any] | None:
        opponent = self.opponent(inputs.config, ctx)
        r = pairwise_summary(ctx.store, m.ref, opponent.ref, inputs.questions, inputs.judge,
                             generation=inputs.generation, prompts=inputs.prompts, parser=inputs.config.parser)
        detail = _missing(ctx, inputs, (m, opponent), r)
        if detail is not None:
            data.missing.append(Missing(m.name, data.check, None, detail))
        else:
            values = (r.win_rate, r.ties / r.n_games, r.loss_rate, r.consistency_rate)
            data.facts.setdefault(m.name, {}).update(zip([spec.name for spec in data.fact_specs], values))
        return _summary(r, opponent.name) if r.n_games + r.n_unparsed else None

    def notes(self, inputs: ChatInputs) -> dict[str, Any]:
        return {"rule": "a win only when both answer orders agree; disagreeing orders are a tie (FastChat)"}


def _missing(ctx: CheckContext, inputs: ChatInputs, pair: tuple[PlanModel, PlanModel], r: PairwiseResult) -> str | None:
    """Why the candidate has no facts: games or answers (its own, the opponent's) missing, or no verdict at all."""
    m, opponent = pair
    if r.n_missing:
        n = len(inputs.questions)
        if len(stored_answers(ctx.store, opponent.ref, inputs.questions, inputs.generation)) < n:
            detail = f"opponent {opponent.name}: {why_missing(ctx.store, inputs, opponent, 0, 'answers')}"
        else:
            detail = why_missing(ctx.store, inputs, m, (2 * n - r.n_missing) // 2, "A/B games")
        return f"{detail} (vs {opponent.name})"
    if not r.n_games:
        return (f"the judge gave no verdict in any of the {r.n_unparsed} A/B games (vs {opponent.name}); "
                "see the stored judgment texts, try another judge or judge_prompts")
    return None


def _summary(r: PairwiseResult, opponent: str) -> dict[str, Any]:
    adjusted = r.win_rate_adjusted
    return {
        "opponent": opponent, "wins": r.wins, "ties": r.ties, "losses": r.losses, "n_games": r.n_games,
        "n_unparsed": r.n_unparsed, "win_rate": r.win_rate, "win_rate_adjusted": adjusted.mean if adjusted else None,
        "win_rate_adjusted_ci": [adjusted.ci_low, adjusted.ci_high] if adjusted else None,
        "position_consistency": r.consistency_rate,
    }


# -- identities -------------------------------------------------------------------------------------------------------


def pair_check(questions: Sequence[Question], judge: Judge, opponent: ModelRef, *,
               generation: GenerationConfig | None = None, prompts: JudgePrompts | None = None,
               parser: str = DEFAULT_PARSER) -> Task:
    """The identity under which A/B verdicts of a model against `opponent` are stored (a Task of every game)."""
    return judging_check(PAIR_KIND, questions, judge, [pair_item_id(q, t) for q in questions for t in (1, 2)],
                         generation=generation, prompts=prompts, parser=parser,
                         extra={"opponent": opponent.fingerprint}, suffix=f":vs:{opponent.name}",
                         provenance={"mode": "pairwise", "opponent": opponent.name})


def pair_task(store: Store, ref: ModelRef, opponent: ModelRef, questions: Sequence[Question], judge: Judge,
              answers: tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]], *,
              generation: GenerationConfig | None, prompts: JudgePrompts, parser: str) -> Task:
    """The runnable A/B task of `ref`'s answers against `opponent`'s (`answers`: theirs, the opponent's)."""
    base = pair_check(questions, judge, opponent, generation=generation, prompts=prompts, parser=parser)
    grading = PairwiseGrading(questions, prompts, answers_b=answers[1], parser=parser)
    return judging_task(store, ref, base, grading, judge, answers[0])


# -- library calls on a store ---------------------------------------------------------------------------------------


def judge_pairwise(store: Store, ref_a: ModelRef, ref_b: ModelRef, questions: Sequence[Question], judge: Judge, *,
                   generation: GenerationConfig | None = None, prompts: JudgePrompts | None = None,
                   parser: str = DEFAULT_PARSER, progress: Progress | None = None) -> JudgingSummary:
    """Compare `ref_a`'s answers with `ref_b`'s, each turn in both orders (A first, then B first).

    Stored under `ref_a` (the candidate) with `ref_b` (a parent or baseline) in the check. A game is a win for
    A only when both orders agree that A is better; disagreeing orders are a tie (FastChat's rule).
    """
    if ref_a.fingerprint == ref_b.fingerprint:
        raise UserError(f"{ref_a.name} and {ref_b.name} are the same model (same fingerprint); compare two models.")
    prompts = prompts or load_judge_prompts()
    questions = list(questions)
    base = pair_check(questions, judge, ref_b, generation=generation, prompts=prompts, parser=parser)
    check_references(questions)

    def task() -> Task:
        answers = tuple(answers_or_fail(store, ref, questions, generation) for ref in (ref_a, ref_b))
        return pair_task(store, ref_a, ref_b, questions, judge, answers, generation=generation, prompts=prompts,
                         parser=parser)

    generation = generation or GenerationConfig()
    config = PairwiseConfig(opponent=ref_b.name, max_new_tokens=generation.max_new_tokens,
                            chat_template=generation.chat_template, parser=parser)
    return judge_missing(store, WorkUnit(ref_a, "pairwise", config, "judgments", base, base.item_ids), task, progress)


def pairwise_summary(store: Store, ref_a: ModelRef, ref_b: ModelRef, questions: Sequence[Question], judge: Judge, *,
                     generation: GenerationConfig | None = None, prompts: JudgePrompts | None = None,
                     parser: str = DEFAULT_PARSER, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                     alpha: float = 0.05) -> PairwiseResult:
    """Win / tie / loss of `ref_a` against `ref_b` from the stored A/B judgments (nothing is judged here)."""
    task = pair_check(questions, judge, ref_b, generation=generation, prompts=prompts, parser=parser)
    played = games(store.items(ref_a.fingerprint, task.hash), questions)
    return result_from_games(played, model_a=ref_a.name, model_b=ref_b.name, judge=judge.name,
                             n_missing=len(set(task.item_ids)) - len(played), n_boot=n_boot, seed=seed, alpha=alpha)


def export_fastchat_judgments(
    store: Store, ref: ModelRef, questions: Sequence[Question], judge: Judge, dest: str | os.PathLike, *,
    opponent: ModelRef | None = None, generation: GenerationConfig | None = None,
    prompts: JudgePrompts | None = None, repeats: int = 1, parser: str = DEFAULT_PARSER,
) -> Path:
    """Write stored judgments in FastChat's format: single grades, or A/B games when `opponent` is given.

    Rows of other models already in the file are kept (FastChat keeps all models of a judge in one file).
    Each repeat of a single grade is one row; a judgment without a rating is written with score -1. Models
    are named as export_fastchat_answers names their files (fastchat_model_name).
    """
    if opponent is None:
        return export_single_judgments(store, ref, questions, judge, dest, generation=generation, prompts=prompts,
                                       repeats=repeats, parser=parser)
    prompts = prompts or load_judge_prompts()
    task = pair_check(questions, judge, opponent, generation=generation, prompts=prompts, parser=parser)
    answers = (stored_answers(store, ref, questions, generation), stored_answers(store, opponent, questions, generation))
    return write_fastchat_pair_judgments(
        store.items(ref.fingerprint, task.hash, with_data=True), questions, answers, prompts, dest,
        models=(fastchat_model_name(ref.name), fastchat_model_name(opponent.name)), judge=judge.name)


__all__ = [
    "Pairwise",
    "PairwiseConfig",
    "export_fastchat_judgments",
    "judge_pairwise",
    "pair_check",
    "pairwise_metrics",
    "pairwise_summary",
]
