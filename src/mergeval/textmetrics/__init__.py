"""Text metrics: perplexity, BLEU/chrF and consistency (conflict detection), stored per item.

Each check has a config dataclass (its identity), `run_<check>(store, ref, config, progress=None) -> int`
(computes only what the store lacks), `<check>_scores(store, model, config) -> Summary` (aggregates plus a
per-item dict for paired comparisons; no model is loaded) and `<check>_check_hash(config)`. See
docs/text-metrics.md.
"""

from mergeval.textmetrics.bleu import BleuConfig, BleuSummary, bleu_scores, corpus_scores, run_bleu
from mergeval.textmetrics.bleu import check_hash as bleu_check_hash
from mergeval.textmetrics.consistency import (
    ConsistencyConfig,
    ConsistencySummary,
    PairVerdict,
    conflict_rate,
    consistency_scores,
    judge_pair,
    load_embedding_model,
    pairwise_similarity,
    run_consistency,
)
from mergeval.textmetrics.consistency import check_hash as consistency_check_hash
from mergeval.textmetrics.perplexity import (
    PerplexityConfig,
    PerplexitySummary,
    PerplexityTotals,
    perplexity_scores,
    run_perplexity,
)
from mergeval.textmetrics.perplexity import check_hash as perplexity_check_hash

# The plan's check registry can look checks up by kind.
CHECKS = {
    "perplexity": (PerplexityConfig, run_perplexity, perplexity_scores, perplexity_check_hash),
    "bleu": (BleuConfig, run_bleu, bleu_scores, bleu_check_hash),
    "consistency": (ConsistencyConfig, run_consistency, consistency_scores, consistency_check_hash),
}

__all__ = [
    "CHECKS",
    "BleuConfig",
    "BleuSummary",
    "ConsistencyConfig",
    "ConsistencySummary",
    "PairVerdict",
    "PerplexityConfig",
    "PerplexitySummary",
    "PerplexityTotals",
    "bleu_check_hash",
    "bleu_scores",
    "conflict_rate",
    "consistency_check_hash",
    "consistency_scores",
    "corpus_scores",
    "judge_pair",
    "load_embedding_model",
    "pairwise_similarity",
    "perplexity_check_hash",
    "perplexity_scores",
    "run_bleu",
    "run_consistency",
    "run_perplexity",
]
