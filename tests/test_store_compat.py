"""A store written by an earlier mergeval keeps working: the same plan compared from it (nothing is
evaluated; the judge is not even running) gives the numbers that version reported. The fixture and how it was made:
tests/fixtures/store_v1/ (make_store.py)."""

import json
import shutil
from pathlib import Path

from mergeval.analysis import compare_plan
from mergeval.testing import make_tiny_llama

FIXTURE = Path(__file__).parent / "fixtures" / "store_v1"
SAME = ("scores", "averages", "subjects", "comparisons", "retention", "regressions", "sanity", "facts",
        "bands", "verdict", "missing", "benchmarks")


def _gates(report):
    return [{k: g.get(k) for k in ("name", "status", "model", "value", "threshold", "detail")}
            for g in report["gates"]]


def test_an_old_store_gives_the_same_comparison(tmp_path):
    for f in FIXTURE.iterdir():
        if f.suffix in (".yaml", ".jsonl", ".db"):
            shutil.copy(f, tmp_path / f.name)
    for name, seed in (("merged", 11), ("parent-a", 12), ("parent-b", 13)):  # as make_store.py made them
        make_tiny_llama(tmp_path / "models" / name, seed=seed)
    plan = tmp_path / "plan.yaml"
    store = tmp_path / "mergeval.db"
    before = json.loads((FIXTURE / "report.json").read_text())
    after = json.loads(compare_plan(plan, store=store).to_json())  # the report.json this version writes
    assert before["missing"] == [] and before["verdict"]["status"] == "fail"
    for key in SAME:
        assert after[key] == before[key], key
    assert _gates(after) == _gates(before)
    assert [m["fingerprint"] for m in after["models"]] == [m["fingerprint"] for m in before["models"]]
