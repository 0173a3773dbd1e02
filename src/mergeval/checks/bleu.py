"""The `bleu` check type: sacrebleu's corpus BLEU and chrF of greedy answers against references.

One item per prompt (the answer, its sentence BLEU and sentence chrF); the engine is
`mergeval.engines.text.bleu`. In a comparison: benchmarks `bleu` and `chrf` (corpus scores, 0-100, higher is
better), paired on the sentence scores sacrebleu computes for every item (same units; the mean of sentence
scores is close to, but not, the corpus score, which cannot be written as a mean without sacrebleu's
internals).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from mergeval.checks._text import (
    AnswersEngine,
    TextCheck,
    TextCheckConfig,
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
from mergeval.engines.text.bleu import (
    BUNDLED_DATA,
    ReferenceItem,
    corpus_scores,
    load_items,
    sentence_scores,
    signatures,
    tokenizers,
)
from mergeval.models import ModelRef
from mergeval.store import ItemRow, Store

KIND = "bleu"


class BleuConfig(TextCheckConfig):
    """`- type: bleu`: corpus BLEU and chrF (sacrebleu) of greedy answers against references. Every option
    but `models` is part of the check's identity."""

    type: Literal["bleu"] = "bleu"
    data: str | None = Field(
        None, description="JSONL of {prompt, reference(s), id?} (default: the bundled English->French set)"
    )
    max_new_tokens: int = Field(64, ge=1, description="longest answer, in tokens")
    chat: bool = Field(True, description="ask through the model's chat template when it has one")
    stop_at_newline: bool = Field(True, description="keep only the first line of each answer")
    tokenize: str = Field("13a", description="sacrebleu's BLEU tokenizer: 13a, intl, zh, ja-mecab, char, ...")
    lowercase: bool = Field(False, description="case-insensitive BLEU and chrF")

    @field_validator("data")
    @classmethod
    def _data_exists(cls, data: str | None, info: ValidationInfo) -> str | None:
        return must_exist(data, info, "data", "your JSONL file")

    @field_validator("tokenize")
    @classmethod
    def _known_tokenizer(cls, tokenize: str) -> str:
        if tokenize not in tokenizers():
            raise ValueError(
                f"unknown sacrebleu tokenizer {tokenize!r}; use one of {', '.join(tokenizers())}"
            )
        return tokenize

    @property
    def generation(self) -> GenerationSettings:
        return GenerationSettings(self.max_new_tokens, self.chat, self.stop_at_newline)


# -- identity ----------------------------------------------------------------------------------------------


def data_location(config: BleuConfig, base_dir: str | Path = ".") -> Path | None:
    return None if config.data is None else resolve(config.data, Path(base_dir))


def identity(config: BleuConfig, items: Sequence[ReferenceItem], dtype: str) -> dict[str, Any]:
    """The stored check config: the data's content (not its path), generation and scoring settings, dtype."""
    content = [[it.id, it.prompt, list(it.references)] for it in items]
    return {
        "engine": "mergeval-textmetrics",
        "kind": KIND,
        "version": TEXTMETRICS_VERSION,
        "data_sha": content_hash(content),
        "n_items": len(items),
        "generation": config.generation.identity(),
        "tokenize": config.tokenize,
        "lowercase": config.lowercase,
        "dtype": dtype,
    }


def check_hash(config: BleuConfig, model: ModelRef | None = None, base_dir: str | Path = ".") -> str:
    """The check's store hash; with `model`, for the dtype its weights are loaded in (`auto` resolved)."""
    items, _ = load_items(data_location(config, base_dir))
    return content_hash(identity(config, items, identity_dtype(config.dtype, model)))


def make_task(config: BleuConfig, model: ModelRef, base_dir: str | Path = ".") -> Task:
    """The check for `model`: its identity, the prompts as items (prompts and references travel with it)."""
    items, path = load_items(data_location(config, base_dir))
    dtype = identity_dtype(config.dtype, model)
    return Task(
        kind=KIND,
        name=f"bleu:{path.name}",
        config=identity(config, items, dtype),
        item_ids=tuple(it.id for it in items),
        inputs={"items": {it.id: [it.prompt, list(it.references)] for it in items}},
        provenance={"check": KIND, "dtype": dtype, "batch_size": model.batch_size, "data": str(path)},
        batch_size=model.batch_size,
    )


# -- reading back ----------------------------------------------------------------------------------------


@dataclass
class BleuSummary:
    """Corpus BLEU/chrF (0-100) of one model, with per-item sentence scores for paired comparisons.

    `per_item` maps item id -> sentence BLEU and `per_item_chrf` -> sentence chrF (higher is better; chrF
    is the steadier of the two on single sentences).
    """

    check_hash: str
    n_items: int
    n_target: int  # items in the data file
    bleu: float | None = None
    chrf: float | None = None
    bleu_signature: str | None = None
    chrf_signature: str | None = None
    per_item: dict[str, float] = field(default_factory=dict)
    per_item_chrf: dict[str, float] = field(default_factory=dict)
    metric: str = "bleu"
    higher_is_better: bool = True
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        names = (
            "check_hash",
            "n_items",
            "n_target",
            "bleu",
            "chrf",
            "bleu_signature",
            "chrf_signature",
            "metric",
            "higher_is_better",
            "per_item",
            "per_item_chrf",
            "provenance",
        )
        return {name: getattr(self, name) for name in names}


def bleu_scores(
    store: Store, model: ModelRef | str, config: BleuConfig, base_dir: str | Path = "."
) -> BleuSummary:
    """Corpus scores recomputed from the stored answers (no model is loaded). `model`: a ModelRef, or a bare
    fingerprint (the dtype is then the config's, as written)."""
    data_items, _ = load_items(data_location(config, base_dir))
    fingerprint = model if isinstance(model, str) else model.fingerprint
    digest = stored_hash(
        store, model, identity(config, data_items, identity_dtype(config.dtype, model)), content_hash
    )
    items = sorted(store.items(fingerprint, digest, with_data=True), key=lambda it: it.item_id)
    summary = BleuSummary(
        check_hash=digest,
        n_items=len(items),
        n_target=len(data_items),
        per_item={it.item_id: float(it.metrics["bleu"]) for it in items},
        per_item_chrf={it.item_id: float(it.metrics["chrf"]) for it in items},
        provenance=last_provenance(store, fingerprint, digest),
    )
    if items:
        scores = corpus_scores(
            [it.data["output"] for it in items], [it.data["references"] for it in items], config
        )
        summary.bleu, summary.chrf = scores.bleu, scores.chrf
        summary.bleu_signature, summary.chrf_signature = scores.bleu_signature, scores.chrf_signature
    return summary


# -- the check type ------------------------------------------------------------------------------------------


def _metric_specs(config: BleuConfig, prefix: str) -> list[MetricSpec]:
    def spec(name: str, display: str, key: str) -> MetricSpec:
        return MetricSpec(
            prefix + name,
            display,
            scale=1.0,
            range=(0.0, 100.0),
            higher_is_better=True,
            unit="0-100",
            metric_key=key,
            check=config.label,
            description=f"sacrebleu corpus {display} of greedy answers against references",
        )

    return [spec("bleu", "BLEU", "corpus_bleu"), spec("chrf", "chrF", "corpus_chrf")]


@check("bleu")
class Bleu(TextCheck[BleuConfig]):
    Config = BleuConfig
    description = "corpus BLEU and chrF (sacrebleu) of greedy answers against references"
    known_metrics = ("bleu", "chrf")

    metric_specs = staticmethod(_metric_specs)
    make_task = staticmethod(make_task)

    def load(self, config: BleuConfig, model: ModelRef, stage: str, env: RunEnv) -> AnswersEngine:
        return load_answers_engine(KIND, config, model)

    def evaluate(self, engine: AnswersEngine, task: Task, item_ids: Sequence[str]) -> Iterator[Batch]:
        config: BleuConfig = engine.config
        data = task.inputs["items"]
        # The signatures name the number of references, which the task's items fix: recorded with the run.
        stats = signatures([data[i][1] for i in task.item_ids], config)
        for chunk in engine.chunks(item_ids):
            prompts = [data[i][0] for i in chunk]
            answers = engine.generator.generate(prompts, config.generation, batch_size=engine.batch_size)
            items = [
                _item(i, data[i][0], data[i][1], answer, config)
                for i, answer in zip(chunk, answers, strict=True)
            ]
            yield Batch(items, stats=stats)

    def collect(self, config: BleuConfig, ctx: CheckContext) -> CheckData:
        data = self.check_data(config, ctx)
        per_model: dict[str, Any] = {}
        signatures_seen: dict[str, str | None] = {}
        for m in ctx.select(config.models):
            s = bleu_scores(ctx.store, m.ref, config, ctx.env.base_dir)
            _add_model(data, m, s)
            if s.n_items:
                signatures_seen = {"bleu": s.bleu_signature, "chrf": s.chrf_signature}
                per_model[m.name] = {
                    "check": s.check_hash,
                    "bleu": s.bleu,
                    "chrf": s.chrf,
                    "n_items": s.n_items,
                    "chat_template_used": s.provenance.get("chat_template_used"),
                }
        data.provenance = {
            "config": config.model_dump(mode="json"),
            "signatures": signatures_seen,
            "paired_on": "sentence BLEU and sentence chrF (sacrebleu) per item",
            "models": per_model,
        }
        return data


def run_bleu(
    store: Store, ref: ModelRef, config: BleuConfig | None = None, *, progress: Progress | None = None
) -> int:
    """Generate and score the items the store does not hold for `ref`; how many were stored now."""
    require_local(ref, KIND)
    return run_on_models(Bleu(), config or BleuConfig(), store, [(ref, "candidate")], progress)


def _item(item_id: str, prompt: str, references: list[str], answer: str, config: BleuConfig) -> ItemRow:
    return ItemRow(
        item_id,
        metrics=sentence_scores(answer, references, config),
        data={"prompt": prompt, "references": list(references), "output": answer},
    )


def _add_model(data: CheckData, m: PlanModel, s: BleuSummary) -> None:
    scores = data.scores.setdefault(m.name, {})
    scores["bleu"] = ScoreData(
        value=s.bleu, stderr=None, n=s.n_items, n_target=s.n_target, items=dict(s.per_item)
    )
    scores["chrf"] = ScoreData(
        value=s.chrf, stderr=None, n=s.n_items, n_target=s.n_target, items=dict(s.per_item_chrf)
    )
    note_missing(data, m, ["bleu", "chrf"], s.n_items, s.n_target)


__all__ = [
    "BUNDLED_DATA",
    "Bleu",
    "BleuConfig",
    "BleuSummary",
    "bleu_scores",
    "check_hash",
    "make_task",
    "run_bleu",
]
