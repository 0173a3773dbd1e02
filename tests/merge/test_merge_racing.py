"""`mergeval sweep --adaptive`: candidates race on the selection items (merge/racing.py), with real merges of
real tiny models on a real lm-eval task: the same winner as the full sweep on fewer item evaluations, the CLI
flag, and a rerun that evaluates nothing new."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mergeval.cli import app
from mergeval.merge import run_sweep

sys.path.insert(0, str(Path(__file__).parents[1] / "analysis"))
from adaptive_helpers import BAD, GOOD, steered_model, write_suite


@pytest.fixture(scope="module")
def steered(tmp_path_factory):
    """Two 'fine-tunes' of one random base: one steered to the gold answer, one away from it. A linear merge
    weighted towards the good one scores ~100%, towards the bad one ~0%, half and half: the random base."""
    root = tmp_path_factory.mktemp("racing")
    suite = write_suite(root / "suite")
    good = steered_model(root / "good", seed=5, prefer=GOOD)
    bad = steered_model(root / "bad", seed=5, prefer=BAD)
    return root, suite, good, bad


def _spec(steered, out: Path) -> dict:
    _, suite, good, bad = steered
    return {
        "name": "race",
        "config": {"merge_method": "linear", "models": [{"model": str(good)}, {"model": str(bad)}],
                   "dtype": "float32"},
        "grid": [{"weight": [{"good": 0.9, "bad": 0.1}, {"good": 0.5, "bad": 0.5}, {"good": 0.1, "bad": 0.9}]}],
        "checks": [{"type": "suite", "suite": str(suite)}],
        "settings": {"device": "cpu", "batch_size": 16},
        "out_dir": str(out),
        "keep": "none",
    }


def _evaluated(store: Path) -> dict[str, int]:
    """Items stored per model fingerprint (every item computed once, whatever run computed it)."""
    with sqlite3.connect(store) as con:
        return dict(con.execute("SELECT model_fp, COUNT(*) FROM items GROUP BY model_fp").fetchall())


def test_the_race_picks_the_full_sweeps_winner_on_fewer_items_and_a_rerun_evaluates_nothing(steered, tmp_path):
    full = run_sweep(_spec(steered, tmp_path / "full"), store=tmp_path / "full.db", report=False)
    events: list[str] = []
    raced = run_sweep(_spec(steered, tmp_path / "raced"), store=tmp_path / "raced.db", report=False,
                      adaptive=True, on_event=events.append)
    assert full.winner == raced.winner
    assert "0.9" in json.dumps(full.model(full.winner).parameters)

    full_items, raced_items = _evaluated(tmp_path / "full.db"), _evaluated(tmp_path / "raced.db")
    assert sum(raced_items.values()) < sum(full_items.values())
    racing = raced.racing
    assert racing is not None and racing["evaluations"] < racing["full_evaluations"]
    statuses = {name: info["status"] for name, info in racing["candidates"].items()}
    assert statuses[raced.winner] == "winner" and list(statuses.values()).count("dropped") >= 1
    dropped = [raced.model(n) for n, s in statuses.items() if s == "dropped"]
    assert all(row.status.startswith("dropped after") for row in dropped)
    # the winner is reported on the held-out items, as in the full sweep, with the same numbers
    winner_full, winner_raced = full.model(full.winner), raced.model(raced.winner)
    assert winner_raced.objective_report == pytest.approx(winner_full.objective_report)
    assert raced.vs_best_parent is not None
    written = json.loads((tmp_path / "raced" / "sweep.json").read_text())
    assert written["racing"]["candidates"] == racing["candidates"]
    print(f"racing: {racing['evaluations']} of {racing['full_evaluations']} selection item evaluations; "
          f"stored items {sum(raced_items.values())} vs {sum(full_items.values())} in the full sweep")

    again = run_sweep(_spec(steered, tmp_path / "raced"), store=tmp_path / "raced.db", report=False,
                      adaptive=True)
    assert _evaluated(tmp_path / "raced.db") == raced_items
    assert again.winner == raced.winner and again.racing == racing


def test_the_cli_flag_races(steered, tmp_path):
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(_spec(steered, tmp_path / "out")))
    result = CliRunner().invoke(app, ["sweep", str(sweep_file), "--adaptive", "--store", str(tmp_path / "s.db"),
                                      "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert data["racing"]["evaluations"] < data["racing"]["full_evaluations"]
    assert data["racing"]["candidates"][data["winner"]]["status"] == "winner"
