"""Sanity probes: the text heuristics on fixed texts, and real tiny models that must pass or fail them."""

import pytest
import torch

from mergeval.engines.text.sanity import (
    check_chat_template,
    check_tokenizer,
    check_weights_finite,
    coherence_problems,
    repetition_rate,
    run_sanity,
)
from mergeval.models import resolve
from mergeval.testing import make_tiny_llama, make_tokenizer

PROSE = (
    "Paris is known for its museums, its cafes and the river that runs through the middle of the city. "
    "Every spring, visitors walk along the banks and stop at small bookshops."
)


def test_repetition_rate_on_fixed_sequences():
    assert repetition_rate(list(range(100))) == 0.0
    assert repetition_rate([7] * 100) == pytest.approx(1 - 1 / 97)
    loop = [1, 2, 3, 4, 5] * 20  # a 5-token loop: 5 distinct 4-grams out of 97
    assert repetition_rate(loop) == pytest.approx(1 - 5 / 97)
    assert repetition_rate([1, 2, 3]) == 0.0  # too short to repeat anything
    half = list(range(50)) + [1, 2, 3, 4, 5] * 10  # natural start, then a loop
    assert 0.3 < repetition_rate(half) < 0.6


def test_coherence_heuristics_on_fixed_texts():
    assert coherence_problems(" a city of lights, art and food, home to millions of people.") == []
    assert coherence_problems(" Paris.") == []  # the right answer is coherent however short
    garbage = " \ufffd\x10\ufffd\x0e t=Oons +\ufffdn\ufffd\ufffd\ufffdWwerDV\ufffd\ufffdOncen\ufffd"
    problems = coherence_problems(garbage)
    assert any("unprintable" in p for p in problems) and any("look like words" in p for p in problems)
    assert any("repeated" in p for p in coherence_problems(" the the the the the the the the the the the"))
    assert coherence_problems(" ok") == ["only 1 word(s)"]
    assert coherence_problems(" #### {{ ]] <> ;; == ++ %% @@ ~~") != []


def test_nan_weights_fail_and_finite_weights_pass(tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(make_tiny_llama(tmp_path / "m", seed=0))
    assert check_weights_finite(model).passed
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight[3, 5] = float("nan")
        model.model.norm.weight[0] = float("inf")
    result = check_weights_finite(model)
    assert not result.passed
    assert "2 tensor(s)" in result.detail and "model.layers.1.mlp.up_proj.weight" in result.detail


def test_tokenizer_and_chat_template_against_parents():
    same, other = make_tokenizer(400), make_tokenizer(300)

    class Config:
        vocab_size = 400

    assert check_tokenizer(same, Config, {"a": make_tokenizer(400)}).passed
    different = check_tokenizer(other, Config, {"a": same, "b": same})
    assert not different.passed and "differs from every parent" in different.detail
    # matching one of two different parents is enough
    assert check_tokenizer(other, Config, {"a": same, "b": make_tokenizer(300)}).passed

    class SmallEmbedding:
        vocab_size = 200

    too_small = check_tokenizer(same, SmallEmbedding, {"a": make_tokenizer(400)})
    assert not too_small.passed and "embedding only 200 rows" in too_small.detail

    assert check_chat_template(same, {"a": make_tokenizer(400)}).passed
    no_template = make_tokenizer(400)
    no_template.chat_template = None
    assert not check_chat_template(no_template, {"a": same}).passed
    changed = make_tokenizer(400)
    changed.chat_template = "{{ messages[0]['content'] }}"
    assert not check_chat_template(changed, {"a": same}).passed


def test_tiny_random_merge_fails_instruction_and_a_bad_tokenizer_fails_against_its_parents(tmp_path):
    parent = resolve(make_tiny_llama(tmp_path / "parent", seed=0), dtype="float32")
    good = resolve(make_tiny_llama(tmp_path / "good", seed=1), dtype="float32")
    results, facts = run_sanity(good, [parent], max_new_tokens=40)
    by_check = {r.check: r for r in results}
    assert list(by_check) == [
        "weights_finite",
        "hello",
        "continuation",
        "instruction",
        "repetition",
        "tokenizer",
        "chat_template",
    ]
    assert (
        by_check["weights_finite"].passed
        and by_check["tokenizer"].passed
        and by_check["chat_template"].passed
    )
    assert not by_check["instruction"].passed  # random weights cannot answer "Paris"
    assert not by_check["continuation"].passed
    assert facts["params_b"] > 0 and facts["size_gb"] > 0 and facts["tokens_per_second"] > 0

    bad = resolve(make_tiny_llama(tmp_path / "bad-vocab", seed=1, vocab_size=300), dtype="float32")
    results, _ = run_sanity(bad, [parent], max_new_tokens=8)
    tokenizer = next(r for r in results if r.check == "tokenizer")
    assert not tokenizer.passed and "differs from every parent" in tokenizer.detail
