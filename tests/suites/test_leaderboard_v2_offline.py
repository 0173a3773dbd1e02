"""leaderboard-v2 offline: IFEval's scorer finds nltk's punkt_tab in the data mirror and never tries to
download it (with networking off), a missing punkt_tab or package is one clear sentence before any work,
and GPQA (gated, absent from the mirror) is "not evaluated" with the reason, never 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mergeval.cli import app
from mergeval.errors import UserError
from mergeval.evaluation import evaluate
from mergeval.suites import SUITES_DIR, load_suite

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v2"

# Runs in a fresh interpreter (lm-eval's IFEval code checks for punkt_tab when it is first imported), with
# HOME and NLTK_DATA pointing nowhere useful, sockets refusing to connect and nltk.download recording calls.
_NO_NETWORK = textwrap.dedent("""
    import json, socket, sys
    from pathlib import Path

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(("socket", repr(args)[:80]))
        raise OSError("networking is off in this test")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse

    import nltk

    def no_download(*args, **kwargs):
        attempts.append(("nltk.download", repr(args)[:80]))
        raise RuntimeError("nltk.download called")

    nltk.download = no_download

    from mergeval.errors import UserError
    from mergeval.engines.lmeval.harness import TaskLoader
    from mergeval.suites.leaderboard_v2 import check_prerequisites
    from mergeval.suites import load_suite

    data_dir = Path(sys.argv[1]) if sys.argv[1] != "-" else None
    suite = load_suite("leaderboard-v2").subset(["ifeval"])
    out = {}
    try:
        check_prerequisites(suite, data_dir)
        task = TaskLoader(suite, data_dir=data_dir).load("leaderboard_ifeval", suite.benchmarks[0], dtype="float32")
        doc = next(d for d in task.task.eval_docs
                   if "length_constraints:number_sentences" in d["instruction_id_list"])
        out["instructions"] = doc["instruction_id_list"]
        index = doc["instruction_id_list"].index("length_constraints:number_sentences")
        n = doc["kwargs"][index]["num_sentences"]
        out["relation"], out["n"], out["index"] = doc["kwargs"][index]["relation"], n, index
        # n - 1 sentences, then n + 1: only nltk's sentence splitter (punkt_tab) tells the two apart.
        sentence = "Mr. Smith saw the sea at 3 p.m. and it was calm. "
        out["fewer"] = task.task.process_results(doc, [sentence * (n - 1)])
        out["more"] = task.task.process_results(doc, [sentence * (n + 1)])
    except UserError as exc:
        out["error"] = str(exc)
    out["attempts"] = attempts
    print("RESULT " + json.dumps(out, default=str))
""")


def _run_isolated(tmp_path: Path, data_dir: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"}
    env.update(HOME=str(tmp_path), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    script = tmp_path / "no_network.py"
    script.write_text(_NO_NETWORK)
    proc = subprocess.run([sys.executable, str(script), str(data_dir) if data_dir else "-"], env=env, check=False,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout + proc.stderr
    return json.loads(lines[-1][len("RESULT "):])


def test_ifeval_scores_offline_without_any_download_attempt(tmp_path):
    out = _run_isolated(tmp_path, FIXTURES)
    assert "error" not in out, out
    assert out["attempts"] == []  # neither nltk.download nor any socket connection
    index, n = out["index"], out["n"]
    assert n > 1
    # "Mr." and "p.m." are not sentence ends for punkt's English model: the counts are n - 1 and n + 1.
    expected_fewer, expected_more = {"less than": (True, False), "at least": (False, True)}[out["relation"]]
    assert out["fewer"]["inst_level_strict_acc"][index] is expected_fewer
    assert out["more"]["inst_level_strict_acc"][index] is expected_more


def test_missing_punkt_tab_is_one_sentence_and_no_download(tmp_path):
    empty = tmp_path / "mirror"
    empty.mkdir()
    out = _run_isolated(tmp_path, empty)
    assert out["attempts"] == []
    assert "punkt_tab" in out["error"] and "mergeval data pull --suite leaderboard-v2" in out["error"]
    assert "\n" not in out["error"]


def test_a_missing_package_is_named_before_any_work(tmp_path, tiny_model_dir):
    spec = yaml.safe_load((SUITES_DIR / "leaderboard_v2.yaml").read_text())
    spec["name"] = "needs-a-package"
    spec["benchmarks"] = [b for b in spec["benchmarks"] if b["name"] == "mmlu_pro"]
    spec["benchmarks"][0]["requires"] = ["mergeval-no-such-package>=1", "pyyaml>=6"]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(spec))
    store = tmp_path / "store.db"
    with pytest.raises(UserError) as exc:
        evaluate(tiny_model_dir, suite=str(path), limit=1, store=store, data_dir=FIXTURES)
    message = str(exc.value)
    assert "mergeval-no-such-package>=1 (MMLU-Pro)" in message and "pip install 'mergeval[v2]'" in message
    assert "pyyaml" not in message  # installed ones are not listed
    assert not store.exists()  # nothing was started
    proc = subprocess.run([sys.executable, "-m", "mergeval.cli", "eval", str(tiny_model_dir), "--suite", str(path),
                           "--data-dir", str(FIXTURES), "--store", str(store)],
                          check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "400"})
    assert proc.returncode == 2, proc.stderr
    assert "mergeval-no-such-package" in proc.stderr and "Traceback" not in proc.stderr
    assert not store.exists()


def test_the_v2_extra_is_installed_here():
    """The packages the preset names are the ones pyproject's [v2] extra installs (so CI runs IFEval/MATH)."""
    import tomllib

    from mergeval.suites.leaderboard_v2 import missing_packages

    suite = load_suite("leaderboard-v2")
    assert missing_packages(suite.benchmarks) == {}
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    extra = " ".join(pyproject["project"]["optional-dependencies"]["v2"])
    for bench in suite.benchmarks:
        for req in bench.requires:
            assert req.split(">")[0].split("=")[0] in extra, req


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory, tiny_model_dir):
    store = tmp_path_factory.mktemp("gpqa") / "r.db"
    tasks = ["gpqa", "mmlu_pro", "leaderboard_bbh_boolean_expressions"]
    result = evaluate(tiny_model_dir, suite="leaderboard-v2", tasks=tasks, limit=1, store=store,
                      data_dir=FIXTURES, backend="hf", dtype="float32")
    return {"store": store, "result": result, "tasks": tasks}


def test_gpqa_is_not_evaluated_with_the_reason_and_the_average_says_so(gated_run):
    result = gated_run["result"]
    model = result.models[0]
    gpqa = model.scores["gpqa"]
    assert gpqa.value is None and gpqa.raw is None and gpqa.n == 0  # never 0
    assert "Idavidrein/gpqa is gated" in gpqa.not_evaluated and str(FIXTURES) in gpqa.not_evaluated
    assert result.not_evaluated == {"gpqa": gpqa.not_evaluated}
    others = [s.value for name, s in model.scores.items() if name != "gpqa"]
    assert model.average == pytest.approx(sum(others) / 2)
    assert model.average_of == ["mmlu_pro", "leaderboard_bbh_boolean_expressions"]
    assert result.average_note == "Average over 2 of 3 benchmarks (GPQA not evaluated)"


def test_cli_prints_raw_normalised_and_gpqa_not_evaluated(gated_run, tiny_model_dir):
    runner = CliRunner()
    args = ["eval", str(tiny_model_dir), "--suite", "leaderboard-v2", "--tasks", ",".join(gated_run["tasks"]),
            "--limit", "1", "--store", str(gated_run["store"]), "--data-dir", str(FIXTURES), "--dtype", "float32"]
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Open LLM Leaderboard v2 settings" in out and "normalised" in out and "raw " in out
    assert "not evaluated" in out and "GPQA not evaluated: its dataset Idavidrein/gpqa is gated" in out
    assert "Average over 2 of 3 benchmarks (GPQA not evaluated)" in out
    assert "All items came from the store" in out  # nothing recomputed
    for band in ("poor, likely broken", "below average", "state of the art"):  # no v1 band labels
        assert band not in out
    shown = runner.invoke(app, ["show", "--store", str(gated_run["store"]), "--suite", "leaderboard-v2",
                                "--tasks", ",".join(gated_run["tasks"])], env={"COLUMNS": "250"})
    assert shown.exit_code == 0 and "GPQA not evaluated" in shown.output, shown.output
