"""BLEU and chrF of a model's generations against references, with sacrebleu.

The data is JSONL, one item per line: {"prompt": ..., "reference": "..." or ["...", "..."], "id": ...}
(id optional: the line number otherwise). The model answers every prompt greedily (see `_generate.py`), and
sacrebleu scores the answers:

- corpus BLEU and corpus chrF over all items: the numbers to report, with sacrebleu's signature (tokenizer,
  smoothing, casing, version), which says exactly how they were computed;
- sentence BLEU (effective order, so short sentences are not zeroed) and sentence chrF for every item,
  stored with the item so a merged model and its parents can be compared item by item.

Corpus BLEU is not the mean of sentence BLEUs (it pools n-gram counts over the corpus), so the summary
computes it again from the stored answers rather than averaging per-item numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mergeval.errors import UserError
from mergeval.harness import TaskProgress
from mergeval.models import ModelRef, chat_template_hash
from mergeval.store import ItemRow, Store
from mergeval.textmetrics._common import (
    TEXTMETRICS_VERSION,
    bundled_file,
    check_dtype,
    item_id_for,
    last_provenance,
    model_fingerprint,
    positive_int,
    read_jsonl,
    require_local,
    run_missing_items,
    stable_hash,
    unique_ids,
    with_dtype,
)
from mergeval.textmetrics._generate import GenerationSettings, Generator

KIND = "bleu"
BUNDLED_DATA = "translation_en_fr.jsonl"


@dataclass(frozen=True)
class BleuConfig:
    """What a BLEU/chrF check measures. Every field is part of the check's identity.

    data: a JSONL file of {prompt, reference (a string or a list of strings), id?}; None for the bundled
        English->French example (10 sentences: a smoke test, too small for conclusions).
    tokenize: sacrebleu's BLEU tokenizer ("13a" is the WMT default; "zh", "ja-mecab", "char", "intl", ...).
    lowercase: case-insensitive BLEU and chrF.
    """

    data: str | None = None
    max_new_tokens: int = 64
    chat: bool = True
    stop_at_newline: bool = True
    tokenize: str = "13a"
    lowercase: bool = False
    dtype: str = "auto"

    @property
    def generation(self) -> GenerationSettings:
        return GenerationSettings(self.max_new_tokens, self.chat, self.stop_at_newline)

    def validate(self) -> None:
        from sacrebleu.metrics.bleu import _TOKENIZERS

        positive_int(self.max_new_tokens, "--max-new-tokens")
        check_dtype(self.dtype)
        if self.tokenize not in _TOKENIZERS:
            raise UserError(
                f"Unknown sacrebleu tokenizer {self.tokenize!r}. Use one of: {', '.join(_TOKENIZERS)}."
            )


@dataclass(frozen=True)
class ReferenceItem:
    id: str
    prompt: str
    references: tuple[str, ...]


def load_items(data: str | None) -> tuple[list[ReferenceItem], Path]:
    """The items of a BLEU data file (or the bundled example), validated line by line."""
    path = bundled_file(BUNDLED_DATA) if data is None else Path(data).expanduser()
    items = []
    for line_no, obj in read_jsonl(path, required=("prompt",), what="BLEU data"):
        reference = obj.get("reference", obj.get("references"))
        references = [reference] if isinstance(reference, str) else reference
        if (
            not isinstance(references, list)
            or not references
            or not all(isinstance(r, str) and r.strip() for r in references)
        ):
            raise UserError(
                f'{path}:{line_no} needs a "reference": a non-empty string, or a list of non-empty strings '
                "when there are several references."
            )
        items.append(ReferenceItem(item_id_for(obj, line_no), obj["prompt"], tuple(references)))
    unique_ids([it.id for it in items], path)
    return items, path


def _check_config(config: BleuConfig, items: Sequence[ReferenceItem]) -> dict[str, Any]:
    content = [[it.id, it.prompt, list(it.references)] for it in items]
    return {
        "engine": "mergeval-textmetrics",
        "kind": KIND,
        "version": TEXTMETRICS_VERSION,
        "data_sha": stable_hash(content),
        "n_items": len(items),
        "generation": config.generation.identity(),
        "tokenize": config.tokenize,
        "lowercase": config.lowercase,
        "dtype": config.dtype,
    }


def check_hash(config: BleuConfig) -> str:
    config.validate()
    items, _ = load_items(config.data)
    return stable_hash(_check_config(config, items))


def check_name(config: BleuConfig, path: Path | None = None) -> str:
    return f"bleu:{(path or Path(config.data or BUNDLED_DATA)).name}"


# -- scoring ----------------------------------------------------------------------------------------------


def _metrics(config: BleuConfig) -> tuple[Any, Any, Any, Any]:
    """(corpus BLEU, corpus chrF, sentence BLEU, sentence chrF) scorers configured alike."""
    from sacrebleu.metrics import BLEU, CHRF

    return (
        BLEU(tokenize=config.tokenize, lowercase=config.lowercase),
        CHRF(lowercase=config.lowercase),
        BLEU(tokenize=config.tokenize, lowercase=config.lowercase, effective_order=True),
        CHRF(lowercase=config.lowercase),
    )


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacrebleu's layout: one stream per reference position; items with fewer references get None."""
    width = max(len(refs) for refs in references)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]


@dataclass(frozen=True)
class CorpusScores:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str


def corpus_scores(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], config: BleuConfig
) -> CorpusScores:
    """Corpus BLEU and chrF of answers against their references, with sacrebleu's signatures."""
    bleu, chrf, _, _ = _metrics(config)
    streams = reference_streams(references)
    return CorpusScores(
        bleu=bleu.corpus_score(list(hypotheses), streams).score,
        chrf=chrf.corpus_score(list(hypotheses), streams).score,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
    )


def sentence_scores(hypothesis: str, references: Sequence[str], config: BleuConfig) -> dict[str, float]:
    _, _, bleu, chrf = _metrics(config)
    return {
        "bleu": bleu.sentence_score(hypothesis, list(references)).score,
        "chrf": chrf.sentence_score(hypothesis, list(references)).score,
    }


# -- running and reading back -----------------------------------------------------------------------------


def run_bleu(store: Store, ref: ModelRef, config: BleuConfig, *, progress: TaskProgress | None = None) -> int:
    """Generate and score the items the store does not hold for this model; return how many."""
    config.validate()
    require_local(ref, KIND)
    items, path = load_items(config.data)
    check_config = _check_config(config, items)
    by_id = {it.id: it for it in items}

    def load(provenance: dict[str, Any]) -> tuple[Generator, dict[str, Any]]:
        generator = Generator(with_dtype(ref, config.dtype))
        provenance.update(
            device=generator.device,
            chat_template_used=config.chat and generator.has_chat_template,
            chat_template_hash=chat_template_hash(ref.path),
        )
        return generator, provenance

    def compute(missing: list[str], loaded: tuple[Generator, dict[str, Any]]) -> Iterator[list[ItemRow]]:
        generator, provenance = loaded
        for start in range(0, len(missing), ref.batch_size):
            chunk = [by_id[i] for i in missing[start : start + ref.batch_size]]
            answers = generator.generate(
                [it.prompt for it in chunk], config.generation, batch_size=ref.batch_size
            )
            yield [
                ItemRow(
                    it.id,
                    metrics=sentence_scores(answer, it.references, config),
                    data={"prompt": it.prompt, "references": list(it.references), "output": answer},
                )
                for it, answer in zip(chunk, answers, strict=True)
            ]
        # Every item is stored now: record how the corpus numbers are computed (sacrebleu knows its
        # signature only after scoring, since it names the number of references).
        summary = bleu_scores(store, ref, config)
        provenance.update(bleu_signature=summary.bleu_signature, chrf_signature=summary.chrf_signature)

    return run_missing_items(
        store,
        ref,
        kind=KIND,
        name=check_name(config, path),
        check_hash=stable_hash(check_config),
        check_config=check_config,
        item_ids=list(by_id),
        load=load,
        compute=compute,
        progress=progress,
        provenance={"data": str(path)},
    )


@dataclass
class BleuSummary:
    """Corpus BLEU/chrF (0-100) of one model, with per-item sentence scores for paired comparisons.

    `per_item` maps item id -> sentence BLEU and `per_item_chrf` -> sentence chrF (higher is better; chrF
    is the steadier of the two on single sentences).
    """

    check_hash: str
    n_items: int
    n_target: int  # items in the data file
    bleu: float | None
    chrf: float | None
    bleu_signature: str | None
    chrf_signature: str | None
    per_item: dict[str, float] = field(default_factory=dict)
    per_item_chrf: dict[str, float] = field(default_factory=dict)
    metric: str = "bleu"
    higher_is_better: bool = True
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            key: getattr(self, key)
            for key in (
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
        }


def bleu_scores(store: Store, model: ModelRef | str, config: BleuConfig) -> BleuSummary:
    """Corpus scores recomputed from the stored answers (no model is loaded)."""
    config.validate()
    fingerprint = model_fingerprint(model)
    data_items, _ = load_items(config.data)
    digest = stable_hash(_check_config(config, data_items))
    items = sorted(store.items(fingerprint, digest, with_data=True), key=lambda it: it.item_id)
    summary = BleuSummary(
        check_hash=digest,
        n_items=len(items),
        n_target=len(data_items),
        bleu=None,
        chrf=None,
        bleu_signature=None,
        chrf_signature=None,
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
