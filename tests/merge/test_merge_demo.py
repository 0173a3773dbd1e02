"""`mergeval demo`: the merge story end to end (quick training), its verdict, and a free re-run.

The module's fixture trains three tiny models and evaluates six (about a minute on 2 idle cores)."""

from __future__ import annotations

import io
from contextlib import contextmanager

import pytest
from rich.console import Console

from mergeval.demo import BASE, PARENT_A, PARENT_B, run_demo
from mergeval.store import Store
from mergeval.suites.demo_skills import ARITHMETIC, CAPITALS


@contextmanager
def _no_progress():
    yield None


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    output = io.StringIO()
    console = Console(file=output, width=160)
    kwargs = {
        "store": root / "demo.db",
        "out": root / "out",
        "quick": True,
        "smoke": False,
        "console": console,
        "progress_factory": _no_progress,
        "cache_root": root / "cache",
    }
    first = run_demo(**kwargs)
    return root, kwargs, first, output.getvalue()


def test_parents_are_each_strong_on_their_own_skill(demo):
    _, _, result, _ = demo
    scores = result.story.scores
    a, b, base = scores[PARENT_A], scores[PARENT_B], scores[BASE]
    assert a[ARITHMETIC] >= 80 and b[CAPITALS] >= 80
    # each parent is far behind the other on the other's skill
    assert b[ARITHMETIC] <= a[ARITHMETIC] - 50 and a[CAPITALS] <= b[CAPITALS] - 20
    # the base read about both skills but cannot answer the questions as well as a specialist
    assert base[ARITHMETIC] <= 10 and base[CAPITALS] <= b[CAPITALS] - 20


def test_the_verdict_names_what_each_merge_kept(demo):
    _, _, result, text = demo
    story = result.story
    assert set(story.kept) == {"linear", "slerp", "ties"}
    for merge, kept in story.kept.items():
        assert kept[ARITHMETIC] is not None and kept[CAPITALS] is not None, merge
        assert story.gates[merge] in ("pass", "fail")  # every gate evaluated: nothing missing
    assert story.best in story.kept
    assert set(story.both_kept) <= set(story.kept)
    # Gates per merge, as the plan defines them, and provenance of each merge in the report.
    gate_names = {g["name"] for g in result.report["gates"]}
    assert any("keeps arithmetic" in n for n in gate_names) and any("keeps capitals" in n for n in gate_names)
    methods = {m["name"]: (m.get("merge") or {}).get("method") for m in result.report["models"]}
    assert methods["linear"] == "linear" and methods["slerp"] == "slerp" and methods["ties"] == "ties"
    assert "HTML report:" in text and story.best in text


def test_reports_and_replayable_files_are_written(demo):
    root, _, result, _ = demo
    html = result.written["html"].read_text()
    assert "<html" in html and "ties" in html
    assert result.plan_path.exists() and (root / "out" / "sweep.yml").exists()
    for name, folder in result.merges.items():
        assert (folder / "config.json").exists() and (folder.parent / f"{name}.yml").exists()


def test_a_second_run_retrains_remerges_and_reevaluates_nothing(demo):
    root, kwargs, first, _ = demo
    with Store(root / "demo.db") as db:
        runs_before = len(db.runs())
    second = run_demo(**{**kwargs, "console": Console(file=io.StringIO())})
    assert second.parents.trained == []
    with Store(root / "demo.db") as db:
        assert len(db.runs()) == runs_before
    assert second.story.kept == first.story.kept


def test_the_report_answers_at_a_glance_on_a_laptop(demo, browser):
    """The demo's report.html at 1,366 x 768 (the README's screenshot): no sideways scroll; the verdict and every
    model's Average in the first screen; the failed gates whole; the per-item view counts what linear lost on
    arithmetic against the arithmetic parent exactly as `mergeval diff` does."""
    from browser import open_view
    from mergeval.analysis.itemdiff import item_diffs

    root, _, result, _ = demo
    models = [m["name"] for m in result.report["models"]]
    with open_view(browser, result.written["html"]) as view:
        assert view.overflow() <= 0
        (verdict,) = view.layout(".verdict")
        glance = view.layout(".glance-model")
        assert len(glance) == len(models)
        for box in [verdict, *glance]:
            assert box["right"] <= 1366 and box["bottom"] <= 768, box
        failed = view.layout(".gate-fail")
        assert len(failed) == sum(g["status"] == "fail" for g in result.report["gates"])
        assert all(0 <= b["x"] and b["right"] <= 1366 for b in failed)
        assert view.clipped(".verdict *, .glance *, .gate-fail *") == []
        lost = item_diffs(root / "demo.db", "linear", PARENT_A, ARITHMETIC, "lost")
        summary = view.page.locator("#per-item details summary", has_text="Arithmetic").first
        assert f"linear: {PARENT_A} {lost.n_lost} lost" in " ".join(summary.text_content().split())
        assert view.problems.all() == []
