"""What the MT-Bench check types (`mtbench`: single grading; `pairwise`: A/B) share: the options of a plan
entry, the identities results are stored under, the answers stage, the judging stage's work units, and the
library calls that work on a store (generate_answers, stored_answers, FastChat answer files in and out).

Three stored identities (a check row each; see docs/mt-bench.md):
  mtbench-answers  a model's answers to a question set under one generation config; item = question id
  mtbench-single   1-10 grades of those answers by one judge + prompt set + references; item = question id
  mtbench-pair     A/B verdicts of those answers against one opponent model; item = "<question id>:t<turn>"
A judging identity names the answers identity it grades, so changing max_new_tokens re-generates *and*
re-judges, while changing only the judge re-judges the answers already stored. Each identity is the dict
`{"kind": <kind>, "config": <config>}`: its `content_hash` is the check hash and it is what the store keeps.

Both check types run in two stages: "answers" (generate the answers the store lacks, or take them from a
FastChat answer file), then "judgments". A judging task carries everything its engine needs (the questions,
prompts, the judge's spec, the stored answers and the cached judge verdicts), so it runs without the store,
in this process or another; the verdicts it makes come back as cache entries of its batches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from mergeval.core.check import Batch, Check, CheckConfig, MetricSpec, Task, metric_prefix, must_exist
from mergeval.core.context import CheckContext, PlanModel, RunEnv
from mergeval.core.progress import Progress
from mergeval.core.results import CheckData
from mergeval.core.runner import Runner, RunSummary, WorkUnit
from mergeval.engines.chat.fastchat import answer_records, fastchat_answers_ref
from mergeval.engines.chat.generation import (
    Answer,
    Answerer,
    GenerationConfig,
    LocalAnswerer,
    answer_all,
    imported_answers,
    make_answerer,
)
from mergeval.engines.chat.judges import (
    HFJudge,
    Judge,
    OpenAIJudge,
    check_judge_reference,
    judge_from_spec,
    make_judge,
)
from mergeval.engines.chat.judging import Grading, Judging, grading_from_dict
from mergeval.engines.chat.parsing import check_parser
from mergeval.engines.chat.prompts import JudgePrompts, check_references, load_judge_prompts
from mergeval.engines.chat.questions import Question, check_question_set, load_questions, reference_source_of
from mergeval.errors import UserError
from mergeval.models import ModelRef, check_base_url, url_without_userinfo
from mergeval.store import ItemRow, Store

ANSWERS_KIND = "mtbench-answers"
SINGLE_KIND = "mtbench-single"
PAIR_KIND = "mtbench-pair"
JUDGMENT_CACHE = "mtbench-judgment"  # store cache namespace: one entry per judge call (with its reminder retry)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def identity(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The identity of a stored check: hashed into its check hash and kept as its config."""
    return {"kind": kind, "config": dict(config)}


def set_name(set_id: str) -> str:
    """'mergeval-v1:ab12..' -> 'mergeval-v1' (for display names of checks)."""
    return set_id.split(":", 1)[0]


# -- plan entries --------------------------------------------------------------------------------------------------


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

    @field_validator("base_url")
    @classmethod
    def _a_url_without_credentials(cls, url: str | None) -> str | None:
        if url is not None:
            try:
                check_base_url(url, "judge")
            except UserError as exc:  # the message never shows the credentials
                raise ValueError(str(exc).rstrip(".")) from None
        return url

    @model_validator(mode="after")
    def _a_valid_reference(self) -> JudgeSpec:
        if self.base_url is None and "://" in self.model and not self.model.startswith("openai:"):
            raise ValueError(
                f"the judge {url_without_userinfo(self.model)!r} looks like a URL; write "
                "{model: MODEL, base_url: URL} or openai:MODEL@URL (a local judge is a model folder)"
            )
        if self.base_url is None:
            try:
                check_judge_reference(self.model)
            except UserError as exc:
                raise ValueError(str(exc).rstrip(".")) from None
        return self

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

    def build(self, resolve_path: Callable[[str], Path]) -> Judge:
        """The judge object (nothing is loaded or requested until it is asked something)."""
        if self.base_url is not None:
            return OpenAIJudge(self.model, self.base_url, api_key_env=self.api_key_env, temperature=self.temperature,
                               max_tokens=self.max_tokens, timeout=self.timeout, concurrency=self.concurrency)
        if self.model.startswith("openai:"):
            return make_judge(self.model, api_key_env=self.api_key_env, temperature=self.temperature,
                              max_tokens=self.max_tokens, timeout=self.timeout, concurrency=self.concurrency)
        local = resolve_path(self.model)
        return HFJudge(str(local) if local.exists() else self.model, temperature=self.temperature,
                       max_new_tokens=self.max_tokens)


class ChatConfig(CheckConfig):
    """The options the `mtbench` and `pairwise` check types share."""

    questions: str | None = Field(None, description="FastChat question.jsonl (default: the bundled 24 questions)")
    reference_answers: str | None = Field(
        None, description="FastChat reference_answer/*.jsonl (a file or its folder); default: embedded references"
    )
    limit: int | None = Field(None, ge=1, description="only the first N questions (smoke runs)")
    judge: JudgeSpec | None = Field(
        None, description="the judge: {model, base_url, api_key_env} of an OpenAI-compatible endpoint, "
                          "openai:MODEL@URL, or a local model folder (required)"
    )
    judge_prompts: str | None = Field(None, description="FastChat judge_prompts.jsonl (default: mergeval's)")
    max_new_tokens: int = Field(1024, ge=1, description="new tokens per answer turn (FastChat: 1024)")
    batch_size: int | None = Field(None, ge=1, description="questions per generation batch (default: the model's)")
    chat_template: str | None = Field(
        None, description="a Jinja chat template for local models that have none (part of the answers' identity)"
    )
    parser: Literal["fastchat", "lenient"] = Field(
        "fastchat", description="how ratings / verdicts are read: fastchat (FastChat's exact rule) or lenient"
    )
    answers: dict[str, str] = Field(
        default_factory=dict,
        description="model name -> FastChat answer file (model_answer/NAME.jsonl) to judge instead of generating",
    )

    @field_validator("questions", "reference_answers", "judge_prompts")
    @classmethod
    def _file_exists(cls, path: str | None, info: ValidationInfo) -> str | None:
        return must_exist(path, info, str(info.field_name),
                          f"point it at your FastChat file, or leave `{info.field_name}` out for the bundled one")

    def generation(self) -> GenerationConfig:
        return GenerationConfig(max_new_tokens=self.max_new_tokens, chat_template=self.chat_template)


@dataclass
class ChatInputs:
    """A check's questions, judge prompts and judge, loaded on the driver (paths relative to the plan)."""

    config: ChatConfig
    questions: list[Question]
    prompts: JudgePrompts
    judge: Judge | None

    @classmethod
    def load(cls, config: ChatConfig, resolve_path: Callable[[str], Path]) -> ChatInputs:
        """Questions first (a bad file fails before anything else), the judge last."""

        def path(value: str | None) -> Path | None:
            return resolve_path(value) if value else None

        questions = load_questions(path(config.questions), reference_answers=path(config.reference_answers))
        questions = questions[: config.limit] if config.limit else questions
        prompts = load_judge_prompts(path(config.judge_prompts))
        judge = config.judge.build(resolve_path) if config.judge is not None else None
        return cls(config, questions, prompts, judge)

    @property
    def generation(self) -> GenerationConfig:
        return self.config.generation()


def require_judge(config: ChatConfig) -> None:
    if config.judge is None:
        raise UserError(
            f"The {config.type} check {config.label!r} needs a judge: `judge: {{model: MODEL, base_url: URL, "
            "api_key_env: NAME}}`, `judge: openai:MODEL@URL`, or a local model folder."
        )


# -- answers: identity, the store's view, the stage's tasks -------------------------------------------------------


def answers_check(questions: Sequence[Question], generation: GenerationConfig | None = None) -> Task:
    """The identity under which a model's answers to `questions` are stored (a Task of every question)."""
    set_id = check_question_set(questions)
    generation = generation or GenerationConfig()
    return Task(ANSWERS_KIND, f"mt-bench:{set_name(set_id)}",
                identity(ANSWERS_KIND, {"questions": set_id, "generation": generation.identity()}),
                tuple(q.item_id for q in questions), provenance={"questions": set_id})


def stored_answers(store: Store, ref: ModelRef, questions: Sequence[Question],
                   generation: GenerationConfig | None = None) -> dict[str, tuple[str, str]]:
    """question item id -> (turn-1 answer, turn-2 answer) for the questions whose answers are stored."""
    task = answers_check(questions, generation)
    wanted = set(task.item_ids)
    return {item.item_id: tuple(item.data["turns"])
            for item in store.items(ref.fingerprint, task.hash, with_data=True) if item.item_id in wanted}


@dataclass(frozen=True)
class Transport:
    """How answers are asked for (never part of an identity): local batch size, endpoint concurrency."""

    batch_size: int | None = None  # questions per local batch (None: the model's)
    concurrency: int = 4  # endpoint questions at once
    timeout: float = 600.0
    max_retries: int = 4


def answers_task(questions: Sequence[Question], generation: GenerationConfig, transport: Transport, *,
                 imported: tuple[Path, str, Mapping[str, Sequence[str]]] | None = None) -> Task:
    """The runnable answers task: `answers_check` with what its engine needs. `imported` (the FastChat file,
    the model's name, its records) takes the answers from the file: its questions only."""
    base = answers_check(questions, generation)
    inputs: dict[str, Any] = {"questions": [q.to_dict() for q in questions], "generation": generation.to_dict(),
                              "transport": transport.__dict__}
    if imported is None:
        return replace(base, inputs=inputs)
    path, name, records = imported
    covered = [q for q in questions if q.item_id in records]
    inputs.update(records={q.item_id: list(records[q.item_id]) for q in covered}, source=path.name)
    provenance = {**base.provenance, "backend": "imported", "imported_from": str(path), "model_id": name}
    return replace(base, item_ids=tuple(q.item_id for q in covered), inputs=inputs, provenance=provenance)


def can_answer(m: PlanModel) -> bool:
    """Local weights or an endpoint: the chat engine can generate its answers."""
    return m.runnable or (m.ref.kind == "endpoint" and not m.from_store)


def answers_model(config: ChatConfig, ctx: CheckContext, m: PlanModel, *, strict: bool) -> PlanModel:
    """`m`, or when `answers:` gives it a FastChat answer file, `m` as that file defines it: its answers are
    the file's, its identity the file's content (imported_answers), so they never mix with generated ones.
    Without the file at hand, the model imported from a file of that name before (from the store); `strict`
    (run) makes a missing file an error, otherwise (collect) `m` is reported as missing."""
    if m.name not in config.answers:
        return m
    path = ctx.resolve_path(config.answers[m.name])
    if path.is_file():
        return replace(m, ref=fastchat_answers_ref(path, m.name), from_store=False)
    rows = [r for r in ctx.store.models()
            if r.kind == "imported" and r.name == m.name and r.metadata.get("answers_file") == path.name]
    if rows:
        row = rows[-1]
        ref = ModelRef(reference=row.reference, kind=row.kind, name=m.name, fingerprint=row.fingerprint,
                       metadata=dict(row.metadata))
        return replace(m, ref=ref, from_store=True)
    if strict:
        raise UserError(
            f"{config.label}: the answer file for {m.name}, {config.answers[m.name]}, does not exist (looked in "
            f"{path}); fix the path in the plan's `answers:`."
        )
    return replace(m, ref=ModelRef(reference=str(path), kind="imported", name=m.name,
                                   fingerprint="imported-missing"), from_store=True)


def plan_answers_tasks(config: ChatConfig, ctx: CheckContext, m: PlanModel, inputs: ChatInputs) -> list[Task]:
    """The answers stage of a plan model: generate what is missing, take it from its `answers:` file, or (a
    model that cannot answer) nothing, with a message when it has no answers at all."""
    questions, generation = inputs.questions, inputs.generation
    transport = Transport(batch_size=config.batch_size, concurrency=config.judge.concurrency if config.judge else 4)
    if m.ref.kind == "imported" and m.name in config.answers and not m.from_store:
        path = ctx.resolve_path(config.answers[m.name])
        task = answers_task(questions, generation, transport, imported=(path, m.name, answer_records(path)))
        if len(task.item_ids) < len(questions):
            missing = [q.question_id for q in questions if q.item_id not in task.item_ids]
            ctx.say(f"{config.label}: the answer file of {m.name} answers {len(task.item_ids)} of the "
                    f"{len(questions)} questions (not {', '.join(map(str, missing[:5]))}"
                    f"{' ...' if len(missing) > 5 else ''}); only those are judged")
        return [task]
    if can_answer(m):
        return [answers_task(questions, generation, transport)]
    if not stored_answers(ctx.store, m.ref, questions, generation):
        ctx.say(f"{config.label}: {m.name} has no local weights, endpoint or answer file here, skipped")
    return []


# -- judging tasks --------------------------------------------------------------------------------------------------


def judging_check(kind: str, questions: Sequence[Question], judge: Judge, item_ids: Sequence[str], *,
                  generation: GenerationConfig | None, prompts: JudgePrompts | None, parser: str,
                  extra: Mapping[str, Any], provenance: Mapping[str, Any], suffix: str = "") -> Task:
    """The identity of a judging check (a Task of `item_ids`): the answers it judges, the questions and where
    their references came from, the judge, the prompt set, the rating rule, and `extra` (the repeats of single
    grading, the opponent of A/B)."""
    prompts = prompts or load_judge_prompts()
    check_parser(parser)
    set_id = check_question_set(questions)
    config = {"answers": answers_check(questions, generation).hash, "questions": set_id,
              "references": reference_source_of(questions), "judge": judge.identity(), "prompts": prompts.hash,
              "parser": parser, **extra}
    provenance = {**provenance, "prompts": prompts.source, "prompts_hash": prompts.hash, "parser": parser,
                  "judge": judge.identity()}
    return Task(kind, f"mt-bench:{set_name(set_id)}:{judge.name}{suffix}", identity(kind, config), tuple(item_ids),
                provenance=provenance)


def judging_task(store: Store, ref: ModelRef, base: Task, grading: Grading, judge: Judge,
                 answers: Mapping[str, Sequence[str]]) -> Task:
    """The runnable judging task of `ref`: `base` (the identity and its items) with its engine's inputs: the
    grading, the judge's spec, the answers and the cached verdicts of the items the store does not hold. A
    reference-guided question without a reference answer stops here, before any judge call."""
    check_references(list(grading.questions))
    stored = store.item_ids(ref.fingerprint, base.hash)
    todo = {i for i in base.item_ids if i not in stored}
    units = grading.units(judge, answers) if todo else {}
    cached = {}
    for item_id in todo:
        for unit in units[item_id]:
            value = store.cache_get(JUDGMENT_CACHE, unit.key)
            if value is not None:
                cached[unit.key] = value
    inputs = {"grading": grading.to_dict(), "judge": judge.spec(),
              "answers": {k: list(v) for k, v in answers.items()}, "cached": cached}
    return replace(base, inputs=inputs)


def answers_or_fail(store: Store, ref: ModelRef, questions: Sequence[Question],
                    generation: GenerationConfig | None) -> dict[str, tuple[str, str]]:
    answers = stored_answers(store, ref, questions, generation)
    missing = [q.item_id for q in questions if q.item_id not in answers]
    if missing:
        raise UserError(
            f"{ref.name} has no stored answers for {len(missing)} of the {len(questions)} questions (ids "
            f"{', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}) under this generation config. "
            "Generate them first (generate_answers / `mergeval run`), with the same max_new_tokens and temperatures."
        )
    return answers


def check_repeats(repeats: int) -> None:
    if int(repeats) != repeats or repeats < 1:
        raise UserError(f"judge_repeats must be a positive integer (got {repeats!r}).")


# -- the engine: what `load` gives ------------------------------------------------------------------------------------


@dataclass
class ChatEngine:
    """What `load` gives: the model's answerer (a local model's weights load when the first task that
    generates needs them, in `provenance`, before anything is stored) and the judges of the tasks it judges
    (built from their specs; a local judge loads on its first judgment)."""

    model: ModelRef
    local: LocalAnswerer | None = None
    judges: dict[str, Judge] = field(default_factory=dict)

    def answerer(self, task: Task) -> Answerer:
        transport = Transport(**task.inputs["transport"])
        answerer = make_answerer(self.model, batch_size=transport.batch_size, concurrency=transport.concurrency,
                                 timeout=transport.timeout, max_retries=transport.max_retries)
        if not isinstance(answerer, LocalAnswerer):
            return answerer
        if self.local is None:
            self.local = answerer
            answerer.load()
        self.local.batch_size = answerer.batch_size
        return self.local

    def judge(self, spec: Mapping[str, Any]) -> Judge:
        key = repr(sorted(spec.items()))
        if key not in self.judges:
            self.judges[key] = judge_from_spec(dict(spec))
        return self.judges[key]


def _questions(task: Task, item_ids: Sequence[str]) -> list[Question]:
    wanted = set(item_ids)
    return [q for q in map(Question.from_dict, task.inputs["questions"]) if q.item_id in wanted]


def _rows(answers: Sequence[Answer]) -> list[ItemRow]:
    return [ItemRow(a.item_id, a.metrics, a.data) for a in answers]


def check_model_names(config: ChatConfig, plan: Any, also: Sequence[str] = (), hint: str = "") -> None:
    """A UserError when the check names models the plan does not have (no plan: nothing to check)."""
    names = {m.name for m in getattr(plan, "models", None) or []}
    listed = (list(config.models) if isinstance(config.models, list) else []) + list(config.answers) + list(also)
    unknown = [n for n in listed if n not in names] if plan is not None else []
    if unknown:
        raise UserError(f"the {config.type} check names unknown model(s) {', '.join(unknown)}; use names from "
                        f"`models:`{hint}")


class ChatCheck(Check):
    """The two stages of an MT-Bench check type; subclasses add the judging tasks, their metrics and how a
    model's results are read back."""

    stages = ("answers", "judgments")
    models_hint: ClassVar[str] = ""  # what else a `models:` entry may be, for the unknown-model message

    # -- plan time --

    metric_specs: ClassVar[Callable[[str, str], list[MetricSpec]]]  # (label, prefix) -> the check's MetricSpecs

    def named_models(self, config: ChatConfig) -> list[str]:
        """Plan models the config names besides `models:` and `answers:`."""
        return []

    def metrics(self, config: ChatConfig, plan: Any) -> list[MetricSpec]:
        check_model_names(config, plan, also=self.named_models(config), hint=self.models_hint)
        require_judge(config)
        return self.metric_specs(config.label, metric_prefix(config, plan))

    # -- reading back --

    def collect(self, config: ChatConfig, ctx: CheckContext) -> CheckData:
        inputs = ChatInputs.load(config, ctx.resolve_path)
        data = self.check_data(config, metric_prefix(config, ctx.plan))
        per_model = {}
        for m in self.targets(config, ctx):
            summary = self.collect_model(data, ctx, inputs, m)
            if summary is not None:
                per_model[m.name] = summary
        data.provenance = {
            "config": config.model_dump(mode="json"),  # the key's variable name at most, never its value
            "judge": inputs.judge.identity() if inputs.judge else None,
            **self.notes(inputs),
            "models": per_model,
        }
        return data

    def check_data(self, config: ChatConfig, prefix: str) -> CheckData:
        raise NotImplementedError

    def collect_model(self, data: CheckData, ctx: CheckContext, inputs: ChatInputs,
                      m: PlanModel) -> dict[str, Any] | None:
        """Add `m`'s scores, facts or what is missing to `data`; a summary of its results for the provenance."""
        raise NotImplementedError

    def notes(self, inputs: ChatInputs) -> dict[str, Any]:
        """What the check's provenance says besides its config, judge and models."""
        return {}

    # -- running --

    def targets(self, config: ChatConfig, ctx: CheckContext, *, strict: bool = False) -> list[PlanModel]:
        return [answers_model(config, ctx, m, strict=strict) for m in ctx.select(getattr(config, "models", "all"))]

    def plan_models(self, config: ChatConfig, ctx: CheckContext) -> list[PlanModel]:
        return self.targets(config, ctx, strict=True)

    def tasks(self, config: ChatConfig, ctx: CheckContext, model: PlanModel, stage: str) -> list[Task]:
        inputs = ChatInputs.load(config, ctx.resolve_path)
        if stage == "answers":
            return plan_answers_tasks(config, ctx, model, inputs)
        require_judge(config)
        return self.judging_tasks(config, ctx, model, inputs)

    def judging_tasks(self, config: ChatConfig, ctx: CheckContext, model: PlanModel, inputs: ChatInputs) -> list[Task]:
        raise NotImplementedError

    def load(self, config: ChatConfig, model: ModelRef, stage: str, env: RunEnv) -> ChatEngine:
        return ChatEngine(model)

    def provenance(self, engine: ChatEngine, task: Task) -> dict[str, Any]:
        if task.kind != ANSWERS_KIND or "records" in task.inputs:
            return {}
        # an answers run states its backend and chat template (a local model without one is refused here)
        return engine.answerer(task).provenance(GenerationConfig.from_dict(task.inputs["generation"]))

    def evaluate(self, engine: ChatEngine, task: Task, item_ids: Sequence[str]) -> Iterator[Batch]:
        if task.kind == ANSWERS_KIND:
            yield from self._answer(engine, task, item_ids)
        else:
            yield from self._judge(engine, task, item_ids)

    def _answer(self, engine: ChatEngine, task: Task, item_ids: Sequence[str]) -> Iterator[Batch]:
        questions = _questions(task, item_ids)
        generation = GenerationConfig.from_dict(task.inputs["generation"])
        stats = {"n_questions_missing": len(questions)}
        if "records" in task.inputs:
            yield Batch(_rows(imported_answers(questions, task.inputs["records"], generation,
                                               task.inputs["source"])), stats=stats)
            return
        for answers in answer_all(engine.answerer(task), questions, generation):
            yield Batch(_rows(answers), stats=stats)

    def _judge(self, engine: ChatEngine, task: Task, item_ids: Sequence[str]) -> Iterator[Batch]:
        inputs = task.inputs
        judging = Judging(grading_from_dict(inputs["grading"]), engine.judge(inputs["judge"]), inputs["answers"],
                          item_ids, inputs["cached"])
        for step in judging:
            yield Batch([ItemRow(r.item_id, r.metrics, r.data) for r in step.rows],
                        cache=[(JUDGMENT_CACHE, key, outcome) for key, outcome in step.cache],
                        stats=judging.counts.stats())


# -- library calls on a store ---------------------------------------------------------------------------------------


def run_missing(store: Store, units: Sequence[WorkUnit], progress: Progress | None = None) -> RunSummary:
    """Run library-made work units through the runner (the only writer of results), for the items the store
    lacks (a unit with none is left out)."""
    runner = Runner(store, progress=progress)
    todo = [replace(u, item_ids=runner.missing(u.model, u.task)) for u in units]
    return runner.run([u for u in todo if u.item_ids])


@dataclass(frozen=True)
class JudgingSummary:
    """What one judge_single / judge_pairwise call did."""

    check_hash: str
    n_items: int  # rows of this check now stored for the requested questions
    n_new: int  # rows stored by this call
    n_judge_calls: int  # requests sent to the judge by this call (format-reminder retries included)
    n_cache_hits: int  # judgments taken from the cache instead of the judge
    n_unparsed: int  # judgments in the new rows that gave no rating / verdict even after the reminder


def run_judging(store: Store, ref: ModelRef, unit: WorkUnit, progress: Progress | None) -> JudgingSummary:
    """Run a library-made judging unit; what it did, from its runs' provenance."""
    task = unit.task
    summary = run_missing(store, [unit], progress)
    ran = {o.run_id for o in summary.outcomes}
    runs = [r.provenance for r in store.runs(ref.fingerprint, task.hash) if r.id in ran]
    n_items = len(set(task.item_ids) & store.item_ids(ref.fingerprint, task.hash))
    return JudgingSummary(task.hash, n_items, summary.evaluated, *(sum(p.get(k, 0) for p in runs)
                                                                   for k in ("judge_calls", "cache_hits", "unparsed")))


def judge_missing(store: Store, unit: WorkUnit, build: Callable[[], Task],
                  progress: Progress | None) -> JudgingSummary:
    """Judge what the store lacks of `unit`'s check for its model: nothing at all (no answer is even read) when
    every item is stored; else the task `build` makes (it reads the answers) through the runner."""
    ref, base = unit.model, unit.task
    if set(base.item_ids) <= store.item_ids(ref.fingerprint, base.hash):
        return JudgingSummary(base.hash, len(base.item_ids), 0, 0, 0, 0)
    task = build()
    return run_judging(store, ref, replace(unit, task=task, item_ids=task.item_ids), progress)


def why_missing(store: Store, inputs: ChatInputs, m: PlanModel, judged: int, what: str) -> str:
    """Why `m` has no complete result: no answers, answers for some questions, or judgments for some."""
    n = len(inputs.questions)
    answered = len(stored_answers(store, m.ref, inputs.questions, inputs.generation))
    if answered == 0:
        if not can_answer(m):
            return "no stored answers, and no local weights or endpoint to generate them"
        return "not evaluated yet (no stored answers)"
    if answered < n:
        return f"incomplete: answers stored for {answered} of {n} questions"
    return f"incomplete: {what} stored for {judged} of {n} questions"


__all__ = [
    "ANSWERS_KIND",
    "JUDGMENT_CACHE",
    "PAIR_KIND",
    "SINGLE_KIND",
    "ChatCheck",
    "ChatConfig",
    "ChatEngine",
    "ChatInputs",
    "JudgeSpec",
    "JudgingSummary",
    "Transport",
    "answers_check",
    "answers_model",
    "answers_or_fail",
    "answers_task",
    "can_answer",
    "check_model_names",
    "check_repeats",
    "identity",
    "judge_missing",
    "judging_check",
    "judging_task",
    "plan_answers_tasks",
    "require_judge",
    "run_judging",
    "run_missing",
    "set_name",
    "stored_answers",
    "why_missing",
]
