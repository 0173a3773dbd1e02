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

The check type (`mergeval.checks.perplexity`) stores one item per document: {loglikelihood, n_tokens,
n_words, n_bytes, bits_per_byte}. Corpus numbers are sums over documents (lm-eval's weighted aggregation).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from mergeval.engines.lmeval.harness import make_lm
from mergeval.engines.text._corpus import Document
from mergeval.errors import UserError
from mergeval.models import ModelRef

# Plain lm-eval HFLM: it is the reference these numbers must equal, and rolling windows share no prefixes
# for mergeval-hf's prefix cache to reuse.
BACKEND = "hf"


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


class PerplexityScorer:
    """A model loaded with lm-eval's HFLM for rolling-window scoring (load once, score many documents).

    Loading fails, before anything is scored, when the model cannot take `context_length` positions."""

    def __init__(self, ref: ModelRef, context_length: int):
        self.lm = make_lm(ref, BACKEND)
        check_context_length(self.lm, context_length)
        self.windows_per_call = max(2 * ref.batch_size, 8)

    @property
    def facts(self) -> dict[str, Any]:
        """What the run's provenance records about the scorer."""
        return {
            "lm_eval_version": version("lm_eval"),
            "backend": type(self.lm).__name__,
            "device": str(self.lm.device),
            "model_max_length": self.lm.max_length,
        }

    def score(
        self, documents: Sequence[Document], *, context_length: int, stride: int
    ) -> Iterator[list[tuple[Document, PerplexityTotals, int]]]:
        return score_documents(
            self.lm,
            documents,
            context_length=context_length,
            stride=stride,
            windows_per_call=self.windows_per_call,
        )
