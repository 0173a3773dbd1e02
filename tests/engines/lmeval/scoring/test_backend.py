"""mergeval-hf gives lm-eval's HFLM numbers, with tiny random models (fast; SmolLM2 is in
test_smollm2_scoring.py)."""

from __future__ import annotations

import random

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.api.registry import get_model
from lm_eval.models.huggingface import HFLM
from scoring_helpers import LOGLIKELIHOOD_TOLERANCE, assert_same_samples, evaluate_samples

from mergeval.engines.lmeval.scoring import PrefixCachingHFLM, prefix_tree_tokens
from mergeval.errors import UserError


def _pair(model_dir, **kwargs):
    args = {"pretrained": str(model_dir), "device": "cpu", "dtype": "float32", "batch_size": 3} | kwargs
    fast_only = {k: args.pop(k) for k in ("max_cache_tokens", "prefix_caching") if k in args}
    return HFLM(**args), get_model("mergeval-hf")(**args, **fast_only)


def _assert_same_loglikelihoods(plain, fast, requests, tolerance=LOGLIKELIHOOD_TOLERANCE):
    expected = plain._loglikelihood_tokens(requests, disable_tqdm=True)
    got = fast._loglikelihood_tokens(requests, disable_tqdm=True)
    assert len(got) == len(expected)
    for i, ((ll_a, greedy_a), (ll_b, greedy_b)) in enumerate(zip(expected, got, strict=True)):
        assert abs(ll_a - ll_b) <= tolerance, (i, ll_a, ll_b)
        assert greedy_a == greedy_b, i
    return got


def _padding_sensitive_requests(vocab: int, seed: int = 0):
    """Contexts of very different lengths sharing prefixes, continuations longer than their context,
    one-token answers under one context, duplicates."""
    rng = random.Random(seed)
    tokens = lambda n: [rng.randrange(vocab) for _ in range(n)]
    shared = tokens(60)
    requests = []
    for doc in range(5):
        context = shared[: rng.choice([1, 5, 60])] + tokens(rng.choice([1, 3, 90]))
        for _ in range(3):
            requests.append(((f"doc{doc}", "c"), context, tokens(rng.randrange(1, 25))))
        requests += [((f"doc{doc}", letter), context, tokens(1)) for letter in "ABCD"]
    requests.append((("short", "long"), [shared[0]], tokens(70)))  # continuation much longer than context
    requests.append(requests[0])  # exact duplicate
    return requests


def test_registered_in_lm_eval_registry():
    assert get_model("mergeval-hf") is PrefixCachingHFLM
    assert issubclass(PrefixCachingHFLM, HFLM)


def test_padding_sensitive_requests_match_hflm(tiny_model_dir):
    plain, fast = _pair(tiny_model_dir)
    requests = _padding_sensitive_requests(vocab=300)
    _assert_same_loglikelihoods(plain, fast, requests)
    stats = fast.stats
    assert stats["fallback_reason"] is None
    assert stats["requests"] == len(requests)
    # Every distinct prefix token is computed exactly once; the rest came from the cache.
    assert stats["forward_tokens_unpadded"] == stats["ideal_tokens"] < stats["plain_tokens"]
    assert stats["cache_hit_tokens"] == stats["plain_tokens"] - stats["ideal_tokens"]


@pytest.mark.parametrize("batch_size,max_cache_tokens", [(1, 32768), (7, 64), (16, 1)])
def test_batching_and_cache_cap_do_not_change_results(tiny_model_dir, batch_size, max_cache_tokens):
    plain, fast = _pair(tiny_model_dir, batch_size=batch_size, max_cache_tokens=max_cache_tokens)
    _assert_same_loglikelihoods(plain, fast, _padding_sensitive_requests(vocab=300, seed=batch_size))


def test_left_truncation_matches_hflm(tiny_model_dir):
    plain, fast = _pair(tiny_model_dir, max_length=40)
    rng = random.Random(3)
    context = [rng.randrange(300) for _ in range(100)]
    requests = [
        (("t", str(n)), context[: 30 + n * 7], [rng.randrange(300) for _ in range(n + 1)]) for n in range(8)
    ]
    requests.append(
        (("t", "longest"), context, [rng.randrange(300) for _ in range(40)])
    )  # cont == max_length
    _assert_same_loglikelihoods(plain, fast, requests)


def test_grouped_query_attention_model_matches_hflm(tmp_path):
    from mergeval.testing import make_tiny_llama

    model_dir = make_tiny_llama(tmp_path / "gqa", seed=1, num_heads=4, num_kv_heads=2)
    plain, fast = _pair(model_dir, batch_size=4)
    _assert_same_loglikelihoods(plain, fast, _padding_sensitive_requests(vocab=300, seed=5))
    assert fast.stats["fallback_reason"] is None


def test_leaderboard_tasks_match_hflm_per_request_and_per_item(
    tiny_model_dir, leaderboard_configs, task_manager
):
    """All six leaderboard tasks, real items: loglikelihoods, is_greedy, generations and per-item
    acc / acc_norm / exact_match as lm-eval's own evaluation loop produces them."""
    plain, fast = _pair(tiny_model_dir, batch_size=4)
    plain_samples = evaluate_samples(plain, leaderboard_configs, task_manager, limit=3)
    fast_samples = evaluate_samples(fast, leaderboard_configs, task_manager, limit=3)
    compared = assert_same_samples(plain_samples, fast_samples)
    assert compared > 50
    assert {row["doc_id"] for row in fast_samples["gsm8k"]} == {0, 1, 2}
    stats = fast.stats
    assert stats["fallback_reason"] is None
    assert stats["forward_tokens_unpadded"] == stats["ideal_tokens"]
    assert stats["plain_tokens"] > 2 * stats["ideal_tokens"]


def test_generation_reuses_a_shared_prompt_prefix_and_matches_hflm(tiny_model_dir):
    plain, fast = _pair(tiny_model_dir, batch_size=3)
    shared = "Question: What is two plus two? Answer: four.\n\n" * 4
    questions = ["What is the capital of France?", "Hello, how are you?", "Write a poem.", "12 + 30 = ?"]
    gen_kwargs = {"until": ["\n\n", "Question:"], "do_sample": False, "max_gen_toks": 24}
    requests = [
        Instance(
            request_type="generate_until",
            doc={},
            arguments=(shared + f"Question: {q}\nAnswer:", gen_kwargs),
            idx=0,
        )
        for q in questions
    ]
    expected = plain.generate_until(requests, disable_tqdm=True)
    got = fast.generate_until(requests, disable_tqdm=True)
    assert got == expected
    assert fast.stats["generation_prefix_tokens_reused"] > 0


def _generation_requests(prompts, gen_kwargs):
    return [
        Instance(request_type="generate_until", doc={}, arguments=(prompt, gen_kwargs), idx=0)
        for prompt in prompts
    ]


def _decode_rows_counter(model):
    """Counts rows x decoding steps (forward calls on one new position) of a model."""
    counted = {"rows": 0}

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[1] == 1:
            counted["rows"] += ids.shape[0]

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return counted


def test_continuous_batching_generation_matches_hflm_with_fewer_decoding_steps(tiny_model_dir):
    """More prompts than rows per batch, prompts of very different lengths, rows that reach different
    stop sequences at different steps, two groups of generation options: the texts are HFLM's, and rows
    that are done stop costing decoding steps."""
    plain, fast = _pair(tiny_model_dir, batch_size=3)
    rng = random.Random(3)
    words = [
        "the",
        "cat",
        "sat",
        "on",
        "a",
        "mat",
        "while",
        "two",
        "dogs",
        "ran",
        "far",
        "away",
        "from",
        "home",
        "and",
        "back",
        "again",
    ]
    prompts = [
        " ".join(rng.choice(words) for _ in range(rng.choice([2, 9, 40, 120]))) + "\nAnswer:"
        for _ in range(10)
    ]
    # Stop sequences taken from what the model writes: early in one prompt's text, later in another's.
    free = plain.generate_until(
        _generation_requests(prompts, {"until": [], "do_sample": False, "max_gen_toks": 30}),
        disable_tqdm=True,
    )
    stops = [free[0][4:7], free[5][15:18]]
    assert all(len(stop) == 3 for stop in stops), free
    greedy = {"until": stops, "do_sample": False, "max_gen_toks": 30}
    short = {"until": ["\n\n"], "temperature": 0.0, "max_gen_toks": 5}
    requests = _generation_requests(prompts, greedy) + _generation_requests(prompts[:4], short)
    plain_rows = _decode_rows_counter(plain.model)
    expected = plain.generate_until(requests, disable_tqdm=True)
    got = fast.generate_until(requests, disable_tqdm=True)
    assert got == expected
    assert fast.stats["generation_fallback_reason"] is None
    assert sum(len(text) < len(full) for text, full in zip(expected, free, strict=False)) >= 2  # stops cut
    assert fast.stats["generation_rows"] < plain_rows["rows"]


def test_sampling_and_generation_config_processors_go_through_hflm_generate(tiny_model_dir):
    plain, fast = _pair(tiny_model_dir, batch_size=2)
    prompts = ["the cat sat on a mat", "two dogs ran far away from home and back again", "a"]
    sampled = fast.generate_until(
        _generation_requests(
            prompts, {"until": ["."], "do_sample": True, "temperature": 0.7, "max_gen_toks": 6}
        ),
        disable_tqdm=True,
    )
    assert len(sampled) == 3 and all(isinstance(text, str) for text in sampled)
    assert "sampling" in fast.stats["generation_fallback_reason"]

    for lm in (plain, fast):
        lm.model.generation_config.repetition_penalty = 1.5
    requests = _generation_requests(prompts, {"until": ["\n\n"], "do_sample": False, "max_gen_toks": 12})
    expected = plain.generate_until(requests, disable_tqdm=True)
    assert fast.generate_until(requests, disable_tqdm=True) == expected
    assert "repetition_penalty" in fast.stats["generation_fallback_reason"]


def test_sliding_window_model_falls_back_to_hflm_with_a_reason(tmp_path, caplog):
    from transformers import MistralConfig, MistralForCausalLM

    from mergeval.testing import make_tiny_llama, make_tokenizer

    tok = make_tokenizer()
    config = MistralConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        sliding_window=16,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model_dir = make_tiny_llama(tmp_path / "mistral", model=MistralForCausalLM(config))
    with caplog.at_level("WARNING", logger="mergeval.engines.lmeval.scoring.backend"):
        plain, fast = _pair(model_dir)
    reason = fast.stats["fallback_reason"]
    assert reason is not None and "sliding" in reason.lower()
    assert "prefix caching is off" in caplog.text
    requests = _padding_sensitive_requests(vocab=300, seed=2)
    assert fast._loglikelihood_tokens(requests, disable_tqdm=True) == plain._loglikelihood_tokens(
        requests, disable_tqdm=True
    )


def test_prefix_caching_can_be_switched_off(tiny_model_dir):
    plain, fast = _pair(tiny_model_dir, prefix_caching=False)
    assert fast.stats["fallback_reason"] == "disabled by prefix_caching=False"
    requests = _padding_sensitive_requests(vocab=300, seed=4)
    assert fast._loglikelihood_tokens(requests, disable_tqdm=True) == plain._loglikelihood_tokens(
        requests, disable_tqdm=True
    )
    assert fast.stats["forward_calls"] == 0


def test_bfloat16_runs_and_stays_close_to_hflm(tiny_model_dir):
    plain, fast = _pair(tiny_model_dir, dtype="bfloat16")
    assert fast.stats["fallback_reason"] is None
    requests = _padding_sensitive_requests(vocab=300, seed=6)
    expected = plain._loglikelihood_tokens(requests, disable_tqdm=True)
    got = fast._loglikelihood_tokens(requests, disable_tqdm=True)
    # bf16 rounds differently with and without a cache (as HFLM's own numbers move with batch padding):
    # close, not equal.
    for (ll_a, _), (ll_b, _) in zip(expected, got, strict=True):
        assert abs(ll_a - ll_b) <= 0.05 * max(1.0, abs(ll_a)), (ll_a, ll_b)


def test_ideal_token_count_matches_prefix_tree():
    sequences = [[1, 2, 3], [1, 2, 4], [1, 2, 3]]
    assert prefix_tree_tokens(sequences) == 4


def test_bad_cache_cap_is_a_user_error(tiny_model_dir):
    with pytest.raises(UserError, match="max_cache_tokens"):
        PrefixCachingHFLM(pretrained=str(tiny_model_dir), device="cpu", max_cache_tokens=0)
