"""Perplexity on a text corpus with sliding windows, comparable across tokenizers.

Why sliding windows: "exp of one forward's loss" is only right for text that fits the context. Longer
documents are cut into windows of `context_length` tokens; each window predicts `stride` new tokens and
conditions on the tokens just before them. The windows are lm-eval's own (`get_rolling_token_windows`,
`make_disjoint_window`) and are scored by lm-eval's HFLM (`_loglikelihood_tokens`, the function behind its
`loglikelihood_rolling`). So:

- stride = context_length (the default) gives lm-eval's non-overlapping windows: the first window predicts
  its first token from the model's prefix token (BOS, or EOS when there is none), each later window sees
  one token of the previous window. The numbers equal lm-eval's `loglikelihood_rolling` run with
  `max_length = context_length`, to floating-point noise (tests/textmetrics checks it).
- stride < context_length overlaps the windows: every predicted token after the first window then sees at
  least `context_length - stride` tokens of context, which gives lower (better) and more realistic
  perplexities for long documents, at `context_length / stride` times the compute.

Why three normalisations: token perplexity depends on the tokenizer (a model with a larger vocabulary
predicts fewer, harder tokens), so it only compares models that share a tokenizer. Word perplexity and
bits per byte divide the same total log-likelihood by the number of words (lm-eval's whitespace split) or
UTF-8 bytes of the text, which are the same for every model: those compare any two models fairly.

Each document is one stored item: metrics {loglikelihood, n_tokens, n_words, n_bytes, bits_per_byte}.
Corpus numbers are sums over documents (lm-eval's weighted aggregation), and a document's bits per byte
is the per-item score that compare pairs between a merged model and its parents (lower is better).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mergeval.errors import UserError
from mergeval.harness import TaskProgress, make_lm
from mergeval.models import ModelRef
from mergeval.store import ItemRow, Store
from mergeval.textmetrics._common import (
    TEXTMETRICS_VERSION,
    check_dtype,
    last_provenance,
    model_fingerprint,
    positive_int,
    require_local,
    run_missing_items,
    stable_hash,
    with_dtype,
)
from mergeval.textmetrics._corpus import (
    WIKITEXT,
    Corpus,
    Document,
    corpus_identity,
    load_corpus,
    wikitext_identity,
)

KIND = "perplexity"
# Plain lm-eval HFLM: it is the reference these numbers must equal, and rolling windows share no prefixes
# for mergeval-hf's prefix cache to reuse.
BACKEND = "hf"


@dataclass(frozen=True)
class PerplexityConfig:
    """What a perplexity check measures. Every field is part of the check's identity.

    text: None for the bundled corpus, "wikitext" for wikitext-2 (test) from the hub or a mirror, or a
        .txt/.md/.jsonl file (jsonl: a "text" field, optional "id") or a folder of such files.
    context_length: tokens per window (the model must accept that many positions).
    stride: new tokens predicted per window; None means context_length (lm-eval's non-overlapping windows).
    dtype: the dtype the model is loaded in for this check (it wins over the ModelRef's).
    """

    text: str | None = None
    context_length: int = 2048
    stride: int | None = None
    dtype: str = "auto"

    @property
    def window_stride(self) -> int:
        return self.context_length if self.stride is None else self.stride

    def validate(self) -> None:
        positive_int(self.context_length, "--context-length")
        check_dtype(self.dtype)
        if self.context_length < 2:
            raise UserError("--context-length must be at least 2 tokens.")
        positive_int(self.window_stride, "--stride")
        if self.window_stride > self.context_length:
            raise UserError(
                f"--stride {self.window_stride} is larger than --context-length {self.context_length}; "
                "tokens between windows would never be scored. Use a stride of at most the context length."
            )


def _check_config(config: PerplexityConfig, identity: dict[str, Any]) -> dict[str, Any]:
    return {
        "engine": "mergeval-textmetrics",
        "kind": KIND,
        "version": TEXTMETRICS_VERSION,
        "corpus": identity,
        "context_length": config.context_length,
        "stride": config.window_stride,
        "windows": "lm-eval get_rolling_token_windows + make_disjoint_window",
        "dtype": config.dtype,
    }


def check_hash(config: PerplexityConfig) -> str:
    """The check's identity: corpus content, window geometry, dtype (never thresholds or batch size)."""
    config.validate()
    return stable_hash(_check_config(config, corpus_identity(config.text)))


def check_name(config: PerplexityConfig, corpus_label: str | None = None) -> str:
    label = corpus_label or ("bundled" if config.text is None else config.text)
    stride = "" if config.window_stride == config.context_length else f"/{config.window_stride}"
    return f"perplexity:{label}@{config.context_length}{stride}"


# -- the numbers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerplexityTotals:
    """Summed log-likelihood (natural log) and the counts it is normalised by, for one or many documents."""

    loglikelihood: float
    n_tokens: int
    n_words: int
    n_bytes: int

    def _weighted(self, count: int) -> list[tuple[float, int]]:
        return [(self.loglikelihood, count)]

    @property
    def token_perplexity(self) -> float:
        """exp(-loglikelihood / tokens): only comparable between models that share a tokenizer."""
        from lm_eval.api.metrics import weighted_perplexity

        return weighted_perplexity(self._weighted(self.n_tokens))

    @property
    def word_perplexity(self) -> float:
        """exp(-loglikelihood / words), lm-eval's `word_perplexity`."""
        from lm_eval.api.metrics import weighted_perplexity

        return weighted_perplexity(self._weighted(self.n_words))

    @property
    def byte_perplexity(self) -> float:
        """exp(-loglikelihood / UTF-8 bytes), lm-eval's `byte_perplexity`."""
        from lm_eval.api.metrics import weighted_perplexity

        return weighted_perplexity(self._weighted(self.n_bytes))

    @property
    def bits_per_byte(self) -> float:
        """-loglikelihood / bytes / ln 2, lm-eval's `bits_per_byte`: bits to encode each byte of the text."""
        from lm_eval.api.metrics import bits_per_byte

        return bits_per_byte(self._weighted(self.n_bytes))

    @classmethod
    def sum(cls, parts: Sequence[PerplexityTotals]) -> PerplexityTotals:
        return cls(
            loglikelihood=math.fsum(p.loglikelihood for p in parts),
            n_tokens=sum(p.n_tokens for p in parts),
            n_words=sum(p.n_words for p in parts),
            n_bytes=sum(p.n_bytes for p in parts),
        )


def count_words(text: str) -> int:
    """Words as lm-eval counts them for perplexity tasks (a whitespace split)."""
    from lm_eval.api.task import Task

    return Task.count_words(text)


def count_bytes(text: str) -> int:
    from lm_eval.api.task import Task

    return Task.count_bytes(text)


def rolling_windows(tokens: list[int], prefix_token: int, context_length: int, stride: int) -> list[tuple]:
    """lm-eval's (context, continuation) windows over `tokens`: every token is predicted exactly once.

    lm-eval's `context_len` is how many tokens the first prediction of a later window conditions on
    (1 in its own rolling loglikelihood); `context_length - stride + 1` makes each window predict `stride`
    tokens, with the remaining `context_length - stride` positions (plus the token before) as context.
    """
    from lm_eval import utils

    return [
        utils.make_disjoint_window(window)
        for window in utils.get_rolling_token_windows(
            token_list=tokens,
            prefix_token=prefix_token,
            max_seq_len=context_length,
            context_len=context_length - stride + 1,
        )
    ]


def check_context_length(lm: Any, context_length: int) -> None:
    if context_length > lm.max_length:
        raise UserError(
            f"--context-length {context_length} is longer than the model's maximum length ({lm.max_length} "
            f"tokens). Pass --context-length {lm.max_length} or less."
        )


def score_documents(
    lm: Any, documents: Sequence[Document], *, context_length: int, stride: int, windows_per_call: int = 16
) -> Iterator[list[tuple[Document, PerplexityTotals, int]]]:
    """Score documents with an lm-eval HFLM; yields batches of (document, totals, number of windows).

    Windows of several documents are scored in one `_loglikelihood_tokens` call (which sorts and batches
    them by length), and a batch is yielded as soon as its documents are complete.
    """
    check_context_length(lm, context_length)
    pending: list[tuple[Document, list[int], list[tuple]]] = []

    def flush() -> list[tuple[Document, PerplexityTotals, int]]:
        requests = [
            (None, context, continuation) for _, _, windows in pending for context, continuation in windows
        ]
        results = iter(lm._loglikelihood_tokens(requests, disable_tqdm=True))
        out = []
        for doc, tokens, windows in pending:
            loglikelihood = math.fsum(next(results)[0] for _ in windows)
            totals = PerplexityTotals(
                loglikelihood, len(tokens), count_words(doc.normaliser_text), count_bytes(doc.normaliser_text)
            )
            out.append((doc, totals, len(windows)))
        pending.clear()
        return out

    n_windows = 0
    for doc in documents:
        tokens = lm.tok_encode(doc.text)
        windows = rolling_windows(tokens, lm.prefix_token_id, context_length, stride)
        pending.append((doc, tokens, windows))
        n_windows += len(windows)
        if n_windows >= windows_per_call:
            yield flush()
            n_windows = 0
    if pending:
        yield flush()


# -- running and reading back -----------------------------------------------------------------------------


def run_perplexity(
    store: Store, ref: ModelRef, config: PerplexityConfig, *, progress: TaskProgress | None = None
) -> int:
    """Score the documents of the corpus the store does not hold for this model; return how many."""
    config.validate()
    require_local(ref, KIND)
    corpus: Corpus = load_corpus(config.text)
    check_config = _check_config(config, corpus.identity)
    by_id = {d.id: d for d in corpus.documents}

    def load(provenance: dict[str, Any]) -> Any:
        from importlib.metadata import version

        lm = make_lm(with_dtype(ref, config.dtype), BACKEND)
        check_context_length(lm, config.context_length)
        provenance.update(
            lm_eval_version=version("lm_eval"),
            backend=type(lm).__name__,
            device=str(lm.device),
            model_max_length=lm.max_length,
        )
        return lm

    def compute(missing: list[str], lm: Any) -> Iterator[list[ItemRow]]:
        batches = score_documents(
            lm,
            [by_id[i] for i in missing],
            context_length=config.context_length,
            stride=config.window_stride,
            windows_per_call=max(2 * ref.batch_size, 8),
        )
        for batch in batches:
            yield [
                ItemRow(
                    doc.id,
                    metrics={
                        "loglikelihood": t.loglikelihood,
                        "n_tokens": t.n_tokens,
                        "n_words": t.n_words,
                        "n_bytes": t.n_bytes,
                        "bits_per_byte": t.bits_per_byte,
                    },
                    data={"n_windows": n_windows, "preview": doc.text[:80]},
                )
                for doc, t, n_windows in batch
            ]

    return run_missing_items(
        store,
        ref,
        kind=KIND,
        name=check_name(config, corpus.label),
        check_hash=stable_hash(check_config),
        check_config=check_config,
        item_ids=list(by_id),
        load=load,
        compute=compute,
        progress=progress,
        provenance={
            "corpus": corpus.label,
            "corpus_source": corpus.source,
            "context_length": config.context_length,
            "stride": config.window_stride,
        },
    )


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
        return {
            "check_hash": self.check_hash,
            "n_documents": self.n_documents,
            "n_target": self.n_target,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "token_perplexity": self.token_perplexity,
            "word_perplexity": self.word_perplexity,
            "byte_perplexity": self.byte_perplexity,
            "bits_per_byte": self.bits_per_byte,
            "per_item": self.per_item,
            "provenance": self.provenance,
        }


def perplexity_scores(store: Store, model: ModelRef | str, config: PerplexityConfig) -> PerplexitySummary:
    """Aggregate what the store holds for this model and check (no model is loaded)."""
    config.validate()
    fingerprint = model_fingerprint(model)
    if config.text == WIKITEXT:  # known by name: read back offline, without the documents
        identity, n_target = wikitext_identity(), None
    else:
        corpus = load_corpus(config.text)
        identity, n_target = corpus.identity, len(corpus.documents)
    digest = stable_hash(_check_config(config, identity))
    items = store.items(fingerprint, digest)
    parts = {
        it.item_id: PerplexityTotals(
            float(it.metrics["loglikelihood"]),
            int(it.metrics["n_tokens"]),
            int(it.metrics["n_words"]),
            int(it.metrics["n_bytes"]),
        )
        for it in items
    }
    return PerplexitySummary(
        check_hash=digest,
        n_documents=len(parts),
        n_target=n_target,
        totals=PerplexityTotals.sum(list(parts.values())) if parts else None,
        per_item={item_id: t.bits_per_byte for item_id, t in sorted(parts.items())},
        provenance=last_provenance(store, fingerprint, digest),
    )
