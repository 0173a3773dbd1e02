"""The text metrics in plans: the `perplexity`, `bleu` and `consistency` check types.

Each type turns its plan entry into the library config (`PerplexityConfig`, `BleuConfig`,
`ConsistencyConfig`), with plan-relative paths resolved and each model's dtype from the plan, then

  run():     `run_<check>` for every local model the check targets (only items the store lacks are computed);
  collect(): `<check>_scores` for every targeted model, read from the store (no model, no embedding model
             is loaded), as benchmark columns, per-item scores for the paired statistics, and facts.

What lands in the comparison:

| type          | benchmark (value)                            | per-item scores (paired tests)      | facts          |
|---------------|----------------------------------------------|-------------------------------------|----------------|
| `perplexity`  | `perplexity`: corpus word perplexity, lower  | each document's linearised share of | bits_per_byte  |
|               | is better                                    | word perplexity (see below)         |                |
| `bleu`        | `bleu`, `chrf`: sacrebleu corpus scores      | sentence BLEU, sentence chrF        |                |
| `consistency` | `consistency`: % of pairs answered           | 1 consistent / 0 conflict (McNemar) | conflict_rate  |
|               | consistently (100 - conflict rate)           |                                     |                |

Why perplexity pairs on linearised shares rather than on each document's bits per byte: the report puts a
bootstrap CI next to every value and the paired differences next to the differences of the values, both
computed from the per-item scores. Word perplexity pools all documents (exp of total negative
log-likelihood over total words), so it is no mean of per-document numbers; per-document bits per byte
would put a CI of about 1.5 next to a perplexity of 30. The linearisation (the delta method) gives every
document a number in perplexity units whose mean is exactly the corpus word perplexity, so the CI brackets
the value and a candidate-minus-parent difference of these means is exactly the difference of the two
perplexities. Corpus BLEU and chrF cannot be written that way without sacrebleu's internals, so their
paired tests use the sentence scores sacrebleu computes for every item (same 0-100 units; the mean of
sentence scores is close to, but not, the corpus score).

Facts (single numbers for gates such as `conflict_rate < 5%`) are only given for a model whose results are
complete, so a gate never passes on part of the data: it shows "not evaluated" until the run finishes.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

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
from mergeval.store import ItemRow
from mergeval.textmetrics.bleu import BleuConfig, bleu_scores, run_bleu
from mergeval.textmetrics.consistency import (
    BUNDLED_EMBEDDING_MODEL,
    ConsistencyConfig,
    consistency_scores,
    run_consistency,
)
from mergeval.textmetrics.perplexity import PerplexityConfig, perplexity_scores, run_perplexity

WIKITEXT = "wikitext"

# -- plan entries ----------------------------------------------------------------------------------------


def _base_dir(info: ValidationInfo) -> Path:
    return Path((info.context or {}).get("base_dir", "."))


def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


def _must_exist(path: str | None, info: ValidationInfo, key: str, what: str) -> str | None:
    """A data path of the plan must exist (relative paths start at the plan's folder)."""
    if path is not None and not _resolve(path, _base_dir(info)).exists():
        raise ValueError(
            f"{key} {path} does not exist (looked in {_resolve(path, _base_dir(info))}); point it at {what}, "
            f"or leave `{key}` out to use the bundled example"
        )
    return path


class _TextCheck(CheckConfig):
    models: Literal["all", "candidates"] | list[str] = Field(
        "all", description="which models to evaluate: all (default), candidates, or a list of names"
    )


class PerplexityCheck(_TextCheck):
    """`- type: perplexity`: word perplexity on a corpus with sliding windows (lower is better)."""

    type: Literal["perplexity"] = "perplexity"
    text: str | None = Field(
        None,
        description="a .txt/.md/.jsonl file or a folder of them, `wikitext`, or nothing for the bundled corpus",
    )
    context_length: int = Field(2048, ge=2, description="tokens per window")
    stride: int | None = Field(
        None, ge=1, description="new tokens predicted per window (default: context_length, no overlap)"
    )

    @field_validator("text")
    @classmethod
    def _text_exists(cls, text: str | None, info: ValidationInfo) -> str | None:
        if text == WIKITEXT:
            return text
        return _must_exist(text, info, "text", "your text file or folder")

    @model_validator(mode="after")
    def _stride_fits(self) -> PerplexityCheck:
        if self.stride is not None and self.stride > self.context_length:
            raise ValueError(
                f"stride {self.stride} is larger than context_length {self.context_length}: tokens between "
                "windows would never be scored; use a stride of at most the context length"
            )
        return self


class BleuCheck(_TextCheck):
    """`- type: bleu`: corpus BLEU and chrF (sacrebleu) of greedy answers against references."""

    type: Literal["bleu"] = "bleu"
    data: str | None = Field(
        None, description="JSONL of {prompt, reference(s), id?} (default: the bundled English->French set)"
    )
    max_new_tokens: int = Field(64, ge=1)
    chat: bool = Field(True, description="ask through the model's chat template when it has one")
    stop_at_newline: bool = Field(True, description="keep only the first line of each answer")
    tokenize: str = Field("13a", description="sacrebleu's BLEU tokenizer: 13a, intl, zh, ja-mecab, char, ...")
    lowercase: bool = False

    @field_validator("data")
    @classmethod
    def _data_exists(cls, data: str | None, info: ValidationInfo) -> str | None:
        return _must_exist(data, info, "data", "your JSONL file")

    @field_validator("tokenize")
    @classmethod
    def _known_tokenizer(cls, tokenize: str) -> str:
        from sacrebleu.metrics.bleu import _TOKENIZERS

        if tokenize not in _TOKENIZERS:
            raise ValueError(f"unknown sacrebleu tokenizer {tokenize!r}; use one of {', '.join(_TOKENIZERS)}")
        return tokenize


class ConsistencyCheck(_TextCheck):
    """`- type: consistency`: conflict detection on pairs of prompts that should agree (or differ)."""

    type: Literal["consistency"] = "consistency"
    pairs: str | None = Field(
        None,
        description="JSONL of {id?, prompt_a, prompt_b, answer?, expect?} (default: the bundled 26 pairs)",
    )
    max_new_tokens: int = Field(48, ge=1)
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
        return _must_exist(pairs, info, "pairs", "your JSONL file of prompt pairs")

    @field_validator("embedding_model")
    @classmethod
    def _embedding_folder_exists(cls, name: str, info: ValidationInfo) -> str:
        if name.startswith((".", "/", "~")) and not _resolve(name, _base_dir(info)).is_dir():
            raise ValueError(
                f"embedding_model {name} is not a folder (looked in {_resolve(name, _base_dir(info))}); give a "
                f"sentence-transformers model folder, a hub id, or leave it out for {BUNDLED_EMBEDDING_MODEL}"
            )
        return name


TextCheck = PerplexityCheck | BleuCheck | ConsistencyCheck


# -- plan entry -> library config ------------------------------------------------------------------------


def _data_path(path: str | None, plan: Plan) -> str | None:
    return None if path is None else str(plan.resolve_path(path))


def perplexity_config(check: PerplexityCheck, plan: Plan, dtype: str = "auto") -> PerplexityConfig:
    """The plan entry as a PerplexityConfig for a model loaded in `dtype` (part of the check's identity)."""
    text = check.text if check.text in (None, WIKITEXT) else _data_path(check.text, plan)
    return PerplexityConfig(text=text, context_length=check.context_length, stride=check.stride, dtype=dtype)


def bleu_config(check: BleuCheck, plan: Plan, dtype: str = "auto") -> BleuConfig:
    return BleuConfig(
        data=_data_path(check.data, plan),
        max_new_tokens=check.max_new_tokens,
        chat=check.chat,
        stop_at_newline=check.stop_at_newline,
        tokenize=check.tokenize,
        lowercase=check.lowercase,
        dtype=dtype,
    )


def consistency_config(check: ConsistencyCheck, plan: Plan, dtype: str = "auto") -> ConsistencyConfig:
    embedding = check.embedding_model
    if plan.resolve_path(embedding).is_dir():
        embedding = str(plan.resolve_path(embedding))  # a local folder next to the plan
    return ConsistencyConfig(
        pairs=_data_path(check.pairs, plan),
        max_new_tokens=check.max_new_tokens,
        chat=check.chat,
        stop_at_newline=check.stop_at_newline,
        embedding_model=embedding,
        dtype=dtype,
        similarity_threshold=check.similarity_threshold,
        differ_threshold=check.differ_threshold,
    )


_LIBRARY = {
    "perplexity": (perplexity_config, run_perplexity),
    "bleu": (bleu_config, run_bleu),
    "consistency": (consistency_config, run_consistency),
}


def _config_for(check: TextCheck, ctx: CheckContext, m: PlanModel) -> Any:
    make_config, _ = _LIBRARY[check.type]
    return make_config(check, ctx.plan, ctx.plan.dtype_of(m.spec))


# -- names: the benchmarks and facts each check provides ----------------------------------------------------

_BENCHMARKS = {"perplexity": ["perplexity"], "bleu": ["bleu", "chrf"], "consistency": ["consistency"]}
_FACTS = {"perplexity": ["bits_per_byte"], "bleu": [], "consistency": ["conflict_rate"]}


def _provides(check: TextCheck, plan: Plan) -> Provides:
    names = {m.name for m in plan.models}
    unknown = [n for n in (check.models if isinstance(check.models, list) else []) if n not in names]
    if unknown:
        raise UserError(
            f"the {check.type} check names unknown model(s) {', '.join(unknown)}; use names from `models:`, "
            "`all` or `candidates`"
        )
    prefix = metric_prefix(check, plan)
    return Provides(
        benchmarks=[prefix + b for b in _BENCHMARKS[check.type]],
        facts=[prefix + f for f in _FACTS[check.type]],
    )


# -- run ---------------------------------------------------------------------------------------------------


def _run(check: TextCheck, ctx: CheckContext) -> None:
    _, run = _LIBRARY[check.type]
    for m in ctx.select(check.models):
        if not m.runnable:
            why = "is an endpoint" if m.ref.kind == "endpoint" else "has no local weights"
            ctx.say(f"{check.label}: {m.name} {why}, skipped (the {check.type} check needs local weights)")
            continue
        run(ctx.store, m.ref, _config_for(check, ctx, m), progress=ctx.progress)


# -- collect -----------------------------------------------------------------------------------------------


def _not_there(m: PlanModel) -> str:
    if m.ref.kind == "endpoint":
        return "an endpoint cannot run this check (it needs local weights)"
    return "not evaluated yet"


def _note_missing(data: CheckData, m: PlanModel, benchmarks: list[str], n: int, n_target: int) -> None:
    """Missing entries for a model with no results, or fewer than the data has."""
    if n == 0:
        data.missing += [Missing(m.name, data.check, b, _not_there(m)) for b in benchmarks]
    elif n < n_target:
        data.missing += [
            Missing(m.name, data.check, b, f"incomplete: {n} of {n_target} items") for b in benchmarks
        ]


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


def _stderr(items: dict[str, float]) -> float | None:
    return statistics.stdev(items.values()) / math.sqrt(len(items)) if len(items) >= 2 else None


def _benchmark(check: TextCheck, name: str, display: str, metric_key: str, *, higher: bool, scale: float):
    """A comparison column of a text check (never part of the suite Average)."""
    return BenchmarkInfo(
        name=name,
        display=display,
        metric_key=metric_key,
        higher_is_better=higher,
        kind=check.type,
        scale=scale,
        in_average=False,
        check=check.label,
    )


def _collect_perplexity(check: PerplexityCheck, ctx: CheckContext) -> CheckData:
    label, prefix = check.label, metric_prefix(check, ctx.plan)
    data = CheckData(check=label, type=check.type)
    data.benchmarks.append(
        _benchmark(check, "perplexity", "Perplexity", "word_perplexity", higher=False, scale=1.0)
    )
    summaries = {
        m.name: perplexity_scores(ctx.store, m.fingerprint, _config_for(check, ctx, m))
        for m in ctx.select(check.models)
    }
    # wikitext is read back without its documents, so its size is the most documents any model has.
    n_target = next((s.n_target for s in summaries.values() if s.n_target is not None), None)
    n_target = (
        n_target if n_target is not None else max((s.n_documents for s in summaries.values()), default=0)
    )
    per_model: dict[str, Any] = {}
    for m in ctx.select(check.models):
        s = summaries[m.name]
        items = word_perplexity_shares(ctx.store.items(m.fingerprint, s.check_hash)) if s.totals else {}
        data.scores.setdefault(m.name, {})["perplexity"] = ScoreData(
            value=s.word_perplexity, stderr=_stderr(items), n=s.n_documents, n_target=n_target, items=items
        )
        _note_missing(data, m, ["perplexity"], s.n_documents, n_target)
        if s.totals is not None and s.n_documents >= n_target:
            data.facts.setdefault(m.name, {})[prefix + "bits_per_byte"] = s.bits_per_byte
        if s.totals is not None:
            per_model[m.name] = {
                "check": s.check_hash,
                "word_perplexity": s.word_perplexity,
                "bits_per_byte": s.bits_per_byte,
                "byte_perplexity": s.byte_perplexity,
                "token_perplexity": s.token_perplexity,
                "n_documents": s.n_documents,
                "corpus": s.provenance.get("corpus"),
                "lm_eval_version": s.provenance.get("lm_eval_version"),
            }
    data.provenance = {
        "config": check.model_dump(mode="json"),
        "paired_on": "each document's linearised share of word perplexity (mean = corpus word perplexity)",
        "models": per_model,
    }
    return data


def _collect_bleu(check: BleuCheck, ctx: CheckContext) -> CheckData:
    label = check.label
    data = CheckData(check=label, type=check.type)
    data.benchmarks += [
        _benchmark(check, "bleu", "BLEU", "corpus_bleu", higher=True, scale=1.0),
        _benchmark(check, "chrf", "chrF", "corpus_chrf", higher=True, scale=1.0),
    ]
    per_model: dict[str, Any] = {}
    signatures: dict[str, str | None] = {}
    for m in ctx.select(check.models):
        s = bleu_scores(ctx.store, m.fingerprint, _config_for(check, ctx, m))
        scores = data.scores.setdefault(m.name, {})
        scores["bleu"] = ScoreData(
            value=s.bleu, stderr=None, n=s.n_items, n_target=s.n_target, items=dict(s.per_item)
        )
        scores["chrf"] = ScoreData(
            value=s.chrf, stderr=None, n=s.n_items, n_target=s.n_target, items=dict(s.per_item_chrf)
        )
        _note_missing(data, m, ["bleu", "chrf"], s.n_items, s.n_target)
        if s.n_items:
            signatures = {"bleu": s.bleu_signature, "chrf": s.chrf_signature}
            per_model[m.name] = {
                "check": s.check_hash,
                "bleu": s.bleu,
                "chrf": s.chrf,
                "n_items": s.n_items,
                "chat_template_used": s.provenance.get("chat_template_used"),
            }
    data.provenance = {
        "config": check.model_dump(mode="json"),
        "signatures": signatures,
        "paired_on": "sentence BLEU and sentence chrF (sacrebleu) per item",
        "models": per_model,
    }
    return data


def _collect_consistency(check: ConsistencyCheck, ctx: CheckContext) -> CheckData:
    label, prefix = check.label, metric_prefix(check, ctx.plan)
    data = CheckData(check=label, type=check.type)
    data.benchmarks.append(
        _benchmark(check, "consistency", "Consistency", "consistent_pairs", higher=True, scale=100.0)
    )
    per_model: dict[str, Any] = {}
    for m in ctx.select(check.models):
        s = consistency_scores(ctx.store, m.fingerprint, _config_for(check, ctx, m))
        rate = s.conflict_rate
        stderr = None if rate is None else 100 * math.sqrt(rate * (1 - rate) / s.n_pairs)
        data.scores.setdefault(m.name, {})["consistency"] = ScoreData(
            value=None if rate is None else 100 * (1 - rate),
            stderr=stderr,
            n=s.n_pairs,
            n_target=s.n_target,
            items=dict(s.per_item),
        )
        _note_missing(data, m, ["consistency"], s.n_pairs, s.n_target)
        if rate is not None and s.n_pairs >= s.n_target:
            data.facts.setdefault(m.name, {})[prefix + "conflict_rate"] = rate
        if s.n_pairs:
            per_model[m.name] = {
                "check": s.check_hash,
                "conflict_rate": rate,
                "n_pairs": s.n_pairs,
                "mean_similarity": s.mean_similarity,
                "conflicts": {pair: s.reasons[pair] for pair in s.conflicts},
            }
    data.provenance = {
        "config": check.model_dump(mode="json"),
        "paired_on": "1 consistent / 0 conflict per pair (exact McNemar)",
        "models": per_model,
    }
    return data


# -- registration ------------------------------------------------------------------------------------------

register_check(
    CheckType(
        name="perplexity",
        config=PerplexityCheck,
        run=_run,
        collect=_collect_perplexity,
        provides=_provides,
        description="word perplexity on a corpus with sliding windows (lower is better), bits per byte",
        metrics=("perplexity", "bits_per_byte"),
    )
)
register_check(
    CheckType(
        name="bleu",
        config=BleuCheck,
        run=_run,
        collect=_collect_bleu,
        provides=_provides,
        description="corpus BLEU and chrF (sacrebleu) of greedy answers against references",
        metrics=("bleu", "chrf"),
    )
)
register_check(
    CheckType(
        name="consistency",
        config=ConsistencyCheck,
        run=_run,
        collect=_collect_consistency,
        provides=_provides,
        description="conflict detection: pairs of prompts whose answers should agree (or differ)",
        metrics=("consistency", "conflict_rate"),
    )
)

__all__ = [
    "BleuCheck",
    "ConsistencyCheck",
    "PerplexityCheck",
    "bleu_config",
    "consistency_config",
    "perplexity_config",
    "word_perplexity_shares",
]
