"""The CLI end to end in real subprocesses: exit codes, messages without tracebacks, stored results."""

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def mergeval(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "mergeval.cli", *map(str, args)], capture_output=True, text=True,
                          env=env or ENV, cwd=cwd, timeout=900)


def _user_error(proc, *phrases):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    text = " ".join((proc.stdout + proc.stderr).split())
    for phrase in phrases:
        assert phrase in text, text


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_model_dir, hf_data):
    db = tmp_path_factory.mktemp("cli") / "r.db"
    first = mergeval("eval", tiny_model_dir, "--suite", "leaderboard-v1", "--tasks", "arc,mmlu_anatomy",
                     "--limit", "4", "--data-dir", hf_data, "--store", db, "--backend", "hf")
    assert first.returncode == 0, first.stderr[-3000:]
    return db, first


def test_eval_then_again_without_running_the_model(evaluated, tiny_model_dir, hf_data):
    db, first = evaluated
    assert "8 items evaluated" in first.stdout
    assert "ARC" in first.stdout and "mmlu_anatomy" in first.stdout
    again = mergeval("eval", tiny_model_dir, "--suite", "leaderboard-v1", "--tasks", "arc,mmlu_anatomy",
                     "--limit", "4", "--data-dir", hf_data, "--store", db, "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    result = json.loads(again.stdout)
    assert result["evaluated_items"] == 0
    arc = result["models"][0]["scores"]["arc"]
    assert arc["n"] == 4 and 0 <= arc["value"] <= 100


def test_show_and_export(evaluated):
    db, _ = evaluated
    shown = mergeval("show", "--store", db, "--suite", "leaderboard-v1")
    assert shown.returncode == 0, shown.stderr
    assert "ARC" in shown.stdout and "tiny-a" in shown.stdout
    exported = mergeval("export", "--store", db, "--format", "json")
    rows = json.loads(exported.stdout)
    assert {r["task"] for r in rows} == {"arc_challenge", "mmlu_anatomy"}
    assert all(r["n"] == 4 for r in rows)
    items = mergeval("export", "--store", db, "--format", "csv", "--items")
    lines = items.stdout.strip().splitlines()
    assert len(lines) == 1 + 8 and "metric:acc_norm,none" in lines[0]
    bad = mergeval("export", "--store", db, "--format", "xml")
    _user_error(bad, "Unknown export format")


def test_missing_model_path(tmp_path):
    proc = mergeval("eval", tmp_path / "no-model-here", "--store", tmp_path / "r.db")
    _user_error(proc, "does not exist")
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize("limit", ["abc", "-3", "2.5"])
def test_malformed_limit(tiny_model_dir, tmp_path, limit):
    proc = mergeval("eval", tiny_model_dir, "--limit", limit, "--store", tmp_path / "r.db")
    _user_error(proc, "--limit")
    assert not (tmp_path / "r.db").exists()


def test_unknown_task(tiny_model_dir, tmp_path, hf_data):
    proc = mergeval("eval", tiny_model_dir, "--suite", "leaderboard-v1", "--tasks", "arcc", "--data-dir", hf_data,
                    "--store", tmp_path / "r.db")
    _user_error(proc, "Unknown task 'arcc'")


def test_corrupt_store_untouched(tiny_model_dir, tmp_path, hf_data):
    db = tmp_path / "r.db"
    db.write_bytes(b"\x00garbage" * 64)
    before = db.read_bytes()
    proc = mergeval("eval", tiny_model_dir, "--suite", "leaderboard-v1", "--tasks", "arc", "--limit", "1",
                    "--data-dir", hf_data, "--store", db)
    _user_error(proc, "not a readable mergeval store")
    assert db.read_bytes() == before


def test_unreachable_hub_without_data_dir(tiny_model_dir, tmp_path):
    env = {**ENV, "HF_HOME": str(tmp_path / "empty-hf-home"), "HF_DATASETS_CACHE": str(tmp_path / "empty-ds")}
    env.pop("MERGEVAL_DATA_DIR", None)
    proc = mergeval("eval", tiny_model_dir, "--suite", "leaderboard-v1", "--tasks", "arc", "--limit", "1",
                    "--store", tmp_path / "r.db", env=env)
    _user_error(proc, "Could not load the data of task arc_challenge", "mergeval data pull", "--data-dir")
    assert not (tmp_path / "r.db").exists()


def test_data_pull_offline_fails_fast(tmp_path):
    proc = mergeval("data", "pull", "--suite", "leaderboard-v1", "--to", tmp_path / "mirror")
    _user_error(proc, "HF_HUB_OFFLINE")


def test_missing_data_dir(tiny_model_dir, tmp_path):
    proc = mergeval("eval", tiny_model_dir, "--suite", "leaderboard-v1", "--tasks", "arc",
                    "--data-dir", tmp_path / "nope", "--store", tmp_path / "r.db")
    _user_error(proc, "does not exist", "mergeval data pull")
