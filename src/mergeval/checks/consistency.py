"""The `consistency` check type: conflict detection on pairs of prompts that should agree (or differ).

One item per pair (both answers, their similarity, the verdict at the run's thresholds); the engine and the
judging rules are `mergeval.engines.text.consistency`. In a comparison: benchmark `consistency` (% of pairs
answered consistently, 100 - conflict rate), paired on the 1 consistent / 0 conflict verdicts (exact
McNemar), and fact `conflict_rate` (a fraction), only for a model whose pairs are all stored.

Thresholds are not part of the identity: the stored answers are judged again at the thresholds a reader
gives, so trying another threshold never reruns a model. The pass mark of the `mergeval consistency`
command (`--threshold`, 5%) is a verdict on the summary, not an option of the check: in a plan the gate is
the threshold (`conflict_rate < 5%`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from mergeval.checks._text import (
    AnswersEngine,
    TextCheck,
    TextCheckConfig,
    base_dir,
    identity_dtype,
    last_provenance,
    load_answers_engine,
    must_exist,
    note_missing,
    resolve,
    run_on_models,
)
from mergeval.core.check import Batch, MetricSpec, Task
from mergeval.core.context import CheckContext, PlanModel, RunEnv
from mergeval.core.identity import content_hash
from mergeval.core.progress import Progress
from mergeval.core.registry import check
from mergeval.core.results import CheckData, ScoreData
from mergeval.dtypes import stored_hash
from mergeval.engines.text._common import TEXTMETRICS_VERSION, require_local
from mergeval.engines.text._generate import GenerationSettings
from mergeval.engines.text.consistency import (
    BUNDLED_EMBEDDING_MODEL,
    DEFAULT_CONFLICT_THRESHOLD,
    ConsistencyPair,
    PairAnswers,
    PairVerdict,
    answer_pairs,
    conflict_rate,
    contains_answer,
    embedding_identity,
    judge_pair,
    load_embedding_model,
    load_pairs,
)
from mergeval.models import ModelRef
from mergeval.store import ItemRow, Store

KIND = "consistency"


class ConsistencyConfig(TextCheckConfig):
    """`- type: consistency`: conflict detection on pairs of prompts that should agree (or differ).

    Identity (changing it means new answers): the pairs' content, max_new_tokens, chat, stop_at_newline,
    embedding_model, dtype. Not identity (applied when reading results back): the two similarity thresholds.
    """

    type: Literal["consistency"] = "consistency"
    pairs: str | None = Field(
        None,
        description="JSONL of {id?, prompt_a, prompt_b, answer?, expect?} (default: the bundled 26 pairs)",
    )
    max_new_tokens: int = Field(48, ge=1, description="longest answer, in tokens")
    chat: bool = Field(True, description="ask through the model's chat template when it has one")
    stop_at_newline: bool = Field(True, description="keep only the first line of each answer")
    embedding_model: str = Field(
        BUNDLED_EMBEDDING_MODEL,
        description="sentence-transformers model: the bundled all-MiniLM-L6-v2, a model folder or a hub id",
    )
    similarity_threshold: float = Field(0.7, ge=-1, le=1, description="agree pairs: consistent at or above")
    differ_threshold: float = Field(0.9, ge=-1, le=1, description="differ pairs: a conflict at or above")

    @field_validator("pairs")
    @classmethod
    def _pairs_exist(cls, pairs: str | None, info: ValidationInfo) -> str | None:
        return must_exist(pairs, info, "pairs", "your JSONL file of prompt pairs")

    @field_validator("embedding_model")
    @classmethod
    def _embedding_folder_exists(cls, name: str, info: ValidationInfo) -> str:
        base = base_dir(info)
        if base is not None and name.startswith((".", "/", "~")) and not resolve(name, base).is_dir():
            raise ValueError(
                f"embedding_model {name} is not a folder (looked in {resolve(name, base)}); give a "
                f"sentence-transformers model folder, a hub id, or leave it out for {BUNDLED_EMBEDDING_MODEL}"
            )
        return name

    @property
    def generation(self) -> GenerationSettings:
        return GenerationSettings(self.max_new_tokens, self.chat, self.stop_at_newline)

    def judge(
        self, pair: ConsistencyPair, response_a: str, response_b: str, similarity: float
    ) -> PairVerdict:
        return judge_pair(
            response_a,
            response_b,
            similarity,
            expect=pair.expect,
            answers=pair.answers,
            similarity_threshold=self.similarity_threshold,
            differ_threshold=self.differ_threshold,
        )


# -- identity ----------------------------------------------------------------------------------------------


def pairs_location(config: ConsistencyConfig, base: str | Path = ".") -> Path | None:
    return None if config.pairs is None else resolve(config.pairs, Path(base))


def embedding_location(config: ConsistencyConfig, base: str | Path = ".") -> str:
    """The embedding model: a local folder next to the plan (or the command) by its path, else its name."""
    folder = resolve(config.embedding_model, Path(base))
    return str(folder) if folder.is_dir() else config.embedding_model


def identity(
    config: ConsistencyConfig, pairs: Sequence[ConsistencyPair], dtype: str, base: str | Path = "."
) -> dict[str, Any]:
    """The stored check config: the pairs' content, generation settings, embedding model, dtype."""
    content = [[p.id, p.prompt_a, p.prompt_b, list(p.answers), p.expect] for p in pairs]
    return {
        "engine": "mergeval-textmetrics",
        "kind": KIND,
        "version": TEXTMETRICS_VERSION,
        "pairs_sha": content_hash(content),
        "n_pairs": len(pairs),
        "generation": config.generation.identity(),
        "embedding_model": embedding_identity(embedding_location(config, base)),
        "dtype": dtype,
    }


def check_hash(config: ConsistencyConfig, model: ModelRef | None = None, base: str | Path = ".") -> str:
    """The check's store hash; with `model`, for the dtype its weights are loaded in (`auto` resolved)."""
    pairs, _ = load_pairs(pairs_location(config, base))
    return content_hash(identity(config, pairs, identity_dtype(config.dtype, model), base))


def make_task(config: ConsistencyConfig, model: ModelRef, base: str | Path = ".") -> Task:
    """The check for `model`: its identity, the pairs as items (their prompts travel with the task)."""
    pairs, path = load_pairs(pairs_location(config, base))
    dtype = identity_dtype(config.dtype, model)
    return Task(
        kind=KIND,
        name=f"consistency:{path.name}",
        config=identity(config, pairs, dtype, base),
        item_ids=tuple(p.id for p in pairs),
        inputs={"pairs": {p.id: [p.prompt_a, p.prompt_b, list(p.answers), p.expect] for p in pairs}},
        provenance={
            "check": KIND,
            "dtype": dtype,
            "batch_size": model.batch_size,
            "pairs": str(path),
            "embedding_model": config.embedding_model,
        },
        batch_size=model.batch_size,
    )


# -- reading back ----------------------------------------------------------------------------------------


@dataclass
class ConsistencySummary:
    """One model's conflict rate, judged at the config's thresholds, with per-pair verdicts for pairing.

    `per_item` maps pair id -> 1.0 (consistent) / 0.0 (conflict): 0/1 scores, so compare can use McNemar.
    `passed` is conflict_rate < threshold (None when no pair is stored).
    """

    check_hash: str
    n_pairs: int
    n_target: int  # pairs in the pairs file
    n_conflicts: int
    conflict_rate: float | None
    threshold: float
    passed: bool | None
    mean_similarity: float | None
    conflicts: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    per_item: dict[str, float] = field(default_factory=dict)
    per_item_similarity: dict[str, float] = field(default_factory=dict)
    metric: str = "consistent"
    higher_is_better: bool = True
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        names = (
            "check_hash",
            "n_pairs",
            "n_target",
            "n_conflicts",
            "conflict_rate",
            "threshold",
            "passed",
            "mean_similarity",
            "conflicts",
            "reasons",
            "metric",
            "higher_is_better",
            "per_item",
            "per_item_similarity",
            "provenance",
        )
        return {name: getattr(self, name) for name in names}


def _stored_verdict(config: ConsistencyConfig, row: ItemRow) -> PairVerdict:
    d = row.data
    pair = ConsistencyPair(row.item_id, d["prompt_a"], d["prompt_b"], tuple(d["answers"]), d["expect"])
    return config.judge(pair, d["response_a"], d["response_b"], float(row.metrics["similarity"]))


def consistency_scores(
    store: Store,
    model: ModelRef | str,
    config: ConsistencyConfig,
    base: str | Path = ".",
    *,
    threshold: float = DEFAULT_CONFLICT_THRESHOLD,
) -> ConsistencySummary:
    """Judge the stored answers at the config's thresholds (no model is loaded); `passed` is the conflict rate
    below `threshold`. `model`: a ModelRef, or a bare fingerprint (the dtype is then the config's)."""
    pairs, _ = load_pairs(pairs_location(config, base))
    fingerprint = model if isinstance(model, str) else model.fingerprint
    digest = stored_hash(
        store, model, identity(config, pairs, identity_dtype(config.dtype, model), base), content_hash
    )
    items = sorted(store.items(fingerprint, digest, with_data=True), key=lambda it: it.item_id)
    verdicts = {it.item_id: _stored_verdict(config, it) for it in items}
    similarity = {it.item_id: float(it.metrics["similarity"]) for it in items}
    per_item = {item_id: float(v.consistent) for item_id, v in verdicts.items()}
    rate = conflict_rate(list(per_item.values()))
    conflicts = [item_id for item_id, ok in per_item.items() if not ok]
    return ConsistencySummary(
        check_hash=digest,
        n_pairs=len(items),
        n_target=len(pairs),
        n_conflicts=len(conflicts),
        conflict_rate=rate,
        threshold=threshold,
        passed=None if rate is None else rate < threshold,
        mean_similarity=sum(similarity.values()) / len(similarity) if similarity else None,
        conflicts=conflicts,
        reasons={item_id: v.reason for item_id, v in verdicts.items()},
        per_item=per_item,
        per_item_similarity=similarity,
        provenance=last_provenance(store, fingerprint, digest),
    )


# -- the check type ------------------------------------------------------------------------------------------


def _metric_specs(config: ConsistencyConfig, prefix: str) -> list[MetricSpec]:
    return [
        MetricSpec(
            prefix + "consistency",
            "Consistency",
            scale=100.0,
            range=(0.0, 100.0),
            unit="%",
            metric_key="consistent_pairs",
            check=config.label,
            description="% of prompt pairs answered consistently (100 - conflict rate)",
        ),
        MetricSpec(
            prefix + "conflict_rate",
            "Conflict rate",
            kind="fact",
            scale=1.0,
            range=(0.0, 1.0),
            higher_is_better=False,
            unit="fraction",
            metric_key="conflict_rate",
            check=config.label,
            description="conflicting pairs / pairs (the methodology accepts below 5%)",
        ),
    ]


@check("consistency")
class Consistency(TextCheck[ConsistencyConfig]):
    Config = ConsistencyConfig
    description = "conflict detection: pairs of prompts whose answers should agree (or differ)"
    known_metrics = ("consistency", "conflict_rate")

    metric_specs = staticmethod(_metric_specs)
    make_task = staticmethod(make_task)

    def load(self, config: ConsistencyConfig, model: ModelRef, stage: str, env: RunEnv) -> AnswersEngine:
        embedder = load_embedding_model(embedding_location(config, env.base_dir))
        return load_answers_engine(KIND, config, model, embedder)

    def evaluate(self, engine: AnswersEngine, task: Task, item_ids: Sequence[str]) -> Iterator[Batch]:
        config: ConsistencyConfig = engine.config
        data = task.inputs["pairs"]
        pairs = [ConsistencyPair(i, data[i][0], data[i][1], tuple(data[i][2]), data[i][3]) for i in item_ids]
        for answered in answer_pairs(
            engine.generator, engine.embedder, pairs, config.generation, batch_size=engine.batch_size
        ):
            yield Batch([_item(config, row) for row in answered])

    def collect(self, config: ConsistencyConfig, ctx: CheckContext) -> CheckData:
        data = self.check_data(config, ctx)
        per_model: dict[str, Any] = {}
        for m in ctx.select(config.models):
            s = consistency_scores(ctx.store, m.ref, config, ctx.env.base_dir)
            _add_model(data, m, s)
            if s.n_pairs:
                per_model[m.name] = {
                    "check": s.check_hash,
                    "conflict_rate": s.conflict_rate,
                    "n_pairs": s.n_pairs,
                    "mean_similarity": s.mean_similarity,
                    "conflicts": {pair: s.reasons[pair] for pair in s.conflicts},
                }
        data.provenance = {
            "config": config.model_dump(mode="json"),
            "paired_on": "1 consistent / 0 conflict per pair (exact McNemar)",
            "models": per_model,
        }
        return data


def run_consistency(
    store: Store, ref: ModelRef, config: ConsistencyConfig | None = None, *, progress: Progress | None = None
) -> int:
    """Answer and judge the pairs the store does not hold for `ref`; how many were stored now."""
    require_local(ref, KIND)
    return run_on_models(Consistency(), config or ConsistencyConfig(), store, [(ref, "candidate")], progress)


def _item(config: ConsistencyConfig, answered: PairAnswers) -> ItemRow:
    pair, response_a, response_b, similarity = (
        answered.pair,
        answered.response_a,
        answered.response_b,
        answered.similarity,
    )
    verdict = config.judge(pair, response_a, response_b, similarity)
    metrics: dict[str, float] = {"consistent": float(verdict.consistent), "similarity": similarity}
    if verdict.answer_match is not None:
        metrics["answer_match"] = float(verdict.answer_match)
    data = {
        "prompt_a": pair.prompt_a,
        "prompt_b": pair.prompt_b,
        "response_a": response_a,
        "response_b": response_b,
        "expect": pair.expect,
        "answers": list(pair.answers),
        "reason": verdict.reason,
        "similarity_threshold": config.similarity_threshold,
        "differ_threshold": config.differ_threshold,
    }
    if pair.answers:
        data["a_states_answer"] = contains_answer(response_a, pair.answers)
        data["b_states_answer"] = contains_answer(response_b, pair.answers)
    return ItemRow(pair.id, metrics=metrics, data=data)


def _add_model(data: CheckData, m: PlanModel, s: ConsistencySummary) -> None:
    rate = s.conflict_rate
    data.scores.setdefault(m.name, {})["consistency"] = ScoreData(
        value=None if rate is None else 100 * (1 - rate),
        stderr=None if rate is None else 100 * math.sqrt(rate * (1 - rate) / s.n_pairs),
        n=s.n_pairs,
        n_target=s.n_target,
        items=dict(s.per_item),
    )
    note_missing(data, m, ["consistency"], s.n_pairs, s.n_target)
    if rate is not None and s.n_pairs >= s.n_target:
        data.facts.setdefault(m.name, {})[data.fact_specs[0].name] = rate


__all__ = [
    "Consistency",
    "ConsistencyConfig",
    "ConsistencySummary",
    "check_hash",
    "consistency_scores",
    "make_task",
    "run_consistency",
]
