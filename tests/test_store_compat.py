"""A store written by an earlier mergeval keeps working: the same plan compared from it (nothing is
evaluated; the judge is not even running) gives the numbers that version reported. The fixture and how it was made:
tests/fixtures/store_v1/ (make_store.py)."""

import json

from mergeval.analysis import compare_plan
from store_v1 import FIXTURE, copy_store_v1

SAME = ("scores", "averages", "subjects", "comparisons", "retention", "regressions", "sanity", "facts",
        "bands", "verdict", "missing", "benchmarks")


def _gates(report):
    return [{k: g.get(k) for k in ("name", "status", "model", "value", "threshold", "detail")}
            for g in report["gates"]]


def test_an_old_store_gives_the_same_comparison(tmp_path):
    plan = copy_store_v1(tmp_path)
    store = tmp_path / "mergeval.db"
    before = json.loads((FIXTURE / "report.json").read_text())
    after = json.loads(compare_plan(plan, store=store).to_json())  # the report.json this version writes
    assert before["missing"] == [] and before["verdict"]["status"] == "fail"
    for key in SAME:
        assert after[key] == before[key], key
    assert _gates(after) == _gates(before)
    assert [m["fingerprint"] for m in after["models"]] == [m["fingerprint"] for m in before["models"]]
