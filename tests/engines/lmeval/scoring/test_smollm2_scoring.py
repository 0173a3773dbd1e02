"""mergeval-hf gives lm-eval's HFLM numbers on a real model: SmolLM2-135M-Instruct in fp32."""

from __future__ import annotations

import random

import pytest
from lm_eval.models.huggingface import HFLM
from scoring_helpers import LOGLIKELIHOOD_TOLERANCE, assert_same_samples, evaluate_samples

from mergeval.engines.lmeval.scoring import PrefixCachingHFLM

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2_pair(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # One copy of the weights, shared by both backends.
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype="float32").eval()
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    common = {"pretrained": model, "tokenizer": tokenizer, "batch_size": 4}
    return HFLM(**common), PrefixCachingHFLM(**common)


def test_leaderboard_items_match_hflm(smollm2_pair, leaderboard_configs, task_manager):
    plain, fast = smollm2_pair
    assert fast.stats["fallback_reason"] is None
    plain_samples = evaluate_samples(plain, leaderboard_configs, task_manager, limit=2)
    fast_samples = evaluate_samples(fast, leaderboard_configs, task_manager, limit=2)
    assert assert_same_samples(plain_samples, fast_samples) > 30
    assert fast.stats["forward_tokens_unpadded"] == fast.stats["ideal_tokens"]


def test_padding_sensitive_batches_match_hflm(smollm2_pair):
    """Very different context lengths in one batch, a continuation longer than its context, one-token
    answers, shared prefixes across documents."""
    plain, fast = smollm2_pair
    rng = random.Random(0)
    words = plain.tok_encode(
        "The quick brown fox jumps over the lazy dog while the merged model keeps both of its parents' skills."
    )
    shared = (words * 8)[:80]
    requests = []
    for doc in range(4):
        context = shared[: rng.choice([1, 20, 80])] + [
            rng.choice(words) for _ in range(rng.choice([1, 5, 60]))
        ]
        requests += [
            ((f"d{doc}", "c"), context, [rng.choice(words) for _ in range(rng.randrange(1, 12))])
            for _ in range(3)
        ]
        requests += [((f"d{doc}", x), context, [rng.choice(words)]) for x in "AB"]
    requests.append((("tiny", "long"), shared[:1], shared[1:50]))
    requests.append(
        (("repeat", "copy"), shared[:60], shared[60:62])
    )  # the third repeat: a real model copies it
    expected = plain._loglikelihood_tokens(requests, disable_tqdm=True)
    got = fast._loglikelihood_tokens(requests, disable_tqdm=True)
    for (ll_a, greedy_a), (ll_b, greedy_b) in zip(expected, got, strict=True):
        assert abs(ll_a - ll_b) <= LOGLIKELIHOOD_TOLERANCE, (ll_a, ll_b)
        assert greedy_a == greedy_b
    assert any(greedy for _, greedy in expected)  # the real model does predict some of these
