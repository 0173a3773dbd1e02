"""`mergeval sweep`: grid expansion, honest selection, ranking, report, and resume after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from mergeval.errors import UserError
from mergeval.merge import SplitPlan, expand_candidates, in_selection, load_sweep, pareto_front, run_sweep
from mergeval.merge.spec import SelectionSpec
from mergeval.store import Store
from mergeval.suites.demo_skills import SUITE_FILE


def _spec(family, grid, **extra):
    return {
        "name": "t",
        "config": {
            "models": [{"model": str(family.a)}, {"model": str(family.b)}],
            "base_model": str(family.base),
            "dtype": "float32",
        },
        "grid": grid,
        "checks": {"suite": str(SUITE_FILE), "limit": 6},
        **extra,
    }


# -- expansion ---------------------------------------------------------------------------------------------


def test_grid_expands_per_method_and_drops_what_a_method_does_not_take(family):
    spec = load_sweep(
        _spec(
            family,
            [
                {
                    "merge_method": "linear",
                    "weight": [{"parent-a": 0.3, "parent-b": 0.7}, {"parent-a": 0.5, "parent-b": 0.5}],
                },
                {"merge_method": "slerp", "base_model": "parent-a", "t": [0.25, 0.75]},
                # density is a ties parameter: [linear, ties] x 2 densities = 1 linear + 2 ties candidates
                {"merge_method": ["linear", "ties"], "weight": 1.0, "density": [0.3, 0.6]},
                {"merge_method": "dare_ties", "weight": 1.0, "density": 0.5, "seed": [0, 1]},
                {
                    "merge_method": "ties",
                    "weight": 1.0,
                    "density": 0.3,
                },  # a duplicate of an earlier candidate
            ],
        )
    )
    candidates = expand_candidates(spec)
    labels = [c.label for c in candidates]
    assert len(candidates) == 2 + 2 + 1 + 2 + 2, labels
    assert len({c.key for c in candidates}) == len(candidates)
    linear_weights = [c.recipe.parameters for c in candidates if c.method == "linear"]
    assert {"weight[parent-a]": 0.3, "weight[parent-b]": 0.7} in linear_weights
    slerps = [c for c in candidates if c.method == "slerp"]
    assert all(c.recipe.base_model == str(family.a) for c in slerps)  # named by folder, resolved to the path
    # linear ignores the base model (mergekit would otherwise average it in)
    assert all("base_model" not in c.recipe.config for c in candidates if c.method == "linear")
    assert all(
        "density" not in c.recipe.config.get("parameters", {}) for c in candidates if c.method == "linear"
    )
    dare = [c for c in candidates if c.method == "dare_ties"]
    assert {c.parameters["seed"] for c in dare} == {0, 1}


def test_grid_errors_name_the_entry_and_the_fix(family):
    with pytest.raises(UserError, match="'densty' is not a parameter of ties"):
        expand_candidates(load_sweep(_spec(family, [{"merge_method": "ties", "weight": 1.0, "densty": 0.5}])))
    with pytest.raises(UserError, match="not one of the config's models"):
        expand_candidates(
            load_sweep(_spec(family, [{"merge_method": "linear", "weight": {"parent-c": 1.0}}]))
        )
    with pytest.raises(UserError, match="grid entry 1 .*slerp.*one of the two models"):
        expand_candidates(load_sweep(_spec(family, [{"merge_method": "slerp", "t": 0.5}])))
    with pytest.raises(UserError, match="not valid"):
        load_sweep({"config": {}, "grdi": []})


# -- selection -----------------------------------------------------------------------------------------------


def test_selection_split_is_deterministic_and_about_the_fraction():
    ids = [str(i) for i in range(2000)]
    chosen = [i for i in ids if in_selection("task", i, fraction=0.3, seed=0)]
    assert 0.26 < len(chosen) / len(ids) < 0.34
    assert chosen == [i for i in ids if in_selection("task", i, fraction=0.3, seed=0)]
    assert chosen != [i for i in ids if in_selection("task", i, fraction=0.3, seed=1)]
    plan = SplitPlan(0.5)
    scores = {("b", "task", i): 1.0 for i in ids}
    selection, report = plan.subset(scores, "selection"), plan.subset(scores, "report")
    assert not selection.keys() & report.keys() and len(selection) + len(report) == len(ids)
    assert SplitPlan(1.0).same_items
    with pytest.raises(UserError):
        SplitPlan(0.0)


def test_pareto_front():
    points = {
        "a": {"x": 1, "y": 0},
        "b": {"x": 0, "y": 1},
        "c": {"x": 0.4, "y": 0.4},
        "d": {"x": 0.5, "y": 0.5},
    }
    assert pareto_front(points) == {"a", "b", "d"}


# -- running, resuming -------------------------------------------------------------------------------------


def _runs(store_path, fingerprint) -> int:
    with Store(store_path) as db:
        return len(db.runs(model_fp=fingerprint))


def test_sweep_resumes_after_a_kill_and_reports(family, tmp_path):
    grid = [
        {
            "merge_method": "linear",
            "weight": [{"parent-a": 0.8, "parent-b": 0.2}, {"parent-a": 0.2, "parent-b": 0.8}],
        },
        {"merge_method": "ties", "weight": 1.0, "density": 0.5},
    ]
    sweep_file = tmp_path / "sweep.yml"
    sweep_file.write_text(yaml.safe_dump(_spec(family, grid, out_dir=str(tmp_path / "out"), keep="none")))
    store = tmp_path / "s.db"

    # 1. A sweep in a subprocess, killed (SIGKILL) as soon as its first candidate is done.
    proc = subprocess.Popen(
        [sys.executable, "-m", "mergeval.cli", "sweep", str(sweep_file), "--store", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    first_done = None
    deadline = time.time() + 600
    assert proc.stderr is not None
    for line in proc.stderr:
        if "[1/3]" in line and "done" in line:
            first_done = line
            proc.send_signal(signal.SIGKILL)
            break
        assert time.time() < deadline
    proc.wait(timeout=60)
    assert first_done is not None, "the sweep never finished its first candidate"
    with Store(store) as db:
        keys = [c.key for c in expand_candidates(load_sweep(sweep_file))]
        first = db.cache_get("merge-candidate", keys[0])
        assert first is not None
        assert db.cache_get("merge-candidate", keys[2]) is None  # killed before the last one
    runs_of_first = _runs(store, first["fingerprint"])
    assert runs_of_first > 0

    # 2. Run it again: the first candidate comes from the store (not merged, not evaluated), the rest is new.
    events: list[str] = []
    result = run_sweep(sweep_file, store=store, on_event=events.append)
    statuses = {c.key: c.status for c in result.candidates}
    assert statuses[keys[0]] == "cached" and statuses[keys[2]] == "new"
    assert any("[1/3]" in e and "already merged and evaluated" in e for e in events)
    assert not any("[1/3]" in e and "merged in memory" in e for e in events)
    assert _runs(store, first["fingerprint"]) == runs_of_first

    # Complete results: every model scored on both skills on both splits, the winner reported on other items.
    assert result.benchmarks == ["arithmetic", "capitals"]
    for row in [*result.candidates, *result.parents]:
        assert set(row.selection) == set(row.report) == {"arithmetic", "capitals"}, row
    assert {p.role for p in result.parents} == {"parent", "base"}
    assert result.winner in {c.name for c in result.candidates}
    assert result.selection_items + result.report_items == 12  # 6 items per task, split in two
    assert result.vs_runner_up is not None and result.vs_best_parent is not None
    assert any(r.on_pareto_front for r in [*result.candidates, *result.parents])
    assert not any((tmp_path / "out" / "candidates").glob("*/config.json"))  # weights deleted (keep: none)
    html = (tmp_path / "out" / "sweep-report.html").read_text()
    assert result.report_path and "<svg" in html and result.winner.split()[0] in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # self-contained

    # 3. Everything cached now; selecting on all items is allowed but flagged.
    events.clear()
    again = run_sweep(sweep_file, store=store, on_event=events.append, report=False)
    assert {c.status for c in again.candidates} == {"cached"}
    assert again.winner == result.winner
    spec = load_sweep(sweep_file).model_copy(update={"selection": SelectionSpec(fraction=1.0)})
    same = run_sweep(spec, store=store, report=False)
    assert any("same items" in w for w in same.warnings)


def test_sweep_report_escapes_names():
    from mergeval.merge.report import render_sweep_report

    evil = "<script>alert(1)</script>"
    row = {
        "name": evil,
        "role": "candidate",
        "fingerprint": "f" * 24,
        "method": "linear",
        "parameters": {"t": 0.5},
        "key": "k" * 24,
        "status": "new",
        "error": None,
        "seconds": 1.0,
        "kept_at": None,
        "selection": {"x": 1.0, "y": 2.0},
        "report": {"x": 1.0, "y": 2.0},
        "objective_selection": 1.5,
        "objective_report": 1.5,
        "on_pareto_front": True,
        "provenance": evil,
    }
    other = {**row, "name": "other", "parameters": {"t": 0.7}, "objective_selection": 1.0}
    page = render_sweep_report(
        {
            "name": evil,
            "benchmarks": ["x", "y"],
            "objective": ["x", "y"],
            "candidates": [row, other],
            "parents": [],
            "winner": evil,
            "runner_up": "other",
            "best_parent": None,
            "vs_runner_up": None,
            "vs_best_parent": None,
            "selection_fraction": 0.5,
            "selection_items": 10,
            "report_items": 10,
            "warnings": [evil],
            "provenance": {"label": evil},
        }
    )
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<svg") == 2  # the Pareto plot and objective vs t


def test_sweep_resumes_after_ctrl_c_and_evaluates_nothing_twice(family, tmp_path):
    """Ctrl-C (a real SIGINT) once the first candidate is done, then the same sweep again: the finished candidate
    and the parents come from the store (no run of theirs starts: nothing is evaluated), and the ranking equals
    an uninterrupted sweep's. The smoke suite's HellaSwag and Winogrande are the tasks whose check hash used to
    change in every process (functions hashed by address), which made a resumed sweep start over."""
    grid = [
        {
            "merge_method": "linear",
            "weight": [{"parent-a": 0.8, "parent-b": 0.2}, {"parent-a": 0.3, "parent-b": 0.7}],
        }
    ]
    spec = _spec(family, grid, out_dir=str(tmp_path / "out"), keep="none")
    spec["checks"] = {"suite": "smoke", "tasks": ["hellaswag", "winogrande"], "limit": 4, "batch_size": 4}
    sweep_file = tmp_path / "sweep.yml"
    sweep_file.write_text(yaml.safe_dump(spec))
    store = tmp_path / "s.db"

    proc = subprocess.Popen(
        [sys.executable, "-m", "mergeval.cli", "sweep", str(sweep_file), "--store", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.stderr is not None
    interrupted = False
    for line in proc.stderr:
        if "[1/2]" in line and "done" in line:
            proc.send_signal(signal.SIGINT)
            interrupted = True
            break
    tail = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, tail[-2000:]
    assert interrupted, tail[-2000:]

    keys = [c.key for c in expand_candidates(load_sweep(sweep_file))]
    with Store(store) as db:
        first = db.cache_get("merge-candidate", keys[0])
        parents = [m.fingerprint for m in db.models() if m.name in ("parent-a", "parent-b")]
    assert first is not None and len(parents) == 2
    runs_before = {fp: _runs(store, fp) for fp in [*parents, first["fingerprint"]]}
    assert all(runs_before.values())

    events: list[str] = []
    resumed = run_sweep(sweep_file, store=store, on_event=events.append, report=False)
    assert {c.key: c.status for c in resumed.candidates} == {keys[0]: "cached", keys[1]: "new"}
    assert {fp: _runs(store, fp) for fp in runs_before} == runs_before  # nothing evaluated for them again

    fresh = run_sweep(sweep_file, store=tmp_path / "fresh.db", out_dir=tmp_path / "fresh", report=False)

    def ranking(result):
        return [
            (c.name, c.objective_selection, c.objective_report, c.selection, c.report)
            for c in sorted(result.candidates, key=lambda c: -c.objective_selection)
        ]

    assert ranking(resumed) == ranking(fresh)
    assert resumed.winner == fresh.winner
    assert [(p.name, p.selection, p.report) for p in resumed.parents] == [
        (p.name, p.selection, p.report) for p in fresh.parents
    ]


def test_a_sweep_ranks_on_a_check_that_is_not_lm_eval(family, tmp_path):
    """`checks:` takes plan check entries: a sweep ranked on perplexity (lower is better), through the runner,
    and resumed from the store."""
    grid = [{"merge_method": "linear", "weight": [{"parent-a": 0.8, "parent-b": 0.2},
                                                  {"parent-a": 0.2, "parent-b": 0.8}]}]
    spec = _spec(family, grid, out_dir=str(tmp_path / "out"), keep="none")
    spec["checks"] = [{"type": "perplexity", "context_length": 64}]
    store = tmp_path / "s.db"
    result = run_sweep(spec, store=store)
    assert result.benchmarks == result.objective == ["perplexity"] and result.higher_is_better is False
    lowest = min(result.candidates, key=lambda c: c.objective_selection)
    assert result.winner == lowest.name and result.ranked()[0].name == lowest.name
    assert result.selection_items + result.report_items == 12  # the bundled corpus's documents, split in two
    for row in [*result.candidates, *result.parents]:
        assert set(row.selection) == set(row.report) == {"perplexity"} and row.objective_report > 0, row
    assert result.vs_runner_up is not None and result.vs_best_parent is not None
    with Store(store) as db:
        runs = len(db.runs())
    again = run_sweep(spec, store=store, report=False)
    assert {c.status for c in again.candidates} == {"cached"} and again.winner == result.winner
    with Store(store) as db:
        assert len(db.runs()) == runs  # nothing evaluated again
