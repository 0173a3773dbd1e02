"""Output without a terminal (a CI log, `| tee`): COLUMNS when set, else wide; paths never split; tables fit
the width or fold, never cut a header; every number says how many items it rests on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mergeval.suites.demo_skills import SUITE_FILE

MERGEVAL = [sys.executable, "-m", "mergeval.cli"]


def _run(args: list[str], columns: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    if columns is not None:
        env["COLUMNS"] = columns
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(args, check=False, capture_output=True, text=True, env=env, timeout=600)  # a pipe


@pytest.fixture(scope="module")
def evaluated(tiny_model_dir, tmp_path_factory):
    """A store under a long path (longer than 80 columns), with 3 items per task of the demo suite."""
    deep = tmp_path_factory.mktemp("output-width") / ("a-rather-long-folder-name-" * 3) / "results-of-the-day"
    store = deep / "store.db"
    out = _run([*MERGEVAL, "eval", str(tiny_model_dir), "--suite", str(SUITE_FILE), "--limit", "3", "--store",
                str(store), "--device", "cpu"])
    assert out.returncode == 0, out.stderr
    assert len(str(store)) > 80
    return store, out.stdout


def test_piped_output_is_wide_and_paths_stay_whole(evaluated):
    store, stdout = evaluated
    assert str(store) in stdout  # one piece: not wrapped at 80 columns
    table = [line for line in stdout.splitlines() if line.startswith(("┃", "│", "┏", "└"))]
    assert table and "…" not in stdout
    assert max(len(line) for line in table) <= 200


def test_show_says_how_many_items_each_number_rests_on(evaluated):
    store, _ = evaluated
    out = _run([*MERGEVAL, "show", "--store", str(store), "--suite", str(SUITE_FILE)])
    assert out.returncode == 0, out.stderr
    assert "n=3 of 100" in out.stdout and "n=3 of 48" in out.stdout  # arithmetic: 100 items, capitals: 48
    assert "acc (%)" in out.stdout and "acc,none" not in out.stdout  # the metric as named, with its scale


def test_columns_is_honoured_and_narrow_tables_fold(evaluated):
    store, _ = evaluated
    out = _run([*MERGEVAL, "show", "--store", str(store), "--suite", str(SUITE_FILE)], columns="60")
    assert out.returncode == 0, out.stderr
    table = [line for line in out.stdout.splitlines() if line.startswith(("┃", "│", "┏", "└"))]
    assert table and max(len(line) for line in table) <= 60
    assert "…" not in out.stdout  # folded, not cut
    assert "Capitals" in out.stdout and "Arithmetic" in out.stdout


def test_export_filters_by_model_and_task(evaluated, tiny_model_dir):
    store, _ = evaluated
    out = _run([*MERGEVAL, "export", "--store", str(store), "--task", "demo_capitals"])
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["task"] for r in rows] == ["demo_capitals"] and rows[0]["n"] == 3
    name = rows[0]["model"]
    assert len(json.loads(_run([*MERGEVAL, "export", "--store", str(store), "--model", name]).stdout)) == 2


@pytest.mark.parametrize(("option", "valid"), [("--model", "tiny-a"), ("--task", "demo_arithmetic, demo_capitals")])
def test_export_unknown_name_lists_the_valid_ones(evaluated, option, valid):
    store, _ = evaluated
    out = _run([*MERGEVAL, "export", "--store", str(store), option, "nope"])
    assert out.returncode == 2 and out.stdout == ""
    assert "'nope'" in out.stderr and valid in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_help_shows_no_bool_label_for_flags():
    out = _run([*MERGEVAL, "demo", "--help"], columns="120")
    assert out.returncode == 0
    assert "--quick" in out.stdout and "<bool>" not in out.stdout and "<path>" in out.stdout


