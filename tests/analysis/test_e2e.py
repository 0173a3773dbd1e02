"""End to end: two tiny parents and a real weight-average merge of them, evaluated on a small suite through
`mergeval run`, compared, gated, with every report file written."""

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from mergeval.analysis import compare_plan
from mergeval.cli import app
from mergeval.evaluation import evaluate
from mergeval.models import resolve
from mergeval.suites import load_suite

REPORT_KEYS = {
    "schema",
    "title",
    "generated_at",
    "mergeval_version",
    "plan",
    "suite",
    "models",
    "benchmarks",
    "scores",
    "averages",
    "subjects",
    "comparisons",
    "retention",
    "regressions",
    "gates",
    "sanity",
    "bands",
    "verdict",
    "provenance",
    "facts",
    "missing",
}


@pytest.fixture(scope="module")
def ran(tiny_models, mini_suite, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    plan = root / "mergeval.yaml"
    plan.write_text(f"""\
title: tiny average merge
models:
  - name: merged
    path: {tiny_models / "merged"}
    role: candidate
  - parent: {tiny_models / "parent-a"}
  - parent: {tiny_models / "parent-b"}
checks:
  - type: sanity
    max_new_tokens: 24
  - type: suite
    suite: {mini_suite}
    limit: 6
gates:
  - average >= 0
  - size_gb <= 1
  - sanity
settings:
  dtype: float32
  n_boot: 1000
""")
    result = CliRunner().invoke(app, ["run", str(plan)])
    assert result.exit_code == 1, result.output  # the verdict: random weights fail the sanity gate
    return {"plan": plan, "root": root, "output": result.output}


def test_run_evaluates_compares_and_writes_every_report(ran):
    out = ran["root"] / "mergeval-results" / "report"
    report = json.loads((out / "report.json").read_text())
    assert set(report) == REPORT_KEYS
    assert report["schema"] == "mergeval.report/1"
    assert [m["name"] for m in report["models"]] == ["merged", "parent-a", "parent-b"]
    for m in report["models"]:
        assert report["scores"][m["name"]]["arc"]["n"] == 6
        assert report["scores"][m["name"]]["mmlu"]["n"] == 12  # two subjects x 6
        assert report["averages"][m["name"]] is not None
    assert report["missing"] == []
    pairs = {(c["reference"], c["benchmark"]) for c in report["comparisons"]}
    assert pairs == {
        (r, b) for r in ("parent-a", "parent-b", "mean(parents)") for b in ("arc", "mmlu", "winogrande")
    }
    assert all(c["n_paired"] == (12 if c["benchmark"] == "mmlu" else 6) for c in report["comparisons"])
    assert {r["benchmark"] for r in report["retention"]} == {"arc", "mmlu", "winogrande", "average"}
    assert report["provenance"]["tasks"]["smoke_arc"]["num_fewshot"] == 0
    assert report["provenance"]["lm_eval_version"]
    markdown = (out / "report.md").read_text()
    assert "# tiny average merge" in markdown and "## Deployment checklist" in markdown
    assert "| merged | candidate |" in markdown
    html = (out / "report.html").read_text()
    assert "tiny average merge" in html and "<html" in html.lower()
    assert 'id="per-item"' in html  # `mergeval run` gives the page the store's per-item view


def test_provenance_names_the_backend_and_device_the_runs_recorded(ran):
    report = json.loads((ran["root"] / "mergeval-results" / "report" / "report.json").read_text())
    con = sqlite3.connect(report["provenance"]["store"])
    try:
        rows = con.execute("SELECT m.name, r.provenance FROM runs r JOIN models m ON m.fingerprint = r.model_fp "
                           "WHERE r.status = 'done'").fetchall()
    finally:
        con.close()
    recorded: dict[str, dict[str, set[str]]] = {}
    for name, prov in rows:
        for key in ("backend", "device"):
            if json.loads(prov).get(key):
                recorded.setdefault(name, {}).setdefault(key, set()).add(str(json.loads(prov)[key]))
    assert set(recorded) == {"merged", "parent-a", "parent-b"}
    for name, keys in recorded.items():
        entry = report["provenance"]["models"][name]
        assert {k: set(entry[k].split(", ")) for k in keys} == keys
    html = (ran["root"] / "mergeval-results" / "report" / "report.html").read_text()
    assert "device <code>not recorded</code>" not in html and "backend <code>not recorded</code>" not in html


def test_sanity_of_a_random_merge_fails_and_the_gate_says_so(ran):
    report = compare_plan(ran["plan"])
    sanity = {s["check"]: s["status"] for s in report["sanity"]}
    assert sanity["weights_finite"] == "pass" and sanity["tokenizer"] == "pass"
    assert sanity["chat_template"] == "pass"
    assert sanity["instruction"] == "fail"  # random weights do not know Paris
    gates = {g["name"]: g["status"] for g in report["gates"]}
    assert gates == {"average >= 0": "pass", "size_gb <= 1": "pass", "sanity checks pass": "fail"}
    result = CliRunner().invoke(app, ["gate", str(ran["plan"]), "--no-write"])
    assert result.exit_code == 1
    assert "FAIL" in result.output


def test_compare_reads_the_same_numbers_as_evaluate_from_the_store(ran, tiny_models, mini_suite):
    report = compare_plan(ran["plan"])
    refs = [resolve(tiny_models / n, name=n, dtype="float32") for n in ("merged", "parent-a", "parent-b")]
    store = ran["root"] / "mergeval-results" / "mergeval.db"
    result = evaluate(refs, suite=load_suite(str(mini_suite)), limit=6, store=store, dtype="float32")
    assert result.evaluated_items == 0  # everything is stored: no model runs
    for model in result.models:
        for bench, score in model.scores.items():
            assert report["scores"][model.name][bench]["value"] == pytest.approx(score.value)
        assert report["averages"][model.name] == pytest.approx(model.average)
    assert [m["fingerprint"] for m in report["models"]] == [r.fingerprint for r in refs]


def test_a_second_run_evaluates_nothing(ran):
    from mergeval.store import Store

    store = ran["root"] / "mergeval-results" / "mergeval.db"
    with Store(store) as db:
        runs_before = len(db.runs())
    result = CliRunner().invoke(app, ["run", str(ran["plan"]), "--json", "--no-write"])
    assert result.exit_code == 1, result.output
    again = json.loads(result.stdout)
    first = json.loads((ran["root"] / "mergeval-results" / "report" / "report.json").read_text())
    assert again["scores"] == first["scores"]
    assert again["comparisons"] == first["comparisons"]  # seeded bootstrap: same numbers
    with Store(store) as db:
        assert len(db.runs()) == runs_before  # no model was run again
