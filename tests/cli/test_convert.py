"""`mergeval convert MODEL.gguf --out DIR`: a GGUF file becomes a plain model folder (the README's merge example)."""

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def mergeval(*args):
    return subprocess.run([sys.executable, "-m", "mergeval.cli", *map(str, args)], check=False,
                          capture_output=True, text=True, env=ENV, timeout=900)


def _one_line_user_error(proc, phrase):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and phrase in lines[0], proc.stderr


@pytest.mark.slow
def test_smollm2_gguf_becomes_a_model_folder_with_the_same_weights_and_tokenizer(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mergeval.demo import smollm2_gguf
    from mergeval.models import resolve

    gguf = smollm2_gguf()
    out = tmp_path / "smollm2"
    out.mkdir()  # an empty folder is fine
    proc = mergeval("convert", gguf, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert str(out) in proc.stdout

    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name != "smollm2"]  # no partial folder left behind

    # What transformers reads from the GGUF file itself, and what it reads from the folder, are the same model.
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    folder = AutoModelForCausalLM.from_pretrained(out)
    theirs, ours = direct.state_dict(), folder.state_dict()
    assert theirs.keys() == ours.keys()
    for name, tensor in theirs.items():
        assert torch.equal(tensor, ours[name]), name
    text = "Merging models: does the child beat its parents? 123 + 456 = 579"
    assert (AutoTokenizer.from_pretrained(out)(text)["input_ids"]
            == AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)(text)["input_ids"])
    assert resolve(out).kind == "local"  # mergeval (and mergekit) take it as a normal model folder


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_text("not a model\n")
    proc = mergeval("convert", fake, "--out", tmp_path / "out")
    _one_line_user_error(proc, "is not a GGUF file")
    assert not (tmp_path / "out").exists()


def test_a_missing_file_is_refused(tmp_path):
    proc = mergeval("convert", tmp_path / "nope.gguf", "--out", tmp_path / "out")
    _one_line_user_error(proc, "does not exist")
    assert not (tmp_path / "out").exists()


def test_an_existing_folder_with_files_or_a_file_is_never_overwritten(tmp_path):
    from mergeval.demo import smollm2_gguf

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "config.json").write_text("{}")
    proc = mergeval("convert", smollm2_gguf(), "--out", taken)
    _one_line_user_error(proc, "already exists and is not an empty folder")
    assert [p.name for p in taken.iterdir()] == ["config.json"] and (taken / "config.json").read_text() == "{}"

    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    proc = mergeval("convert", smollm2_gguf(), "--out", a_file)
    _one_line_user_error(proc, "already exists and is not an empty folder")
    assert a_file.read_text() == "keep me"
