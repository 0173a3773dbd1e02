import json
import shutil

import pytest

from mergeval import models
from mergeval.errors import UserError
from mergeval.models import fingerprint_folder, resolve


@pytest.fixture()
def model_copy(tiny_model_dir, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, dst)
    return dst


def test_fingerprint_survives_move_and_rename(model_copy, tmp_path):
    fp = fingerprint_folder(model_copy)
    moved = tmp_path / "elsewhere" / "renamed-merge"
    moved.parent.mkdir()
    shutil.move(model_copy, moved)
    (moved / "README.md").write_text("notes do not change what the model is")
    assert fingerprint_folder(moved) == fp
    assert resolve(moved).fingerprint == fp


@pytest.mark.parametrize("filename", ["model.safetensors", "config.json", "tokenizer.json"])
def test_fingerprint_changes_with_weights_config_tokenizer(model_copy, filename):
    fp = fingerprint_folder(model_copy)
    path = model_copy / filename
    data = bytearray(path.read_bytes())
    if filename.endswith(".json"):
        obj = json.loads(data)
        obj["_touched"] = 1
        path.write_text(json.dumps(obj))
    else:
        data[-3] ^= 0xFF  # flip one byte of the last tensor
        path.write_bytes(bytes(data))
    assert fingerprint_folder(model_copy) != fp


def test_large_file_sampling_detects_header_and_sampled_changes(model_copy, monkeypatch):
    # Force the sampled path (headers + size + 64 blocks) on a small file.
    monkeypatch.setattr(models, "FULL_HASH_LIMIT", 1024)
    monkeypatch.setattr(models, "_BLOCK_SIZE", 256)
    fp = fingerprint_folder(model_copy)
    assert fingerprint_folder(model_copy) == fp  # deterministic
    path = model_copy / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # the last block is always sampled
    path.write_bytes(bytes(data))
    assert fingerprint_folder(model_copy) != fp


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        resolve(tmp_path / "no-such-model")
    with pytest.raises(UserError, match="does not exist"):
        resolve("./merged-model-typo")


def test_unreadable_config_and_non_causal_lm(model_copy, tmp_path):
    (model_copy / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="Cannot read"):
        resolve(model_copy)
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]}))
    with pytest.raises(UserError, match="not a causal language model"):
        resolve(bert)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no config.json"):
        resolve(empty)


def test_endpoint_reference_keeps_only_the_key_name(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret-value")
    ref = resolve("openai:judge-model@http://127.0.0.1:9999/v1", api_key_env="MY_KEY")
    assert ref.kind == "endpoint" and ref.endpoint_model == "judge-model"
    assert "sk-secret-value" not in json.dumps(ref.describe())
    with pytest.raises(UserError, match="base URL"):
        resolve("openai:judge-model")


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="hub"):
        resolve("some-org/some-model-that-is-not-cached@main")


@pytest.mark.slow
def test_gguf_converted_once_and_fingerprinted(smollm2_dir, mergeval_cache):
    from mergeval.demo import smollm2_gguf

    again = resolve(smollm2_gguf())  # second resolve reuses the cached conversion
    assert again.path == smollm2_dir
    assert again.kind == "gguf" and len(again.fingerprint) == 24
    assert (smollm2_dir / "config.json").exists()
    assert not json.loads((smollm2_dir / "config.json").read_text()).get("quantization_config")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-1], "file not fully covered"),  # one byte short: a truncated download
        (lambda b: b[:5], "header too small"),
        (lambda b: b[:8] + b"\xff" * 16 + b[24:], "invalid UTF-8"),
        (lambda b: b"\xff" * 8 + b[8:], "header too large"),
        (lambda b: b + b"\0", "file not fully covered"),  # bytes the header does not account for
    ],
)
def test_damaged_safetensors_are_refused_when_resolving(model_copy, damage, message):
    path = model_copy / "model.safetensors"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(UserError, match=f"damaged or incomplete.*{message}.*Download or save the model again"):
        resolve(model_copy)


def test_a_sharded_checkpoint_needs_every_shard_and_a_model_needs_its_tokenizer(model_copy):
    index = {"metadata": {}, "weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}
    (model_copy / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match="lacks the weight shard.*model-00002-of-00002.safetensors"):
        resolve(model_copy)
    (model_copy / "model.safetensors.index.json").unlink()
    (model_copy / "tokenizer.json").unlink()
    with pytest.raises(UserError, match="no tokenizer files"):
        resolve(model_copy)
    assert resolve(model_copy, trust_remote_code=True).fingerprint  # a custom tokenizer class may live anywhere


@pytest.mark.parametrize(("settings", "message"), [
    ({"dtype": "float64x"}, "Unknown dtype 'float64x'"),
    ({"dtype": "bf16"}, "write bfloat16"),
    ({"device": "gpu"}, "Unknown device 'gpu'"),
    ({"device": "cuda:x"}, "Unknown device"),
    ({"backend": "nope"}, "Unknown backend 'nope'"),
])
def test_run_settings_are_checked_before_anything_runs(settings, message):
    with pytest.raises(UserError, match=message):
        models.check_run_settings(**settings)


def test_valid_run_settings_pass():
    models.check_run_settings(dtype="bfloat16", device="cpu", backend="hf")
    models.check_run_settings(dtype="auto", device=None, backend="vllm", available=False)  # another lm-eval LM
    assert models.device_problem("cuda:1") is None and models.device_problem("mps") is None
