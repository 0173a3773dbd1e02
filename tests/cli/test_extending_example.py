"""docs/extending.md's example plugin and plan, extracted from the page and run end to end with tiny models,
so the documentation of how to write a check type cannot rot."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _blocks(language: str) -> list[str]:
    text = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_the_documented_plugin_runs_in_a_plan(tmp_path):
    from mergeval.store import Store
    from mergeval.testing import make_tiny_llama

    (plugin,) = _blocks("python")
    plan = next(block for block in _blocks("yaml") if "plugins:" in block)
    (tmp_path / "my_check.py").write_text(plugin)
    (tmp_path / "mergeval.yaml").write_text(plan)
    for seed, name in enumerate(("merged", "parent-a", "parent-b")):
        make_tiny_llama(tmp_path / name, seed=seed)

    def run():
        proc = subprocess.run([sys.executable, "-m", "mergeval.cli", "run", "mergeval.yaml", "--json", "--no-write"],
                              capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=600, check=False)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        return json.loads(proc.stdout)

    report = run()
    n_sentences = plan.count('      - "')
    for model in ("merged", "parent-a", "parent-b"):
        score = report["scores"][model]["sentence_nll"]
        assert score["n"] == n_sentences and math.isfinite(score["value"]) and score["value"] > 0, score
    store = tmp_path / "mergeval-results" / "mergeval.db"
    with Store(store, readonly=True) as db:
        runs = len(db.runs())
    assert runs == 3  # one per model
    assert run()["scores"] == report["scores"]  # the second run reads the store
    with Store(store, readonly=True) as db:
        assert len(db.runs()) == runs
