"""`mergeval diff` in real subprocesses: the table and --json against the stored rows, user errors, and (slow)
the demo's linear merge against its arithmetic parent."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from mergeval import api
from mergeval.analysis.itemdiff import item_diffs

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "200"}


def mergeval(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mergeval.cli", *map(str, args)], capture_output=True, text=True,
                          env=env or ENV, timeout=1800, check=False)


def _user_error(proc, *phrases):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    text = " ".join((proc.stdout + proc.stderr).split())
    for phrase in phrases:
        assert phrase in text, text


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_models):
    db = tmp_path_factory.mktemp("diff") / "r.db"
    api.evaluate([tiny_models / "merged", tiny_models / "parent-b"], suite="smoke", tasks=["winogrande"],
                 store=db, backend="hf")
    return db


def _stored_scores(db, model):
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT i.item_id, i.metrics FROM items i JOIN models m ON m.fingerprint = i.model_fp "
                           "WHERE m.name = ?", (model,)).fetchall()
    finally:
        con.close()
    return {r[0]: json.loads(r[1])["acc,none"] for r in rows}


def test_json_lists_the_stored_disagreements(store):
    merged, parent = _stored_scores(store, "merged"), _stored_scores(store, "parent-b")
    lost = sorted((i for i in merged if merged[i] < parent[i]), key=int)
    gained = sorted((i for i in merged if merged[i] > parent[i]), key=int)
    assert lost and gained
    proc = mergeval("diff", "merged", "parent-b", "--task", "winogrande", "--json", "--store", store)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["n_lost"], out["n_gained"], out["n_compared"]) == (len(lost), len(gained), len(merged))
    assert [it["item_id"] for it in out["items"] if it["status"] == "lost"] == lost
    assert out == json.loads(json.dumps(item_diffs(store, "merged", "parent-b", "winogrande").to_dict()))
    only = json.loads(mergeval("diff", "merged", "parent-b", "--only", "gained", "--limit", "1", "--json",
                               "--store", store).stdout)
    assert [it["item_id"] for it in only["items"]] == gained[:1] and only["n_lost"] == len(lost)


def test_table(store):
    proc = mergeval("diff", "merged", "parent-b", "--only", "lost", "--store", store)
    assert proc.returncode == 0, proc.stderr
    result = item_diffs(store, "merged", "parent-b", only="lost")
    assert f"{result.n_compared} items compared, {result.n_lost} lost, {result.n_gained} gained" in proc.stdout
    assert "merged vs parent-b: items lost" in proc.stdout
    for it in result.items:
        assert f"│ {it.item_id} " in proc.stdout
    assert "gained │" not in proc.stdout


def test_user_errors(store, tmp_path):
    _user_error(mergeval("diff", "nope", "parent-b", "--store", store), "No model 'nope'", "stored models:")
    _user_error(mergeval("diff", "merged", "parent-b", "--task", "nope", "--store", store),
                "No stored results for task 'nope'", "smoke_winogrande")
    _user_error(mergeval("diff", "merged", "parent-b", "--only", "worse", "--store", store), "--only lost")
    _user_error(mergeval("diff", "merged", "merged", "--store", store), "the same stored model")
    _user_error(mergeval("diff", "merged", "parent-b", "--store", tmp_path / "none.db"), "No results store")


@pytest.mark.slow
def test_demo_linear_merge_lost_arithmetic_items(tmp_path):
    """The issue's done-when: `mergeval diff` finds the items the demo's linear merge lost on arithmetic."""
    db = tmp_path / "demo.db"
    demo = mergeval("demo", "--store", db, "--out", tmp_path / "out", "--no-smoke")
    assert db.exists(), demo.stdout[-3000:] + demo.stderr[-3000:]
    proc = mergeval("diff", "linear", "arithmetic-parent", "--task", "arithmetic", "--only", "lost", "--json",
                    "--store", db)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT m.name, i.item_id, i.metrics, i.data FROM items i JOIN models m ON "
                       "m.fingerprint = i.model_fp JOIN checks c ON c.hash = i.check_hash "
                       "WHERE c.name = 'demo_arithmetic'").fetchall()
    con.close()
    score = {(r[0], r[1]): json.loads(r[2])["exact_match,number"] for r in rows}
    data = {(r[0], r[1]): json.loads(r[3]) for r in rows}
    lost = {i for (m, i), s in score.items() if m == "linear" and s == 0 and score[("arithmetic-parent", i)] == 1}
    assert lost and {it["item_id"] for it in out["items"]} == lost and out["n_lost"] == len(lost)
    for it in out["items"]:
        assert it["gold"] == data[("linear", it["item_id"])]["target"]
        assert it["question"].startswith("Question: What is")  # stored beside the result
        assert it["candidate"]["extracted"] != it["gold"] and it["parent"]["extracted"] == it["gold"]
