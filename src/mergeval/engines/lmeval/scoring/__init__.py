"""Fast lm-eval scoring: the `mergeval-hf` model backend (importing this package registers it).

`PrefixCachingHFLM` is lm-eval's HFLM with loglikelihood requests scored over a radix tree of their token
ids, so every distinct prefix is computed once (see `backend.py`). `prefix_tree_tokens` counts the
distinct prefix-tree tokens of a set of sequences: the ideal forward-token count.
"""

from mergeval.engines.lmeval.scoring._prefix_tree import prefix_tree_tokens
from mergeval.engines.lmeval.scoring.backend import DEFAULT_MAX_CACHE_TOKENS, PrefixCachingHFLM

__all__ = ["DEFAULT_MAX_CACHE_TOKENS", "PrefixCachingHFLM", "prefix_tree_tokens"]
