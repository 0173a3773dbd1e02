"""The comparison, gates, bands and reports on leaderboard-v2 as on v1: two tiny parents and their merge run
through `mergeval run` on a small v2 suite (the fixture tasks; GPQA gated and absent), with normalised scores
and raw ones beside them, paired statistics per subtask, gates naming v2 benchmarks, no v1 band labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mergeval.cli import app
from mergeval.errors import UserError
from mergeval.plan import load_plan, plan_vocabulary
from mergeval.suites import SUITES_DIR
from mergeval.suites import normalization as norm

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v2"
FIXTURE_TASKS = {
    "bbh": ["leaderboard_bbh_boolean_expressions", "leaderboard_bbh_date_understanding"],
    "musr": ["leaderboard_musr_murder_mysteries", "leaderboard_musr_object_placements",
             "leaderboard_musr_team_allocation"],
}


def _small_v2_suite(folder: Path) -> Path:
    """leaderboard-v2 with BBH cut to the two subtasks the fixtures hold, and without the generative
    benchmarks (IFEval, MATH: covered by the parity tests), so tiny models run it in seconds."""
    spec = yaml.safe_load((SUITES_DIR / "leaderboard_v2.yaml").read_text())
    spec["name"] = "leaderboard-v2-small"
    benchmarks = []
    for b in spec["benchmarks"]:
        if b["name"] in ("ifeval", "math"):
            continue
        if b["name"] in FIXTURE_TASKS:
            b["tasks"] = FIXTURE_TASKS[b["name"]]
        benchmarks.append(b)
    spec["benchmarks"] = benchmarks
    path = folder / "v2-small.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def ran(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("v2plan")
    suite = _small_v2_suite(root)
    plan = root / "mergeval.yaml"
    plan.write_text(f"""\
title: tiny merge on leaderboard v2
models:
  - name: merged
    path: {tiny_models / "merged"}
    role: candidate
  - parent: {tiny_models / "parent-a"}
  - parent: {tiny_models / "parent-b"}
checks:
  - type: suite
    suite: {suite.name}
    limit: 2
    data_dir: {FIXTURES}
gates:
  - average >= min(parents) - 100
  - no regressions on bbh, musr, mmlu_pro
  - gpqa >= min(parents)
settings:
  dtype: float32
  backend: hf
  n_boot: 500
""")
    result = CliRunner().invoke(app, ["run", str(plan)])
    assert result.exit_code in (0, 1, 3), result.output
    report = json.loads((root / "mergeval-results" / "report" / "report.json").read_text())
    return {"root": root, "report": report, "output": result.output}


def test_scores_are_normalised_with_raw_beside_them(ran):
    report = ran["report"]
    assert [b["name"] for b in report["benchmarks"]] == ["bbh", "gpqa", "musr", "mmlu_pro"]
    assert all(b.get("normalized") for b in report["benchmarks"])
    for model, scores in report["scores"].items():
        mmlu_pro = scores["mmlu_pro"]
        assert mmlu_pro["value"] == pytest.approx(norm.normalize(mmlu_pro["raw"] / 100, 10))
        assert scores["bbh"]["raw"] is not None and scores["musr"]["raw"] is not None
        assert scores["gpqa"]["value"] is None and scores["gpqa"].get("raw") is None  # never 0
        assert report["averages"][model] == pytest.approx(
            (scores["bbh"]["value"] + scores["musr"]["value"] + mmlu_pro["value"]) / 3)
    # BBH: each subtask normalised with its own number of choices, then averaged.
    bbh = next(r for r in report["subjects"]["bbh"])
    assert bbh["task"] in FIXTURE_TASKS["bbh"]
    assert report["provenance"]["average_of"] == ["bbh", "musr", "mmlu_pro"]
    assert report["suite"]["average_note"] == "Average over 3 of 4 benchmarks (GPQA not evaluated)"
    assert report["suite"]["label"].endswith("reproduction of the Open LLM Leaderboard v2 settings")


def test_gpqa_is_missing_with_the_gated_reason(ran):
    report = ran["report"]
    gpqa = [m for m in report["missing"] if m["benchmark"] == "gpqa"]
    assert len(gpqa) == 3 and all("Idavidrein/gpqa is gated" in m["detail"] for m in gpqa)
    gate = next(g for g in report["gates"] if g["name"].startswith("gpqa"))
    assert gate["status"] == "not evaluated" and "gated" in gate["detail"]


def test_paired_statistics_per_subtask_on_the_normalised_scale(ran):
    report = ran["report"]
    rows = [c for c in report["comparisons"] if c["candidate"] == "merged" and c["reference"] == "parent-a"]
    by_bench = {r["benchmark"]: r for r in rows}
    assert set(by_bench) == {"bbh", "musr", "mmlu_pro"}
    assert by_bench["bbh"]["test"] == "bootstrap"  # stratified by subtask
    assert by_bench["bbh"]["n_paired"] == 4  # 2 subtasks x limit 2
    # MMLU-Pro (one task): the candidate's item mean on the unclamped normalised scale.
    raw = report["scores"]["merged"]["mmlu_pro"]["raw"] / 100
    assert by_bench["mmlu_pro"]["candidate_value"] == pytest.approx((raw - 0.1) / 0.9 * 100)


def test_gates_name_v2_benchmarks_and_no_v1_band_is_shown(ran):
    report = ran["report"]
    names = [g["name"] for g in report["gates"]]
    assert names[1].startswith("no regressions on bbh, musr, mmlu_pro") or "bbh" in names[1]
    assert report["gates"][0]["status"] == "pass"  # average >= min(parents) - 100: on the v2 Average
    assert all(b["leaderboard"] is None for b in report["bands"].values())
    assert "leaderboard band" not in json.dumps(report["gates"])


def test_reports_show_the_v2_columns(ran):
    out = ran["root"] / "mergeval-results" / "report"
    md = (out / "report.md").read_text()
    assert "BBH (acc_norm,none, normalised)" in md and "(raw " in md
    assert "Average over 3 of 4 benchmarks (GPQA not evaluated)." in md
    html = (out / "report.html").read_text()
    assert 'class="raw"' in html and "normalised" in html


def test_the_leaderboard_check_has_a_v2_variant(tmp_path, tiny_models):
    plan = tmp_path / "p.yaml"
    plan.write_text(f"""\
models:
  - candidate: {tiny_models / "merged"}
  - parent: {tiny_models / "parent-a"}
checks:
  - type: leaderboard
    version: 2
    tasks: [mmlu_pro, bbh]
    chat_template: true
gates:
  - mmlu_pro >= min(parents)
  - no regressions on bbh
""")
    loaded = load_plan(plan)
    assert loaded.checks[0].suite_name == "leaderboard-v2" and loaded.checks[0].chat_template is True
    assert {"mmlu_pro", "bbh"} <= set(plan_vocabulary(loaded).benchmarks)
    plan.write_text(plan.read_text().replace("tasks: [mmlu_pro, bbh]", "tasks: [arc]"))
    with pytest.raises(UserError, match="ifeval, bbh, math, gpqa, musr, mmlu_pro"):
        load_plan(plan)
