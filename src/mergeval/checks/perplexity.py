"""The `perplexity` check type: word perplexity of a corpus with sliding windows (lower is better).

One item per document (its summed log-likelihood and its token, word and byte counts); the engine is
`mergeval.engines.text.perplexity` (lm-eval's windows and HFLM). In a comparison:

- benchmark `perplexity`: the corpus word perplexity (lower is better);
- per-item scores for the paired statistics: each document's linearised share of word perplexity;
- fact `bits_per_byte` (corpus), only for a model whose documents are all stored.

Why linearised shares rather than each document's bits per byte: the report puts a bootstrap CI next to every
value and the paired differences next to the differences of the values, both computed from the per-item
scores. Word perplexity pools all documents (exp of total negative log-likelihood over total words), so it is
no mean of per-document numbers; per-document bits per byte would put a CI of about 1.5 next to a perplexity
of 30. The linearisation (the delta method) gives every document a number in perplexity units whose mean is
exactly the corpus word perplexity, so the CI brackets the value and a candidate-minus-parent difference of
these means is exactly the difference of the two perplexities.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mergeval.checks._text import (
    TextCheck,
    TextCheckConfig,
    identity_dtype,
    last_provenance,
    must_exist,
    note_missing,
    resolve,
    run_on_models,
    stderr_of,
)
from mergeval.core.check import Batch, MetricSpec, Task
from mergeval.core.context import CheckContext, PlanModel, RunEnv
from mergeval.core.identity import content_hash
from mergeval.core.progress import Progress
from mergeval.core.registry import check
from mergeval.core.results import CheckData, ScoreData
from mergeval.dtypes import stored_hash
from mergeval.engines.text._common import TEXTMETRICS_VERSION, require_local, with_dtype
from mergeval.engines.text._corpus import (
    BUNDLED,
    WIKITEXT,
    Document,
    corpus_identity,
    load_corpus,
    wikitext_identity,
)
from mergeval.engines.text.perplexity import PerplexityScorer, PerplexityTotals
from mergeval.models import ModelRef
from mergeval.store import ItemRow, Store

KIND = "perplexity"


class PerplexityConfig(TextCheckConfig):
    """`- type: perplexity`: word perplexity on a corpus with sliding windows (lower is better). Every option
    but `models` is part of the check's identity (the dtype as the model is really loaded in)."""

    type: Literal["perplexity"] = "perplexity"
    text: str | None = Field(
        None,
        description="a .txt/.md/.jsonl file or a folder of them, `wikitext`, or nothing for the bundled "
        "corpus",
    )
    context_length: int = Field(2048, ge=2, description="tokens per window")
    stride: int | None = Field(
        None, ge=1, description="new tokens predicted per window (default: context_length, no overlap)"
    )

    @field_validator("text")
    @classmethod
    def _text_exists(cls, text: str | None, info: ValidationInfo) -> str | None:
        if text in (WIKITEXT, BUNDLED):
            return text
        return must_exist(text, info, "text", "your text file or folder (or `wikitext`)")

    @model_validator(mode="after")
    def _stride_fits(self) -> PerplexityConfig:
        if self.stride is not None and self.stride > self.context_length:
            raise ValueError(
                f"the stride {self.stride} is larger than context_length {self.context_length}: tokens "
                "between windows would never be scored; use a stride of at most the context length"
            )
        return self

    @property
    def window_stride(self) -> int:
        return self.context_length if self.stride is None else self.stride


# -- identity ----------------------------------------------------------------------------------------------


def text_location(config: PerplexityConfig, base_dir: str | Path = ".") -> str | None:
    """Where the corpus is read from: None (bundled), `wikitext`, or the path relative to `base_dir`."""
    if config.text in (None, BUNDLED, WIKITEXT):
        return config.text
    return str(resolve(config.text, Path(base_dir)))


def identity(config: PerplexityConfig, corpus: dict[str, Any], dtype: str) -> dict[str, Any]:
    """The stored check config: corpus content, window geometry, dtype (never thresholds or batch size)."""
    return {
        "engine": "mergeval-textmetrics",
        "kind": KIND,
        "version": TEXTMETRICS_VERSION,
        "corpus": corpus,
        "context_length": config.context_length,
        "stride": config.window_stride,
        "windows": "lm-eval get_rolling_token_windows + make_disjoint_window",
        "dtype": dtype,
    }


def check_hash(config: PerplexityConfig, model: ModelRef | None = None, base_dir: str | Path = ".") -> str:
    """The check's store hash; with `model`, for the dtype its weights are loaded in (`auto` resolved)."""
    corpus = corpus_identity(text_location(config, base_dir))
    return content_hash(identity(config, corpus, identity_dtype(config.dtype, model)))


def check_name(config: PerplexityConfig, corpus_label: str) -> str:
    stride = "" if config.window_stride == config.context_length else f"/{config.window_stride}"
    return f"perplexity:{corpus_label}@{config.context_length}{stride}"


def make_task(config: PerplexityConfig, model: ModelRef, base_dir: str | Path = ".") -> Task:
    """The check for `model`: its identity, the documents as items (their text travels with the task)."""
    corpus = load_corpus(text_location(config, base_dir))
    dtype = identity_dtype(config.dtype, model)
    return Task(
        kind=KIND,
        name=check_name(config, corpus.label),
        config=identity(config, corpus.identity, dtype),
        item_ids=tuple(d.id for d in corpus.documents),
        inputs={"documents": {d.id: [d.text, d.count_text] for d in corpus.documents}},
        provenance={
            "check": KIND,
            "dtype": dtype,
            "batch_size": model.batch_size,
            "corpus": corpus.label,
            "corpus_source": corpus.source,
            "context_length": config.context_length,
            "stride": config.window_stride,
        },
        batch_size=model.batch_size,
    )


# -- reading back ----------------------------------------------------------------------------------------


@dataclass
class PerplexitySummary:
    """Corpus perplexities of one model, and its per-document bits per byte for paired comparisons.

    token_perplexity only compares models with the same tokenizer; word_perplexity, byte_perplexity and
    bits_per_byte compare any models. `per_item` maps document id -> bits per byte (lower is better).
    """

    check_hash: str
    n_documents: int
    n_target: int | None  # documents in the corpus (None for wikitext, which is not loaded to read results)
    totals: PerplexityTotals | None
    per_item: dict[str, float] = field(default_factory=dict)
    metric: str = "bits_per_byte"
    higher_is_better: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)

    def _value(self, name: str) -> float | None:
        return getattr(self.totals, name) if self.totals is not None else None

    @property
    def token_perplexity(self) -> float | None:
        return self._value("token_perplexity")

    @property
    def word_perplexity(self) -> float | None:
        return self._value("word_perplexity")

    @property
    def byte_perplexity(self) -> float | None:
        return self._value("byte_perplexity")

    @property
    def bits_per_byte(self) -> float | None:
        return self._value("bits_per_byte")

    def to_dict(self) -> dict[str, Any]:
        names = (
            "check_hash",
            "n_documents",
            "n_target",
            "metric",
            "higher_is_better",
            "token_perplexity",
            "word_perplexity",
            "byte_perplexity",
            "bits_per_byte",
            "per_item",
            "provenance",
        )
        return {name: getattr(self, name) for name in names}


def _totals(row: ItemRow) -> PerplexityTotals:
    m = row.metrics
    return PerplexityTotals(
        float(m["loglikelihood"]), int(m["n_tokens"]), int(m["n_words"]), int(m["n_bytes"])
    )


def perplexity_scores(
    store: Store, model: ModelRef | str, config: PerplexityConfig, base_dir: str | Path = "."
) -> PerplexitySummary:
    """Aggregate what the store holds for this model and check (no model is loaded). `model`: a ModelRef, or
    a bare fingerprint (the dtype is then the config's, as written)."""
    location = text_location(config, base_dir)
    if location == WIKITEXT:  # known by name: read back offline, without the documents
        corpus, n_target = wikitext_identity(), None
    else:
        loaded = load_corpus(location)
        corpus, n_target = loaded.identity, len(loaded.documents)
    fingerprint = model if isinstance(model, str) else model.fingerprint
    digest = stored_hash(
        store, model, identity(config, corpus, identity_dtype(config.dtype, model)), content_hash
    )
    parts = {it.item_id: _totals(it) for it in store.items(fingerprint, digest)}
    return PerplexitySummary(
        check_hash=digest,
        n_documents=len(parts),
        n_target=n_target,
        totals=PerplexityTotals.sum(list(parts.values())) if parts else None,
        per_item={item_id: t.bits_per_byte for item_id, t in sorted(parts.items())},
        provenance=last_provenance(store, fingerprint, digest),
    )


def word_perplexity_shares(rows: list[ItemRow]) -> dict[str, float]:
    """Per-document numbers whose mean is exactly the corpus word perplexity (its linearisation).

    Word perplexity P = exp(NLL / W) pools the documents (NLL: total negative log-likelihood, W: total
    words, n documents). Document i gets P * (1 + (nll_i - w_i * NLL / W) / (W / n)): P plus its influence
    on P to first order (the delta method). The corrections sum to zero, so the mean over the documents is P;
    the mean of two models' paired differences is the difference of their perplexities; the bootstrap over
    documents gives the delta-method confidence interval.
    """
    nll = {r.item_id: -float(r.metrics["loglikelihood"]) for r in rows}
    words = {r.item_id: int(r.metrics["n_words"]) for r in rows}
    total_nll, total_words = math.fsum(nll.values()), sum(words.values())
    if not rows or total_words == 0:
        return {}
    perplexity = math.exp(total_nll / total_words)
    per_word = total_nll / total_words
    mean_words = total_words / len(rows)
    return {i: perplexity * (1 + (nll[i] - words[i] * per_word) / mean_words) for i in sorted(nll)}


# -- the check type ------------------------------------------------------------------------------------------


def _metric_specs(config: PerplexityConfig, prefix: str) -> list[MetricSpec]:
    return [
        MetricSpec(
            prefix + "perplexity",
            "Perplexity",
            scale=1.0,
            range=(None, None),
            higher_is_better=False,
            unit="ppl",
            metric_key="word_perplexity",
            check=config.label,
            description="corpus word perplexity with sliding windows",
        ),
        MetricSpec(
            prefix + "bits_per_byte",
            "Bits per byte",
            kind="fact",
            scale=1.0,
            range=(0.0, None),
            higher_is_better=False,
            unit="bits/byte",
            metric_key="bits_per_byte",
            check=config.label,
            description="corpus bits per byte (comparable across tokenizers)",
        ),
    ]


@dataclass
class _Engine:
    scorer: PerplexityScorer
    config: PerplexityConfig


@check("perplexity")
class Perplexity(TextCheck[PerplexityConfig]):
    Config = PerplexityConfig
    description = "word perplexity on a corpus with sliding windows (lower is better), bits per byte"
    known_metrics = ("perplexity", "bits_per_byte")

    metric_specs = staticmethod(_metric_specs)
    make_task = staticmethod(make_task)

    def load(self, config: PerplexityConfig, model: ModelRef, stage: str, env: RunEnv) -> _Engine:
        require_local(model, KIND)
        return _Engine(PerplexityScorer(with_dtype(model, config.dtype), config.context_length), config)

    def evaluate(self, engine: _Engine, task: Task, item_ids: Sequence[str]) -> Iterator[Batch]:
        texts = task.inputs["documents"]
        documents = [Document(i, *texts[i]) for i in item_ids]
        config = engine.config
        for scored in engine.scorer.score(
            documents, context_length=config.context_length, stride=config.window_stride
        ):
            yield Batch([_item(doc, totals, n_windows) for doc, totals, n_windows in scored])

    def provenance(self, engine: _Engine, task: Task) -> dict[str, Any]:
        return engine.scorer.facts

    def collect(self, config: PerplexityConfig, ctx: CheckContext) -> CheckData:
        data = self.check_data(config, ctx)
        models = ctx.select(config.models)
        summaries = {m.name: perplexity_scores(ctx.store, m.ref, config, ctx.env.base_dir) for m in models}
        # wikitext is read back without its documents, so its size is the most documents any model has.
        n_target = next((s.n_target for s in summaries.values() if s.n_target is not None), None)
        if n_target is None:
            n_target = max((s.n_documents for s in summaries.values()), default=0)
        per_model = {m.name: _add_model(data, ctx, m, summaries[m.name], n_target) for m in models}
        data.provenance = {
            "config": config.model_dump(mode="json"),
            "paired_on": "each document's linearised share of word perplexity "
            "(mean = corpus word perplexity)",
            "models": {name: facts for name, facts in per_model.items() if facts is not None},
        }
        return data


def run_perplexity(
    store: Store, ref: ModelRef, config: PerplexityConfig | None = None, *, progress: Progress | None = None
) -> int:
    """Score the documents of the corpus the store does not hold for `ref`; how many were stored now. The
    model is loaded only when something is missing."""
    require_local(ref, KIND)
    return run_on_models(Perplexity(), config or PerplexityConfig(), store, [(ref, "candidate")], progress)


def _item(doc: Document, t: PerplexityTotals, n_windows: int) -> ItemRow:
    metrics = {
        "loglikelihood": t.loglikelihood,
        "n_tokens": t.n_tokens,
        "n_words": t.n_words,
        "n_bytes": t.n_bytes,
        "bits_per_byte": t.bits_per_byte,
    }
    return ItemRow(doc.id, metrics=metrics, data={"n_windows": n_windows, "preview": doc.text[:80]})


def _add_model(
    data: CheckData, ctx: CheckContext, m: PlanModel, s: PerplexitySummary, n_target: int
) -> dict[str, Any] | None:
    """One model's score, missing entries and facts into `data`; its provenance entry (None: no results)."""
    items = word_perplexity_shares(ctx.store.items(m.fingerprint, s.check_hash)) if s.totals else {}
    data.scores.setdefault(m.name, {})["perplexity"] = ScoreData(
        value=s.word_perplexity, stderr=stderr_of(items), n=s.n_documents, n_target=n_target, items=items
    )
    note_missing(data, m, ["perplexity"], s.n_documents, n_target)
    if s.totals is None:
        return None
    if s.n_documents >= n_target:
        data.facts.setdefault(m.name, {})[data.fact_specs[0].name] = s.bits_per_byte
    return {
        "check": s.check_hash,
        "word_perplexity": s.word_perplexity,
        "bits_per_byte": s.bits_per_byte,
        "byte_perplexity": s.byte_perplexity,
        "token_perplexity": s.token_perplexity,
        "n_documents": s.n_documents,
        "corpus": s.provenance.get("corpus"),
        "lm_eval_version": s.provenance.get("lm_eval_version"),
    }


__all__ = [
    "Perplexity",
    "PerplexityConfig",
    "PerplexitySummary",
    "check_hash",
    "make_task",
    "perplexity_scores",
    "run_perplexity",
    "word_perplexity_shares",
]
