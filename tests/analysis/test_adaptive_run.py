"""`mergeval run --adaptive` end to end, with real tiny models on a real lm-eval task (adaptive_helpers.py):
fewer items for the same verdict, the stopping state in the store (survives SIGKILL, the rerun continues),
a gate that needs every item, `--full` completing the rest, and what the reports say."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mergeval.analysis import compare_plan
from mergeval.analysis.adaptive import checkpoints
from mergeval.api import run
from mergeval.cli import app
from mergeval.render.console import print_report
from mergeval.render.html import render_html
from mergeval.render.markdown import render_markdown
from mergeval.report import Report
from mergeval.store import ADAPTIVE_NAMESPACE, Store

sys.path.insert(0, str(Path(__file__).parent))
from adaptive_helpers import (
    BAD,
    GOOD,
    MULTI_SIZES,
    N_ITEMS,
    plan_text,
    steered_model,
    write_multi_suite,
    write_suite,
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("adaptive")
    suite = write_suite(root / "suite")
    models = {
        "good": steered_model(root / "good", seed=1, prefer=GOOD),
        "bad": steered_model(root / "bad", seed=2, prefer=BAD),
        "good2": steered_model(root / "good2", seed=3, prefer=GOOD),
    }
    return root, suite, models


def _plan(root: Path, suite: Path, name: str, models: dict, gates: list[str], settings: str = "") -> Path:
    folder = root / name
    folder.mkdir()
    plan = folder / "mergeval.yaml"
    plan.write_text(plan_text(suite, models, gates=gates, settings=settings))
    return plan


def _item_counts(store: Path) -> dict[str, int]:
    with Store(store, create=False) as db:
        names = {m.fingerprint: m.name for m in db.models()}
        return {names[r.model_fp]: r.n for r in _counts(db)}


class _Count:
    def __init__(self, model_fp: str, n: int):
        self.model_fp, self.n = model_fp, n


def _counts(db: Store) -> list[_Count]:
    rows = db._db.execute("SELECT model_fp, count(*) FROM items GROUP BY model_fp").fetchall()
    return [_Count(fp, n) for fp, n in rows]


def _items(store: Path) -> dict[tuple[str, str], float]:
    with Store(store, create=False) as db:
        out = {}
        for m in db.models():
            for c in db.checks():
                for it in db.items(m.fingerprint, c.hash):
                    out[(m.name, it.item_id)] = it.metrics["acc,none"]
        return out


def test_a_decided_difference_stops_early_with_the_full_runs_verdict(setup):
    root, suite, m = setup
    models = {"cand": (m["good"], "candidate"), "par": (m["bad"], "parent")}
    gates = ["pick >= min(parents)", "no regressions"]
    adaptive_plan = _plan(root, suite, "decided-adaptive", models, gates, "adaptive: true")
    full_plan = _plan(root, suite, "decided-full", models, gates)

    report = run(adaptive_plan)
    full = run(full_plan)

    store = adaptive_plan.parent / "mergeval.db"
    counts = _item_counts(store)
    first = checkpoints(N_ITEMS)[0]
    assert counts == {"cand": first, "par": first}  # decided after the first round
    assert _item_counts(full_plan.parent / "mergeval.db") == {"cand": N_ITEMS, "par": N_ITEMS}
    assert [g.status for g in report.gates] == [g.status for g in full.gates] == ["pass", "pass"]
    assert report.verdict.status == full.verdict.status == "pass"
    # the items evaluated adaptively are the full run's items, scored the same (prompts do not depend on
    # which items are evaluated)
    full_items = _items(full_plan.parent / "mergeval.db")
    adaptive_items = _items(store)
    assert adaptive_items and all(full_items[k] == v for k, v in adaptive_items.items())

    (entry,) = report.adaptive
    assert (entry.status, entry.n, entry.n_target, entry.items_saved) == ("stopped early", first, N_ITEMS,
                                                                          2 * (N_ITEMS - first))
    verdicts = {r.rule: r.verdict for r in entry.rules}
    assert verdicts["cand vs par"] == "better"
    assert all(r.lower is not None and r.lower > 0 for r in entry.rules)
    assert "bias" in entry.note
    score = report.scores["cand"]["pick"]
    assert (score.value, score.n, score.n_target) == (100.0, first, N_ITEMS)
    assert report.missing == []
    assert all(g.detail.startswith("decided sequentially") for g in report.gates)

    # compare reads the same state back; every renderer says what happened
    again = compare_plan(adaptive_plan)
    assert again.adaptive == report.adaptive
    assert Report.from_json(again.to_json()).adaptive == report.adaptive
    markdown = render_markdown(again)
    assert "## Adaptive evaluation" in markdown and f"{first} of {N_ITEMS}" in markdown
    assert 'id="adaptive"' in render_html(again)
    from rich.console import Console

    console = Console(record=True, width=200)
    print_report(again, console)
    assert f"stopped early, {first} of {N_ITEMS} items" in console.export_text()
    # a full run's report has no adaptive part (report.json unchanged for it)
    assert "adaptive" not in json.loads(full.to_json())

    # --full completes every remaining item, reusing the stored ones
    result = CliRunner().invoke(app, ["run", str(adaptive_plan), "--full", "--no-write", "--json"])
    assert result.exit_code == 0, result.output
    assert _item_counts(store) == {"cand": N_ITEMS, "par": N_ITEMS}
    assert all(_items(store)[k] == v for k, v in adaptive_items.items())
    completed = compare_plan(adaptive_plan)
    assert completed.adaptive[0].status == "completed" and completed.adaptive[0].n == N_ITEMS
    assert completed.scores["cand"]["pick"].n == N_ITEMS
    assert [g.status for g in completed.gates] == ["pass", "pass"]
    assert not any(g.detail.startswith("decided sequentially") for g in completed.gates)


def test_a_sign_off_gate_makes_every_item_run(setup):
    root, suite, m = setup
    models = {"cand": (m["good"], "candidate"), "par": (m["bad"], "parent")}
    plan = _plan(root, suite, "sign-off", models, ["sign-off", "pick >= min(parents)"], "adaptive: true")
    report = run(plan)
    assert _item_counts(plan.parent / "mergeval.db") == {"cand": N_ITEMS, "par": N_ITEMS}
    (entry,) = report.adaptive
    assert entry.status == "ran to the end" and "sign-off" in entry.reason and entry.items_saved == 0
    assert report.gates[1].status == "pass" and report.scores["cand"]["pick"].n == N_ITEMS


def test_a_benchmark_of_several_tasks_is_sampled_by_task_weight_and_stops_early(setup):
    root, _, m = setup
    suite = write_multi_suite(root / "multi-suite")
    models = {"cand": (m["good"], "candidate"), "par": (m["bad"], "parent")}
    plan = _plan(root, suite, "multi", models, ["picks >= min(parents)"], "adaptive: true")
    report = run(plan)
    first, total = checkpoints(sum(MULTI_SIZES.values()))[0], sum(MULTI_SIZES.values())
    (entry,) = report.adaptive
    assert (entry.status, entry.n, entry.n_target) == ("stopped early", first, total)
    with Store(plan.parent / "mergeval.db", create=False) as db:
        per_task = {c.name: db.count_items(db.models()[0].fingerprint, c.hash) for c in db.checks()}
    # items of both tasks, drawn with probability proportional to 1/task size: the small task is not crowded out
    assert set(per_task) == set(MULTI_SIZES) and sum(per_task.values()) == first and min(per_task.values()) > 0
    score = report.scores["cand"]["picks"]
    assert (score.value, score.n, score.n_target) == (100.0, first, total)
    assert report.gates[0].status == "pass" and report.gates[0].detail.startswith("decided sequentially")
    assert {row.task for row in report.subjects["picks"]} == set(MULTI_SIZES)


def _state(store: Path) -> dict | None:
    if not store.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1)
        try:
            row = db.execute("SELECT value FROM cache WHERE namespace = ?", (ADAPTIVE_NAMESPACE,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return json.loads(row[0])["state"] if row else None


def test_the_stopping_state_survives_sigkill_and_the_rerun_continues(setup):
    root, suite, m = setup
    # two models that agree on every item: "within 5 points" takes several rounds to decide
    models = {"cand": (m["good"], "candidate"), "par": (m["good2"], "parent")}
    plan = _plan(root, suite, "resume", models, [], "adaptive: true\nmargin: 5")
    store = plan.parent / "mergeval.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = plan.parent / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mergeval.cli", "run", str(plan), "--no-write"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        state = None
        while proc.poll() is None:
            state = _state(store)
            if state is not None and state["status"] == "running":
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed: {log.read_text()[-2000:]}"
    killed = _state(store)
    assert killed["status"] == "running" and killed["n"] >= checkpoints(N_ITEMS)[0] and killed["monitor"]
    with Store(store, create=False) as db:
        last_run = max((r.id for r in db.runs()), default=0)
    at_kill = _item_counts(store)

    report = run(plan)  # continues from the stored state

    final = _state(store)
    assert final["status"] == "stopped"
    assert final["rounds"][: len(killed["rounds"])] == killed["rounds"]  # continued, not restarted
    assert final["n"] > killed["n"] and final["n"] < N_ITEMS
    counts = _item_counts(store)
    assert counts == {"cand": final["n"], "par": final["n"]}
    with Store(store, create=False) as db:
        names = {mm.fingerprint: mm.name for mm in db.models()}
        asked: dict[str, int] = {}
        for r in db.runs():
            if r.id > last_run:
                asked[names[r.model_fp]] = asked.get(names[r.model_fp], 0) + r.provenance["n_items_asked"]
    # the rerun asked only for what was missing: nothing stored before the kill was evaluated again
    assert asked == {name: final["n"] - at_kill.get(name, 0) for name in ("cand", "par")}
    (entry,) = report.adaptive
    assert entry.status == "stopped early" and {r.verdict for r in entry.rules} == {"within"}
