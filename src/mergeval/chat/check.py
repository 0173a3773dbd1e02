"""MT-Bench in plans: the `mtbench` (single grading) and `pairwise` (A/B against a parent) check types.

Each plan entry becomes the chat engine's inputs (questions, GenerationConfig, judge, judge prompts), then

  run():     generate_answers + judge_single / judge_pairwise for every targeted model that can answer
             (local weights or an `openai:` endpoint); only what the store lacks is generated or judged;
  collect(): mtbench_scores / pairwise_summary from the store (no model is loaded, no judge is called).

What lands in the comparison:

| type       | benchmark                                   | per-item scores (paired tests)   | facts                        |
|------------|---------------------------------------------|----------------------------------|------------------------------|
| `mtbench`  | `mtbench`: MT-Bench average, 1-10 (FastChat | each question's mean turn score  | mtbench_turn1, mtbench_turn2 |
|            | show_result: mean of all valid turn scores) |                                  | mtbench_unparsed (count)     |
| `pairwise` | -                                           | -                                | win_rate, tie_rate,          |
|            |                                             |                                  | loss_rate, position_consistency |

Facts are only given for a model whose judgments are complete, so a gate never passes on part of the data.
An mtbench check and a pairwise check with the same questions and max_new_tokens share the stored answers.
The judge's API key is read from the environment variable the plan names; the plan, the store and the report
hold only that variable's name.
"""

from __future__ import annotations

import math
import re
import statistics
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from mergeval.chat.generation import GenerationConfig, generate_answers, stored_answers
from mergeval.chat.judges import HFJudge, Judge, OpenAIJudge, make_judge
from mergeval.chat.judging import judge_pairwise, judge_single, single_check
from mergeval.chat.prompts import JudgePrompts, load_judge_prompts
from mergeval.chat.questions import Question, load_questions
from mergeval.chat.scores import QuestionRatings, mtbench_scores, pairwise_summary
from mergeval.compare.registry import (
    BenchmarkInfo,
    CheckContext,
    CheckData,
    CheckType,
    Missing,
    PlanModel,
    Provides,
    ScoreData,
    metric_prefix,
    register_check,
)
from mergeval.errors import UserError
from mergeval.plan import CheckConfig, Plan

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# -- plan entries ----------------------------------------------------------------------------------------


def _base_dir(info: ValidationInfo) -> Path:
    return Path((info.context or {}).get("base_dir", "."))


def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


class JudgeSpec(BaseModel):
    """`judge:` of a chat check: an OpenAI-compatible endpoint (model + base_url) or a local model folder.

    A bare string is a reference: `openai:MODEL@URL` or a local model folder / hub id.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="the endpoint's model name, an `openai:MODEL@URL` reference, or a model folder")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. https://api.openai.com/v1")
    api_key_env: str | None = Field(None, description="NAME of the environment variable holding the API key")
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(2048, ge=1, description="new tokens per judgment")
    concurrency: int = Field(4, ge=1, description="judge calls at once (endpoints)")
    timeout: float = Field(120.0, gt=0, description="seconds per attempt (endpoints)")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"model": data} if isinstance(data, str) else data

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.match(name):
            # Never echo the value: it may be the key itself.
            raise ValueError(
                "api_key_env must be the NAME of an environment variable (e.g. OPENAI_API_KEY), never the key "
                "itself; export the key in that variable and put only its name in the plan"
            )
        return name

    @property
    def is_endpoint(self) -> bool:
        return self.base_url is not None or self.model.startswith("openai:")

    def build(self, plan: Plan) -> Judge:
        """The judge object (nothing is loaded or requested until it is asked something)."""
        if self.base_url is not None:
            return OpenAIJudge(self.model, self.base_url, api_key_env=self.api_key_env, temperature=self.temperature,
                               max_tokens=self.max_tokens, timeout=self.timeout, concurrency=self.concurrency)
        if self.model.startswith("openai:"):
            return make_judge(self.model, api_key_env=self.api_key_env, temperature=self.temperature,
                              max_tokens=self.max_tokens, timeout=self.timeout, concurrency=self.concurrency)
        local = plan.resolve_path(self.model)
        return HFJudge(str(local) if local.exists() else self.model, temperature=self.temperature,
                       max_new_tokens=self.max_tokens)


class _ChatCheck(CheckConfig):
    questions: str | None = Field(None, description="FastChat question.jsonl (default: the bundled 24 questions)")
    reference_answers: str | None = Field(
        None, description="FastChat reference_answer/*.jsonl (a file or its folder); default: embedded references"
    )
    limit: int | None = Field(None, ge=1, description="only the first N questions (smoke runs)")
    judge: JudgeSpec
    judge_prompts: str | None = Field(None, description="FastChat judge_prompts.jsonl (default: mergeval's)")
    max_new_tokens: int = Field(1024, ge=1, description="new tokens per answer turn (FastChat: 1024)")
    batch_size: int | None = Field(None, ge=1, description="questions per generation batch (default: the model's)")

    @field_validator("questions", "reference_answers", "judge_prompts")
    @classmethod
    def _file_exists(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path is not None and not _resolve(path, _base_dir(info)).exists():
            raise ValueError(
                f"{info.field_name} {path} does not exist (looked in {_resolve(path, _base_dir(info))}); point "
                f"it at your FastChat file, or leave `{info.field_name}` out for the bundled one"
            )
        return path


class MTBenchCheck(_ChatCheck):
    """`- type: mtbench`: MT-Bench single grading (1-10 per turn) of every targeted model's answers."""

    type: Literal["mtbench"] = "mtbench"
    repeats: int = Field(1, ge=1, description="judgments per turn (their spread measures the judge's noise)")
    models: Literal["all", "candidates"] | list[str] = Field(
        "all", description="which models to grade: all (default), candidates, or a list of names"
    )


class PairwiseCheck(_ChatCheck):
    """`- type: pairwise`: A/B judging of candidates against one opponent, both answer orders."""

    type: Literal["pairwise"] = "pairwise"
    opponent: str = Field(description="the plan model (a parent or baseline) the candidates are compared with")
    models: Literal["candidates"] | list[str] = Field(
        "candidates", description="the models compared with the opponent: candidates (default) or a list of names"
    )


ChatCheck = MTBenchCheck | PairwiseCheck


# -- plan entry -> engine inputs -------------------------------------------------------------------------


class _Inputs:
    """Questions, generation config, judge prompts and judge of a check (loaded once per run/collect)."""

    def __init__(self, check: ChatCheck, plan: Plan):
        self.check, self.plan = check, plan
        self.generation = GenerationConfig(max_new_tokens=check.max_new_tokens)

    @cached_property
    def questions(self) -> list[Question]:
        path = self.check.questions and self.plan.resolve_path(self.check.questions)
        refs = self.check.reference_answers and self.plan.resolve_path(self.check.reference_answers)
        questions = load_questions(path, reference_answers=refs)
        return questions[: self.check.limit] if self.check.limit else questions

    @cached_property
    def prompts(self) -> JudgePrompts:
        return load_judge_prompts(self.plan.resolve_path(self.check.judge_prompts) if self.check.judge_prompts
                                  else None)

    @cached_property
    def judge(self) -> Judge:
        return self.check.judge.build(self.plan)


def _progress(ctx: CheckContext):
    """The chat engine's progress hooks (start(label, total), advance, done) on the plan's TaskProgress."""
    if ctx.progress is None:
        return None
    task_progress = ctx.progress

    class _Adapter:
        def start(self, label: str, total: int) -> None:
            task_progress.start("mt-bench", label, total)

        def advance(self, n: int = 1) -> None:
            task_progress.advance(n)

        def done(self) -> None:
            task_progress.done()

    return _Adapter()


# -- names -----------------------------------------------------------------------------------------------

_BENCHMARKS = {"mtbench": ["mtbench"], "pairwise": []}
_FACTS = {
    "mtbench": ["mtbench_turn1", "mtbench_turn2", "mtbench_unparsed"],
    "pairwise": ["win_rate", "tie_rate", "loss_rate", "position_consistency"],
}


def _provides(check: ChatCheck, plan: Plan) -> Provides:
    names = {m.name for m in plan.models}
    listed = list(check.models) if isinstance(check.models, list) else []
    if isinstance(check, PairwiseCheck):
        listed.append(check.opponent)
    unknown = [n for n in listed if n not in names]
    if unknown:
        raise UserError(
            f"the {check.type} check names unknown model(s) {', '.join(unknown)}; use names from `models:`"
            + (", `all` or `candidates`" if check.type == "mtbench" else " (opponent: a parent or baseline)")
        )
    prefix = metric_prefix(check, plan)
    return Provides(benchmarks=[prefix + b for b in _BENCHMARKS[check.type]],
                    facts=[prefix + f for f in _FACTS[check.type]])


def _targets(check: ChatCheck, ctx: CheckContext) -> list[PlanModel]:
    targets = ctx.select(check.models)
    if isinstance(check, PairwiseCheck):
        targets = [m for m in targets if m.name != check.opponent]
    return targets


def _can_answer(m: PlanModel) -> bool:
    """Local weights or an endpoint: the chat engine can generate its answers."""
    return m.runnable or (m.ref.kind == "endpoint" and not m.from_store)


# -- run ---------------------------------------------------------------------------------------------------


def _answer(ctx: CheckContext, inputs: _Inputs, m: PlanModel, progress) -> bool:
    """Generate m's missing answers; False (with a message) when it cannot answer and has none stored."""
    have = stored_answers(ctx.store, m.ref, inputs.questions, inputs.generation)
    if len(have) == len(inputs.questions):
        return True
    if not _can_answer(m):
        ctx.say(f"{inputs.check.label}: {m.name} has no local weights or endpoint here, skipped")
        return False
    generate_answers(ctx.store, m.ref, inputs.questions, generation=inputs.generation,
                     batch_size=inputs.check.batch_size, concurrency=inputs.check.judge.concurrency,
                     progress=progress)
    return True


def _run_mtbench(check: MTBenchCheck, ctx: CheckContext) -> None:
    inputs, progress = _Inputs(check, ctx.plan), _progress(ctx)
    for m in _targets(check, ctx):
        if _answer(ctx, inputs, m, progress):
            judge_single(ctx.store, m.ref, inputs.questions, inputs.judge, generation=inputs.generation,
                         prompts=inputs.prompts, repeats=check.repeats, progress=progress)


def _run_pairwise(check: PairwiseCheck, ctx: CheckContext) -> None:
    inputs, progress = _Inputs(check, ctx.plan), _progress(ctx)
    opponent = ctx.model(check.opponent)
    targets = _targets(check, ctx)
    if not targets or not _answer(ctx, inputs, opponent, progress):
        return
    for m in targets:
        if _answer(ctx, inputs, m, progress):
            judge_pairwise(ctx.store, m.ref, opponent.ref, inputs.questions, inputs.judge,
                           generation=inputs.generation, prompts=inputs.prompts, progress=progress)


# -- collect -----------------------------------------------------------------------------------------------


def _why_missing(ctx: CheckContext, inputs: _Inputs, m: PlanModel, judged: int, what: str) -> str:
    n = len(inputs.questions)
    answered = len(stored_answers(ctx.store, m.ref, inputs.questions, inputs.generation))
    if answered == 0:
        if not _can_answer(m):
            return "no stored answers, and no local weights or endpoint to generate them"
        return "not evaluated yet (no stored answers)"
    if answered < n:
        return f"incomplete: answers stored for {answered} of {n} questions"
    return f"incomplete: {what} stored for {judged} of {n} questions"


def _question_averages(ctx: CheckContext, inputs: _Inputs, m: PlanModel, repeats: int) -> dict[str, float]:
    """question item id -> the mean of its scored turns (the per-item scores the paired statistics use)."""
    spec = single_check(inputs.questions, inputs.judge, generation=inputs.generation, prompts=inputs.prompts,
                        repeats=repeats)
    by_id = {q.item_id: q for q in inputs.questions}
    out = {}
    for item in ctx.store.items(m.fingerprint, spec.hash, with_data=True):
        if item.item_id in by_id:
            ratings = {int(t): list(info["ratings"]) for t, info in item.data["turns"].items()}
            row = QuestionRatings(item.item_id, by_id[item.item_id].category, ratings)
            turns = [s for s in (row.turn_score(1), row.turn_score(2)) if s is not None]
            if turns:
                out[item.item_id] = statistics.fmean(turns)
    return out


def _collect_mtbench(check: MTBenchCheck, ctx: CheckContext) -> CheckData:
    inputs, prefix = _Inputs(check, ctx.plan), metric_prefix(check, ctx.plan)
    data = CheckData(check=check.label, type=check.type)
    data.benchmarks.append(BenchmarkInfo(name="mtbench", display="MT-Bench", metric_key="average",
                                         higher_is_better=True, kind="mtbench", scale=1.0, in_average=False,
                                         check=check.label))
    n_target = len(inputs.questions)
    per_model: dict[str, Any] = {}
    for m in _targets(check, ctx):
        s = mtbench_scores(ctx.store, m.ref, inputs.questions, inputs.judge, generation=inputs.generation,
                           prompts=inputs.prompts, repeats=check.repeats)
        items = _question_averages(ctx, inputs, m, check.repeats)
        stderr = statistics.stdev(items.values()) / math.sqrt(len(items)) if len(items) >= 2 else None
        data.scores.setdefault(m.name, {})["mtbench"] = ScoreData(
            value=s.average.mean if s.average else None, stderr=stderr, n=s.n_questions, n_target=n_target,
            items=items,
        )
        if s.n_questions < n_target:
            detail = _why_missing(ctx, inputs, m, s.n_questions, "judgments")
            data.missing.append(Missing(m.name, check.label, "mtbench", detail))
        elif not (s.turn1 and s.turn2):
            detail = (f"the judge gave no usable rating: {s.n_unparsed} of {s.n_judgments} judgments unparsed "
                      "(see the stored judgment texts; try another judge or judge_prompts)")
            data.missing.append(Missing(m.name, check.label, "mtbench", detail))
        else:
            data.facts.setdefault(m.name, {}).update({
                prefix + "mtbench_turn1": s.turn1.mean,
                prefix + "mtbench_turn2": s.turn2.mean,
                prefix + "mtbench_unparsed": float(s.n_unparsed),
            })
        if s.n_questions:
            per_model[m.name] = {
                "turn1": s.turn1.mean if s.turn1 else None, "turn2": s.turn2.mean if s.turn2 else None,
                "average": s.average.mean if s.average else None,
                "average_ci": [s.average.ci_low, s.average.ci_high] if s.average else None,
                "n_questions": s.n_questions, "n_unparsed": s.n_unparsed, "n_unscored_turns": s.n_unscored_turns,
                "judge_sd": s.judge_sd,
                "per_category": {c: v.average.mean if v.average else None for c, v in s.per_category.items()},
            }
    data.provenance = {
        "config": check.model_dump(mode="json"),  # the key's variable name at most, never its value
        "judge": inputs.judge.identity(),
        "n_questions": n_target,
        "paired_on": "each question's mean turn score (the value is FastChat's mean of all valid turn scores)",
        "models": per_model,
    }
    return data


def _collect_pairwise(check: PairwiseCheck, ctx: CheckContext) -> CheckData:
    inputs, prefix = _Inputs(check, ctx.plan), metric_prefix(check, ctx.plan)
    data = CheckData(check=check.label, type=check.type)
    opponent = ctx.model(check.opponent)
    n_games = 2 * len(inputs.questions)
    per_model: dict[str, Any] = {}
    for m in _targets(check, ctx):
        r = pairwise_summary(ctx.store, m.ref, opponent.ref, inputs.questions, inputs.judge,
                             generation=inputs.generation, prompts=inputs.prompts)
        judged = n_games - r.n_missing
        if r.n_missing:
            n = len(inputs.questions)
            if len(stored_answers(ctx.store, opponent.ref, inputs.questions, inputs.generation)) < n:
                detail = f"opponent {opponent.name}: {_why_missing(ctx, inputs, opponent, 0, 'answers')}"
            else:
                detail = _why_missing(ctx, inputs, m, judged // 2, "A/B games")
            data.missing.append(Missing(m.name, check.label, None, f"{detail} (vs {opponent.name})"))
        elif not r.n_games:
            detail = (f"the judge gave no verdict in any of the {r.n_unparsed} A/B games (vs {opponent.name}); "
                      "see the stored judgment texts, try another judge or judge_prompts")
            data.missing.append(Missing(m.name, check.label, None, detail))
        else:
            data.facts.setdefault(m.name, {}).update({
                prefix + "win_rate": r.win_rate,
                prefix + "tie_rate": r.ties / r.n_games,
                prefix + "loss_rate": r.loss_rate,
                prefix + "position_consistency": r.consistency_rate,
            })
        if judged:
            per_model[m.name] = {
                "opponent": opponent.name, "wins": r.wins, "ties": r.ties, "losses": r.losses,
                "n_games": r.n_games, "n_unparsed": r.n_unparsed, "win_rate": r.win_rate,
                "win_rate_adjusted": r.win_rate_adjusted.mean if r.win_rate_adjusted else None,
                "win_rate_adjusted_ci": ([r.win_rate_adjusted.ci_low, r.win_rate_adjusted.ci_high]
                                         if r.win_rate_adjusted else None),
                "position_consistency": r.consistency_rate,
            }
    data.provenance = {
        "config": check.model_dump(mode="json"),
        "judge": inputs.judge.identity(),
        "rule": "a win only when both answer orders agree; disagreeing orders are a tie (FastChat)",
        "models": per_model,
    }
    return data


# -- registration ------------------------------------------------------------------------------------------

register_check(
    CheckType(
        name="mtbench",
        config=MTBenchCheck,
        run=_run_mtbench,
        collect=_collect_mtbench,
        provides=_provides,
        description="MT-Bench: two-turn questions graded 1-10 by an LLM judge (endpoint or local model)",
        metrics=("mtbench", "mtbench_turn1", "mtbench_turn2", "mtbench_unparsed"),
    )
)
register_check(
    CheckType(
        name="pairwise",
        config=PairwiseCheck,
        run=_run_pairwise,
        collect=_collect_pairwise,
        provides=_provides,
        description="MT-Bench A/B: candidates vs a parent or baseline, both orders, win/tie/loss rates",
        metrics=("win_rate", "tie_rate", "loss_rate", "position_consistency"),
    )
)

__all__ = ["JudgeSpec", "MTBenchCheck", "PairwiseCheck"]
