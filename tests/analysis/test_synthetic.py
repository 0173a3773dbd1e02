"""The comparison on synthetic stored results with known answers: scores, paired tests, retention,
regressions, gates and exit codes (nothing is evaluated: the items are written into the store directly)."""

import json
import subprocess
import sys

import pytest
from compare_helpers import correct_on, store_task
from typer.testing import CliRunner

from mergeval.analysis import compare_plan, exit_code, run_plan
from mergeval.cli import app
from mergeval.models import resolve
from mergeval.plan import parse_plan
from mergeval.store import Store
from mergeval.testing import make_tiny_llama

GATES_MIXED = """\
  - average >= min(parents)
  - no regressions on arc
  - no regressions on mmlu, winogrande
  - retention >= 95%
  - {type: retention, tasks: [arc], at_least: 90%}
  - arc >= other
  - sanity
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory, mini_suite):
    """Three models with known stored results, one baseline with none, and a plan-writing helper."""
    root = tmp_path_factory.mktemp("synthetic")
    fps = {}
    for seed, name in enumerate(["merged", "parent-a", "parent-b", "other"]):
        fps[name] = resolve(make_tiny_llama(root / name, seed=seed)).fingerprint
    with Store(root / "results.db") as store:
        for name, fp in fps.items():
            store.upsert_model(fp, name=name, reference=str(root / name), kind="local")
        # ARC (acc_norm): a 80%, b 70%, merged 40% on the items both parents know -> a significant regression
        store_task(store, fps["parent-a"], "smoke_arc", correct_on(80, 100), metric="acc_norm")
        store_task(store, fps["parent-b"], "smoke_arc", correct_on(70, 100), metric="acc_norm")
        store_task(store, fps["merged"], "smoke_arc", correct_on(40, 100), metric="acc_norm")
        # the same task under another few-shot count must not be read for this suite (0-shot)
        store_task(store, fps["merged"], "smoke_arc", correct_on(100, 100), metric="acc_norm", num_fewshot=25)
        # MMLU, two subjects of 50: a is strong in astronomy, b in nutrition; the merge is in between
        for fp_name, astro, nutr in (("parent-a", 30, 20), ("parent-b", 20, 30), ("merged", 25, 25)):
            store_task(store, fps[fp_name], "smoke_mmlu_astronomy", correct_on(astro, 50))
            store_task(store, fps[fp_name], "smoke_mmlu_nutrition", correct_on(nutr, 50))
        # Winogrande: a 50%, b 60%, merged 90% -> a significant improvement
        for fp_name, right in (("parent-a", 50), ("parent-b", 60), ("merged", 90)):
            store_task(store, fps[fp_name], "smoke_winogrande", correct_on(right, 100))

    def plan(gates: str, extra: str = ""):
        text = f"""\
title: synthetic
models:
  - candidate: ./merged
  - parent: ./parent-a
  - parent: ./parent-b
  - baseline: ./other
checks:
  - type: suite
    suite: {mini_suite}
    limit: 100
gates:
{gates}
settings:
  dtype: float32
  n_boot: 2000
store: results.db
{extra}"""
        path = root / "plan.yaml"
        path.write_text(text)
        return path

    return {"root": root, "fps": fps, "plan": plan}


def test_scores_averages_and_missing_evaluations(world):
    report = compare_plan(world["plan"](GATES_MIXED))
    assert [b["name"] for b in report["benchmarks"]] == ["arc", "mmlu", "winogrande"]
    arc = {m: report["scores"][m]["arc"] for m in ("merged", "parent-a", "parent-b")}
    assert {m: s["value"] for m, s in arc.items()} == {"merged": 40.0, "parent-a": 80.0, "parent-b": 70.0}
    assert arc["merged"]["n"] == 100 and arc["merged"]["n_target"] == 100
    assert arc["merged"]["ci_low"] < 40.0 < arc["merged"]["ci_high"]
    assert report["scores"]["merged"]["mmlu"]["value"] == pytest.approx(50.0)  # mean of subjects 50 and 50
    assert report["averages"] == {
        "merged": pytest.approx(60.0),
        "parent-a": pytest.approx(60.0),
        "parent-b": pytest.approx(60.0),
        "other": None,
    }
    subjects = {row["task"]: row for row in report["subjects"]["mmlu"]}
    assert subjects["smoke_mmlu_astronomy"]["group"] == "stem"
    assert subjects["smoke_mmlu_astronomy"]["values"]["parent-a"] == pytest.approx(60.0)
    missing = {(m["model"], m["benchmark"]) for m in report["missing"]}
    assert missing == {("other", "arc"), ("other", "mmlu"), ("other", "winogrande")}
    assert report["models"][0]["fingerprint"] == world["fps"]["merged"]


def test_paired_comparisons_are_paired_and_holm_adjusted(world):
    report = compare_plan(world["plan"](GATES_MIXED))
    rows = {(c["reference"], c["benchmark"]): c for c in report["comparisons"]}
    assert {r for r, _ in rows} == {"parent-a", "parent-b", "mean(parents)"}  # no data for the baseline
    arc_b = rows[("parent-b", "arc")]
    assert arc_b["diff"] == pytest.approx(-30.0)
    assert arc_b["test"] == "mcnemar" and arc_b["n_paired"] == 100 and arc_b["n_missing"] == 0
    assert arc_b["p_value"] == pytest.approx(2 * 0.5**30)  # 30 discordant items, all favouring parent-b
    assert arc_b["significant"] and arc_b["p_adjusted"] >= arc_b["p_value"]
    mmlu_a = rows[("parent-a", "mmlu")]
    assert mmlu_a["test"] == "bootstrap" and mmlu_a["n_paired"] == 100  # stratified by subject
    assert mmlu_a["diff"] == pytest.approx(0.0) and not mmlu_a["significant"]
    mean_arc = rows[("mean(parents)", "arc")]
    assert mean_arc["reference_value"] == pytest.approx(75.0) and mean_arc["diff"] == pytest.approx(-35.0)


def test_retention_and_regressions_with_known_answers(world):
    report = compare_plan(world["plan"](GATES_MIXED))
    retention = {r["benchmark"]: r for r in report["retention"]}
    assert retention["arc"]["vs_mean_parents"] == pytest.approx(40 / 75)
    assert retention["arc"]["vs_best_parent"] == pytest.approx(0.5)
    assert retention["arc"]["per_parent"] == {
        "parent-a": pytest.approx(0.5),
        "parent-b": pytest.approx(40 / 70),
    }
    assert retention["arc"]["expected_range"] == [70.0, 80.0] and retention["arc"]["within_range"] is False
    assert retention["average"]["vs_mean_parents"] == pytest.approx(1.0)
    assert "50% of parent-a's ARC (lost)" in retention["average"]["summary"]
    assert "150% of parent-b's Winogrande" in retention["average"]["summary"]
    regressions = {r["benchmark"]: r for r in report["regressions"]}
    assert regressions["arc"]["verdict"] == "regression"
    assert regressions["arc"]["threshold"] == pytest.approx(70 * 0.95)
    assert regressions["arc"]["drop"] == pytest.approx(30.0)
    assert regressions["arc"]["critical"] is True and regressions["winogrande"]["critical"] is True
    assert regressions["winogrande"]["verdict"] == "improvement"
    assert regressions["mmlu"]["verdict"] == "ok"


def test_gates_pass_fail_and_not_evaluated(world):
    report = compare_plan(world["plan"](GATES_MIXED))
    status = {g["name"]: g["status"] for g in report["gates"]}
    assert status == {
        "average >= min(parents)": "pass",
        "no regressions on arc": "fail",
        "no regressions on mmlu, winogrande": "pass",
        "retention >= 95%": "pass",
        "retention of arc >= 90% of the mean of parents": "fail",
        "arc >= other": "not evaluated",
        "sanity checks pass": "not evaluated",
    }
    gates = {g["name"]: g for g in report["gates"]}
    assert "arc: 40.00 vs threshold 66.50" in gates["no regressions on arc"]["detail"]
    assert "other has no arc results" in gates["arc >= other"]["detail"]
    assert "add `- type: sanity`" in gates["sanity checks pass"]["detail"]
    assert report["verdict"]["status"] == "fail" and exit_code(report) == 1


def test_gate_thresholds_with_arithmetic(world):
    # averages: merged 60, parents 60 and 60; winogrande: merged 90, parents 50 and 60; arc: 40 vs 80 and 70
    gates = (
        "  - average >= mean(parents) * 1.02\n"
        "  - winogrande >= max(parents) + 25\n"
        "  - arc >= min(parents) - 30\n"
        "  - arc >= parent-b - 31\n"
    )
    report = compare_plan(world["plan"](gates))
    rows = {g["name"]: g for g in report["gates"]}
    assert {name: row["status"] for name, row in rows.items()} == {
        "average >= mean(parents) * 1.02": "fail",
        "winogrande >= max(parents) + 25": "pass",
        "arc >= min(parents) - 30": "pass",
        "arc >= parent-b - 31": "pass",
    }
    assert rows["average >= mean(parents) * 1.02"]["threshold"] == pytest.approx(61.2)
    assert rows["winogrande >= max(parents) + 25"]["threshold"] == pytest.approx(85.0)
    assert "mean(parents) * 1.02" in rows["average >= mean(parents) * 1.02"]["detail"]
    with pytest.raises(Exception, match="unknown reference 'parent-c'"):
        compare_plan(world["plan"]("  - arc >= parent-c * 1.1\n"))
    with pytest.raises(Exception, match="a percentage can only multiply"):
        compare_plan(world["plan"]("  - arc >= base - 2%\n"))
    with pytest.raises(Exception, match="'two' after '\\+' .* is not a number"):
        compare_plan(world["plan"]("  - arc >= min(parents) + two\n"))
    chained = compare_plan(world["plan"]("  - arc >= mean(parents) * 50% + 2\n  - arc >= 50 - 11\n"))
    assert [g["threshold"] for g in chained["gates"]] == [pytest.approx(75 * 0.5 + 2), pytest.approx(39.0)]
    assert [g["status"] for g in chained["gates"]] == ["pass", "pass"]


def test_exit_codes_through_the_cli(world):
    runner = CliRunner()
    passing = world["plan"]("  - average >= min(parents)\n  - no regressions on mmlu\n")
    result = runner.invoke(app, ["gate", str(passing), "--no-write"])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output

    incomplete = world["plan"]("  - average >= min(parents)\n  - mtbench >= mean(parents)\n")
    result = runner.invoke(app, ["gate", str(incomplete), "--json", "--no-write"])
    assert result.exit_code == 3
    verdict = json.loads(result.stdout)["verdict"]
    assert verdict["status"] == "incomplete" and "mtbench >= mean(parents)" in verdict["summary"]

    # the installed entry point (main) maps a failed gate to 1 and a user error to 2
    failing = world["plan"](GATES_MIXED)
    cmd = [sys.executable, "-m", "mergeval.cli", "gate", str(failing), "--no-write", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["verdict"]["exit_code"] == 1
    proc = subprocess.run(
        [sys.executable, "-m", "mergeval.cli", "gate", str(world["root"] / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2 and "No plan file" in proc.stderr


def test_incomplete_results_are_not_evaluated_never_passed(world, tmp_path):
    import shutil

    # The runs said each task has 150 documents (as `mergeval run` records) but only 100 are stored.
    shutil.copy(world["root"] / "results.db", tmp_path / "partial.db")
    with Store(tmp_path / "partial.db") as store:
        for check in store.checks("lm-eval"):
            store.cache_put("mergeval.task", check.hash, {"n_docs": 150})
    path = _plan_copy(world, tmp_path, "limit: 150")
    path.write_text(path.read_text().replace(f"store: {world['root']}/results.db", "store: partial.db"))
    report = compare_plan(path)
    assert (
        report["scores"]["merged"]["arc"]["n"] == 100 and report["scores"]["merged"]["arc"]["n_target"] == 150
    )
    assert report["scores"]["merged"]["arc"]["value"] == pytest.approx(40.0)  # shown, marked partial
    assert {g["status"] for g in report["gates"]} == {"not evaluated"}
    assert any("incomplete: 100 of 150 items" in m["detail"] for m in report["missing"])
    assert report["retention"] == [] and report["regressions"] == []
    assert exit_code(report) == 3


def _plan_copy(world, tmp_path, limit_line):
    text = world["plan"]("  - average >= min(parents)\n  - no regressions\n").read_text()
    text = text.replace("limit: 100", limit_line).replace(
        "store: results.db", f"store: {world['root']}/results.db"
    )
    for name in ("merged", "parent-a", "parent-b", "other"):
        text = text.replace(f"./{name}", str(world["root"] / name))
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


def test_sign_off_passes_only_for_the_signed_weights(world):
    fp = world["fps"]["merged"]
    signed = world["plan"](
        "  - sign-off\n", f"sign_off:\n  by: Jane\n  date: 2024-05-01\n  fingerprint: {fp[:10]}\n"
    )
    gate = compare_plan(signed)["gates"][0]
    assert gate["status"] == "pass" and "signed off by Jane on 2024-05-01" in gate["detail"]
    stale = world["plan"]("  - sign-off\n", "sign_off:\n  by: Jane\n  fingerprint: 0123456789\n")
    gate = compare_plan(stale)["gates"][0]
    assert gate["status"] == "fail" and "the model changed since" in gate["detail"]
    unsigned = compare_plan(world["plan"]("  - sign-off\n"))["gates"][0]
    assert unsigned["status"] == "not evaluated" and fp[:12] in unsigned["detail"]


def test_compare_without_a_store_and_with_deleted_model_folders(world, tmp_path):
    import shutil

    from mergeval.errors import UserError

    plan = parse_plan(
        world["plan"]("  - average >= min(parents)\n").read_text(),
        source=tmp_path / "p.yaml",
        check_paths=False,
    )
    with pytest.raises(UserError, match="No results store"):
        compare_plan(plan)

    # A model evaluated, then deleted from disk: its identity comes from the store (by reference).
    folder = make_tiny_llama(tmp_path / "vanished", seed=9)
    fp = resolve(folder).fingerprint
    with Store(world["root"] / "results.db") as store:
        store.upsert_model(fp, name="vanished", reference=str(folder), kind="local")
        store_task(store, fp, "smoke_arc", correct_on(10, 100), metric="acc_norm")
    shutil.rmtree(folder)
    path = _plan_copy(world, tmp_path, "limit: 100")
    path.write_text(path.read_text().replace(f"baseline: {world['root'] / 'other'}", f"baseline: {folder}"))
    report = compare_plan(path)
    assert report["provenance"]["models"]["vanished"]["identity_from_store"] is True
    assert report["scores"]["vanished"]["arc"]["value"] == pytest.approx(10.0)
    # `run` too: the other models' results are complete, the vanished one is used as stored
    said = []
    ran = run_plan(path, say=said.append)
    assert ran["scores"]["vanished"]["arc"]["value"] == pytest.approx(10.0)
    assert ran["scores"]["merged"]["arc"]["value"] == pytest.approx(40.0)
    assert any("vanished" in line and "store holds" in line for line in said)
    # a folder that is there but broken is an error for `run` (it would evaluate), not a reason to reuse
    # what the store holds under that path
    folder.mkdir()
    with pytest.raises(UserError, match="vanished"):
        run_plan(path)
    shutil.rmtree(folder)
    # neither on disk nor in the store: the error names the plan line
    path.write_text(path.read_text().replace(str(folder), str(tmp_path / "never-existed")))
    for command in (compare_plan, run_plan):
        with pytest.raises(
            UserError,
            match=r"plan.yaml:6: model 'never-existed': .* does not exist.*no model under this reference",
        ):
            command(path)
