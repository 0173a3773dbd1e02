"""What mergekit users get wrong, caught before anything is written, as one sentence with the fix."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest

from mergeval.errors import UserError
from mergeval.merge import merge
from mergeval.testing import make_tiny_llama


def _two(a, b, method="linear", **extra):
    return {
        "merge_method": method,
        "dtype": "float32",
        "models": [
            {"model": str(a), "parameters": {"weight": 0.5}},
            {"model": str(b), "parameters": {"weight": 0.5}},
        ],
        **extra,
    }


def _fails(config, out, match: str, **kwargs) -> str:
    with pytest.raises(UserError, match=match) as info:
        merge(config, out, store=None, **kwargs)
    assert not out.exists(), "nothing may be written when a merge is refused"
    assert not out.with_name(out.name + ".partial").exists()
    return str(info.value)


@pytest.mark.parametrize("method", ["ties", "dare_ties", "task_arithmetic"])
def test_task_vector_methods_need_a_base_model(family, tmp_path, method):
    message = _fails(_two(family.a, family.b, method), tmp_path / "out", "base_model")
    assert "Add `base_model:" in message


def test_slerp_needs_its_base_among_the_two_models(family, tmp_path):
    config = _two(family.a, family.b, "slerp", base_model=str(family.base), parameters={"t": 0.5})
    _fails(config, tmp_path / "out", "one of the two models")


def test_missing_required_parameter(family, tmp_path):
    config = {"merge_method": "linear", "models": [{"model": str(family.a)}, {"model": str(family.b)}]}
    _fails(config, tmp_path / "out", "needs a 'weight' for every model")


def test_unknown_method_lists_the_known_ones(family, tmp_path):
    message = _fails(_two(family.a, family.b, "lienar"), tmp_path / "out", "Unknown merge_method 'lienar'")
    assert "slerp" in message and "ties" in message


def test_architecture_mismatch(family, tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from mergeval.testing import make_tokenizer

    tok = make_tokenizer()
    qwen = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
        )
    )
    other = make_tiny_llama(tmp_path / "qwen", model=qwen)
    message = _fails(_two(family.a, other), tmp_path / "out", "architecture")
    assert "LlamaForCausalLM" in message and "Qwen2ForCausalLM" in message


def test_shape_mismatch(family, tmp_path):
    wide = make_tiny_llama(tmp_path / "wide", hidden_size=64)
    _fails(_two(family.a, wide), tmp_path / "out", "hidden_size 32 vs 64")


def test_depth_mismatch(family, tmp_path):
    deep = make_tiny_llama(tmp_path / "deep", num_layers=3)
    _fails(_two(family.a, deep), tmp_path / "out", "slices")


def test_vocabulary_size_mismatch(family, tmp_path):
    other = make_tiny_llama(tmp_path / "vocab", vocab_size=450)
    message = _fails(_two(family.a, other), tmp_path / "out", "different tokenizers")
    assert "tokenizer_source: base" in message


def test_same_size_vocabulary_with_different_tokens(family, tmp_path):
    import shutil

    other = tmp_path / "swapped"
    shutil.copytree(family.b, other)
    data = json.loads((other / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    first, second = sorted(vocab, key=vocab.get)[10:12]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (other / "tokenizer.json").write_text(json.dumps(data))
    _fails(_two(family.a, other), tmp_path / "out", "same size with different tokens")
    # With tokenizer_source, mergekit aligns the vocabularies: no longer refused by the check.
    result = merge(_two(family.a, other, tokenizer_source="union"), tmp_path / "aligned", store=None)
    assert (result.output_path / "tokenizer.json").exists()


def test_not_enough_disk_is_refused_before_writing(family, tmp_path):
    """A parent whose safetensors header declares 2**40 float32 weights (4 TiB): the estimate is read from the
    header (the file is sparse, so it takes no disk; it is never loaded, because the merge is refused first)."""
    import shutil

    huge = tmp_path / "huge"
    shutil.copytree(family.b, huge)
    header = json.dumps(
        {"model.embed_tokens.weight": {"dtype": "F32", "shape": [2**30, 2**10], "data_offsets": [0, 2**42]}}
    ).encode()
    path = huge / "model.safetensors"
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(header)) + header)
        fh.truncate(8 + len(header) + 2**42)  # a complete (sparse) file: it passes the safetensors check
    message = _fails(_two(family.a, huge), tmp_path / "out", "Not enough disk space")
    assert "free" in message and "--out" in message


def test_missing_parent_and_existing_output(family, tmp_path):
    _fails(_two(family.a, tmp_path / "nope"), tmp_path / "out", "does not exist")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file.txt").write_text("x")
    with pytest.raises(UserError, match="already exists"):
        merge(_two(family.a, family.b), taken, store=None)


def test_cli_reports_a_user_error_with_exit_code_2(family, tmp_path):
    config = tmp_path / "ties.yml"
    config.write_text(f"merge_method: ties\nmodels:\n  - model: {family.a}\n  - model: {family.b}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mergeval.cli",
            "merge",
            str(config),
            "--out",
            str(tmp_path / "o"),
            "--store",
            str(tmp_path / "s.db"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2
    assert "base_model" in proc.stderr and "Traceback" not in proc.stderr
