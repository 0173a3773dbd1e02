"""Per-item parity with plain lm-eval, resume after SIGKILL, and the item-by-item store contract."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from mergeval.engines.lmeval.harness import TaskLoader, make_lm, prepare_suite
from mergeval.evaluation import evaluate
from mergeval.models import resolve
from mergeval.store import Store
from mergeval.suites import load_suite

SIX = ["arc", "hellaswag", "mmlu_anatomy", "truthfulqa", "winogrande", "gsm8k"]


def _direct_lm_eval(loader, lm, prepared, limit):
    """What a user gets from a plain `lm_eval.simple_evaluate` with the same task config."""
    import lm_eval

    cfg, _ = loader.config_for(prepared.name, prepared.benchmark)
    return lm_eval.simple_evaluate(model=lm, tasks=[cfg], limit=limit, bootstrap_iters=0,
                                   task_manager=loader.manager, log_samples=True)


def _assert_parity(store_path, ref, prepared, lm, limit, loader):
    direct = _direct_lm_eval(loader, lm, prepared, limit)
    metric, filt = prepared.metric_key.split(",")
    ref_items = {str(s["doc_id"]): s for s in direct["samples"][prepared.name] if s["filter"] == filt}
    with Store(store_path) as store:
        items = {i.item_id: i for i in store.items(ref.fingerprint, prepared.check_hash, with_data=True)}
    assert set(items) == set(ref_items) == {str(i) for i in range(limit)}
    for item_id, ours in items.items():
        theirs = ref_items[item_id]
        assert ours.metrics[prepared.metric_key] == pytest.approx(theirs[metric], abs=1e-6), (prepared.name, item_id)
        assert ours.data["prompt_hash"] == theirs["prompt_hash"]  # same few-shot context, same prompt
    ours_mean = sum(i.metrics[prepared.metric_key] for i in items.values()) / len(items)
    assert ours_mean == pytest.approx(direct["results"][prepared.name][f"{metric},{filt}"], abs=1e-9)


def test_per_item_parity_with_plain_lm_eval_on_real_data(tiny_model_dir, hf_data, tmp_path):
    suite = load_suite("leaderboard-v1").subset(SIX)
    store_path = tmp_path / "r.db"
    limit = 3
    ref = resolve(tiny_model_dir, dtype="float32", batch_size=4)
    evaluate(ref, suite=suite, limit=limit, store=store_path, data_dir=hf_data, backend="hf", dtype="float32")
    loader = TaskLoader(suite, data_dir=hf_data)
    prepared = {t: loader.load(t, b, dtype="float32") for b in suite.benchmarks for t in b.tasks}
    lm = make_lm(ref, "hf")
    for p in prepared.values():
        _assert_parity(store_path, ref, p, lm, limit, loader)


def test_subset_resume_gives_the_same_items_as_one_full_run(tiny_model_dir, hf_data, tmp_path):
    """Few-shot examples depend on document order; evaluating 0..3 then 0..7 must equal 0..7 at once."""
    suite = load_suite("leaderboard-v1").subset(["arc", "winogrande"])
    ref = resolve(tiny_model_dir, dtype="float32", batch_size=2)
    kw = {"suite": suite, "data_dir": hf_data, "backend": "hf", "dtype": "float32"}
    step = evaluate(ref, limit=3, store=tmp_path / "a.db", **kw)
    step = evaluate(ref, limit=7, store=tmp_path / "a.db", **kw)
    assert step.evaluated_items == 8  # 4 new items in each of the two tasks
    full = evaluate(ref, limit=7, store=tmp_path / "b.db", **kw)
    prepared = prepare_suite(suite, data_dir=hf_data, dtype="float32")
    with Store(tmp_path / "a.db") as a, Store(tmp_path / "b.db") as b:
        for p in prepared.values():
            ia = {i.item_id: (i.metrics, i.data["prompt_hash"]) for i in a.items(ref.fingerprint, p.check_hash, with_data=True)}
            ib = {i.item_id: (i.metrics, i.data["prompt_hash"]) for i in b.items(ref.fingerprint, p.check_hash, with_data=True)}
            assert ia == ib
    assert step.model(ref.name).scores["arc"].value == full.model(ref.name).scores["arc"].value


def test_second_evaluation_never_loads_the_model(tiny_model_dir, hf_data, tmp_path, monkeypatch):
    suite = load_suite("leaderboard-v1").subset(["mmlu_anatomy"])
    ref = resolve(tiny_model_dir, dtype="float32")
    first = evaluate(ref, suite=suite, limit=5, store=tmp_path / "s.db", data_dir=hf_data, backend="hf")
    assert first.evaluated_items == 5

    import mergeval.checks.lmeval as check  # where the check type loads its model

    def _no_model(*a, **k):
        raise AssertionError("the model was loaded although every item is stored")

    monkeypatch.setattr(check, "make_lm", _no_model)
    again = evaluate(ref, suite=suite, limit=5, store=tmp_path / "s.db", data_dir=hf_data, backend="hf")
    assert again.evaluated_items == 0
    assert again.model(ref.name).scores["mmlu_anatomy"].value == first.model(ref.name).scores["mmlu_anatomy"].value


def _count(db_path):
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT count(*) FROM items").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_sigkill_mid_task_then_resume_is_complete_and_identical(tmp_path, hf_data):
    from mergeval.testing import make_tiny_llama

    # A slightly larger tiny model so a task takes seconds, long enough to be killed in the middle.
    model = make_tiny_llama(tmp_path / "m", seed=3, hidden_size=128, num_layers=4, intermediate_size=256)
    db = tmp_path / "kill.db"
    limit = 24
    cmd = [sys.executable, "-m", "mergeval.cli", "eval", str(model), "--suite", "leaderboard-v1", "--tasks", "arc",
           "--limit", str(limit), "--batch-size", "1", "--data-dir", str(hf_data), "--store", str(db),
           "--backend", "hf", "--dtype", "float32"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and _count(db) == 0:
        time.sleep(0.05)
    assert proc.poll() is None, f"run finished before it could be killed: {proc.stderr.read().decode()[-500:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _count(db)
    assert 0 < partial < limit

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _count(db) == limit  # complete, no duplicates (one row per item)

    fresh = tmp_path / "fresh.db"
    subprocess.run([*cmd[:-6], "--store", str(fresh), "--backend", "hf", "--dtype", "float32"], env=env,
                   check=True, capture_output=True, timeout=600)
    con_a, con_b = sqlite3.connect(db), sqlite3.connect(fresh)
    rows_a = dict(con_a.execute("SELECT item_id, metrics FROM items").fetchall())
    rows_b = dict(con_b.execute("SELECT item_id, metrics FROM items").fetchall())
    assert rows_a == rows_b
    runs = con_a.execute("SELECT status FROM runs ORDER BY id").fetchall()
    assert [r[0] for r in runs][-1] == "done"


@pytest.mark.slow
def test_smollm2_parity_with_plain_lm_eval(smollm2_dir, hf_data, tmp_path):
    """The real model, fp32, a couple of real items of each of the six leaderboard tasks."""
    suite = load_suite("leaderboard-v1").subset(SIX)
    store_path = tmp_path / "smol.db"
    limit = 2
    ref = resolve(smollm2_dir, dtype="float32", batch_size=4)
    evaluate(ref, suite=suite, limit=limit, store=store_path, data_dir=hf_data, backend="hf", dtype="float32")
    loader = TaskLoader(suite, data_dir=hf_data)
    prepared = {t: loader.load(t, b, dtype="float32") for b in suite.benchmarks for t in b.tasks}
    lm = make_lm(ref, "hf")
    for p in prepared.values():
        _assert_parity(store_path, ref, p, lm, limit, loader)
