"""BLEU and chrF of a model's generations against references, with sacrebleu.

The data is JSONL, one item per line: {"prompt": ..., "reference": "..." or ["...", "..."], "id": ...}
(id optional: the line number otherwise). The model answers every prompt greedily (see `_generate.py`), and
sacrebleu scores the answers:

- corpus BLEU and corpus chrF over all items: the numbers to report, with sacrebleu's signature (tokenizer,
  smoothing, casing, version), which says exactly how they were computed;
- sentence BLEU (effective order, so short sentences are not zeroed) and sentence chrF for every item, stored
  with the item (by `mergeval.checks.bleu`) so a merged model and its parents can be compared item by item.

Corpus BLEU is not the mean of sentence BLEUs (it pools n-gram counts over the corpus), so summaries compute
it again from the stored answers rather than averaging per-item numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mergeval.engines.text._common import bundled_file, item_id_for, read_jsonl, unique_ids
from mergeval.errors import UserError

BUNDLED_DATA = "translation_en_fr.jsonl"


class Scoring(Protocol):
    """How sacrebleu scores: its BLEU tokenizer ("13a", "intl", "zh", ...) and case-insensitivity."""

    tokenize: str
    lowercase: bool


def tokenizers() -> tuple[str, ...]:
    """sacrebleu's BLEU tokenizer names."""
    from sacrebleu.metrics.bleu import _TOKENIZERS

    return tuple(_TOKENIZERS)


@dataclass(frozen=True)
class ReferenceItem:
    id: str
    prompt: str
    references: tuple[str, ...]


def load_items(data: str | Path | None) -> tuple[list[ReferenceItem], Path]:
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


# -- scoring ----------------------------------------------------------------------------------------------


def _metrics(scoring: Scoring) -> tuple[Any, Any, Any, Any]:
    """(corpus BLEU, corpus chrF, sentence BLEU, sentence chrF) scorers configured alike."""
    from sacrebleu.metrics import BLEU, CHRF

    return (
        BLEU(tokenize=scoring.tokenize, lowercase=scoring.lowercase),
        CHRF(lowercase=scoring.lowercase),
        BLEU(tokenize=scoring.tokenize, lowercase=scoring.lowercase, effective_order=True),
        CHRF(lowercase=scoring.lowercase),
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
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], scoring: Scoring
) -> CorpusScores:
    """Corpus BLEU and chrF of answers against their references, with sacrebleu's signatures."""
    bleu, chrf, _, _ = _metrics(scoring)
    streams = reference_streams(references)
    return CorpusScores(
        bleu=bleu.corpus_score(list(hypotheses), streams).score,
        chrf=chrf.corpus_score(list(hypotheses), streams).score,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
    )


def signatures(references: Sequence[Sequence[str]], scoring: Scoring) -> dict[str, str]:
    """sacrebleu's signatures for scoring answers against `references` (they depend on the references only
    through their number, so they are known before any answer is)."""
    scores = corpus_scores([refs[0] for refs in references], references, scoring)
    return {"bleu_signature": scores.bleu_signature, "chrf_signature": scores.chrf_signature}


def sentence_scores(hypothesis: str, references: Sequence[str], scoring: Scoring) -> dict[str, float]:
    _, _, bleu, chrf = _metrics(scoring)
    return {
        "bleu": bleu.sentence_score(hypothesis, list(references)).score,
        "chrf": chrf.sentence_score(hypothesis, list(references)).score,
    }
