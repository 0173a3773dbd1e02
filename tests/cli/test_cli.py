"""The CLI end to end in real subprocesses: exit codes, messages without tracebacks, stored results."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def mergeval(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "mergeval.cli", *map(str, args)], capture_output=True, text=True,
                          env=env or ENV, cwd=cwd, timeout=900, check=False)


def _user_error(proc, *phrases):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    text = " ".join((proc.stdout + proc.stderr).split())
    for phrase in phrases:
        assert phrase in text, text


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_model_dir, hf_data):
    db = tmp_path_factory.mktemp("cli") / "r.db"
    first = mergeval("eval", tiny_model_dir, "--suite", "leaderboard-v1", "--tasks", "arc,mmlu_anatomy",
                     "--limit", "4", "--data-dir", hf_data, "--store", db, "--backend", "hf")
    assert first.returncode == 0, first.stderr[-3000:]
    return db, first


def test_eval_then_again_without_running_the_model(evaluated, tiny_model_dir, hf_data):
    db, first = evaluated
    assert "8 items evaluated" in first.stdout
    assert "ARC" in first.stdout and "mmlu_anatomy" in first.stdout
    again = mergeval("eval", tiny_model_dir, "--suite", "leaderboard-v1", "--tasks", "arc,mmlu_anatomy",
                     "--limit", "4", "--data-dir", hf_data, "--store", db, "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    result = json.loads(again.stdout)
    assert result["evaluated_items"] == 0
    arc = result["models"][0]["scores"]["arc"]
    assert arc["n"] == 4 and 0 <= arc["value"] <= 100


def test_show_and_export(evaluated):
    db, _ = evaluated
    shown = mergeval("show", "--store", db, "--suite", "leaderboard-v1")
    assert shown.returncode == 0, shown.stderr
    assert "ARC" in shown.stdout and "tiny-a" in shown.stdout
    exported = mergeval("export", "--store", db, "--format", "json")
    rows = json.loads(exported.stdout)
    assert {r["task"] for r in rows} == {"arc_challenge", "mmlu_anatomy"}
    assert all(r["n"] == 4 for r in rows)
    items = mergeval("export", "--store", db, "--format", "csv", "--items")
    lines = items.stdout.strip().splitlines()
    assert len(lines) == 1 + 8 and "metric:acc_norm,none" in lines[0]
    bad = mergeval("export", "--store", db, "--format", "xml")
    _user_error(bad, "Unknown export format")


def test_missing_model_path(tmp_path):
    proc = mergeval("eval", tmp_path / "no-model-here", "--store", tmp_path / "r.db")
    _user_error(proc, "does not exist")
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize("limit", ["abc", "-3", "2.5"])
def test_malformed_limit(tiny_model_dir, tmp_path, limit):
    proc = mergeval("eval", tiny_model_dir, "--limit", limit, "--store", tmp_path / "r.db")
    _user_error(proc, "--limit")
    assert not (tmp_path / "r.db").exists()


def test_unknown_task(tiny_model_dir, tmp_path, hf_data):
    proc = mergeval("eval", tiny_model_dir, "--suite", "leaderboard-v1", "--tasks", "arcc", "--data-dir", hf_data,
                    "--store", tmp_path / "r.db")
    _user_error(proc, "Unknown task 'arcc'")


def test_corrupt_store_untouched(tiny_model_dir, tmp_path, hf_data):
    db = tmp_path / "r.db"
    db.write_bytes(b"\x00garbage" * 64)
    before = db.read_bytes()
    proc = mergeval("eval", tiny_model_dir, "--suite", "leaderboard-v1", "--tasks", "arc", "--limit", "1",
                    "--data-dir", hf_data, "--store", db)
    _user_error(proc, "not a readable mergeval store")
    assert db.read_bytes() == before


def test_unreachable_hub_without_data_dir(tiny_model_dir, tmp_path):
    env = {**ENV, "HF_HOME": str(tmp_path / "empty-hf-home"), "HF_DATASETS_CACHE": str(tmp_path / "empty-ds")}
    env.pop("MERGEVAL_DATA_DIR", None)
    proc = mergeval("eval", tiny_model_dir, "--suite", "leaderboard-v1", "--tasks", "arc", "--limit", "1",
                    "--store", tmp_path / "r.db", env=env)
    _user_error(proc, "Could not load the data of task arc_challenge", "mergeval data pull", "--data-dir")
    assert not (tmp_path / "r.db").exists()


def test_data_pull_offline_fails_fast(tmp_path):
    proc = mergeval("data", "pull", "--suite", "leaderboard-v1", "--to", tmp_path / "mirror")
    _user_error(proc, "HF_HUB_OFFLINE")


def test_missing_data_dir(tiny_model_dir, tmp_path):
    proc = mergeval("eval", tiny_model_dir, "--suite", "leaderboard-v1", "--tasks", "arc",
                    "--data-dir", tmp_path / "nope", "--store", tmp_path / "r.db")
    _user_error(proc, "does not exist", "mergeval data pull")


# -- Ctrl-C --------------------------------------------------------------------------------------------------


def _stored_items(db) -> int:
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM items").fetchone()[0]
    except sqlite3.Error:  # the store is being created
        return 0


CTRL_C_AFTER_FIRST_CHUNK = """
import sys, time
from mergeval.cli import main
from mergeval.store import Store

add_batch = Store.add_batch

def add_batch_then_wait(self, *args, **kwargs):
    stored = add_batch(self, *args, **kwargs)
    time.sleep(300)  # the Ctrl-C lands here, after the chunk's transaction
    return stored

Store.add_batch = add_batch_then_wait
sys.argv = ["mergeval", *sys.argv[1:]]
main()
"""


def test_ctrl_c_stops_with_the_resume_hint_marks_the_run_interrupted_and_a_rerun_resumes(tiny_model_dir, tmp_path):
    import signal
    import time

    from mergeval.store import Store

    db = tmp_path / "r.db"
    args = ["eval", tiny_model_dir, "--tasks", "arc", "--batch-size", "1", "--store", db]
    # The real CLI in a process that, once its first chunk (8 of 20 items) is stored, waits for Ctrl-C: a signal
    # sent from outside when the test sees those rows. Without the wait the tiny model can finish the other two
    # chunks before the signal lands (a run marked done), so the test would race the model instead.
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_AFTER_FIRST_CHUNK, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 600
    while _stored_items(db) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()  # still evaluating: the first chunk is stored, more to come
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Interrupted" in err and "run the same command again to resume" in " ".join(err.split()), err
    assert "Traceback" not in err
    with Store(db, readonly=True) as store:
        runs = store.runs()
        kept = sum(r.n_items for r in runs)
    assert [r.status for r in runs] == ["interrupted"] and 0 < kept < 20
    again = mergeval(*args, "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["evaluated_items"] == 20 - kept  # only what the interrupted run had not stored
    assert result["models"][0]["scores"]["arc"]["n"] == 20
    with Store(db, readonly=True) as store:
        assert [r.status for r in store.runs()] == ["interrupted", "done"]


# -- mergeval init -------------------------------------------------------------------------------------------


def test_init_as_the_readme_writes_it(tmp_path):
    from mergeval.plan import EXAMPLE_PLAN, load_plan

    env = {**ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{ENV.get('PATH', '')}"}
    proc = subprocess.run(["bash", "-c", "mergeval init > mergeval.yaml"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "mergeval.yaml").read_text() == EXAMPLE_PLAN
    assert load_plan(tmp_path / "mergeval.yaml", check_paths=False).title
    # an existing empty file (e.g. made by `touch`) is filled in; a plan with content is kept
    (tmp_path / "empty.yaml").touch()
    assert mergeval("init", "empty.yaml", cwd=tmp_path).returncode == 0
    assert (tmp_path / "empty.yaml").read_text() == EXAMPLE_PLAN
    (tmp_path / "mine.yaml").write_text("# mine\n")
    _user_error(mergeval("init", "mine.yaml", cwd=tmp_path), "already exists", "--force")
    assert (tmp_path / "mine.yaml").read_text() == "# mine\n"


# -- exit codes ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_plans(tmp_path_factory, tiny_model_dir):
    """One plan (a tiny model, its sanity checks, a sign-off gate) signed off, signed for other weights, and
    not signed off: the verdicts pass, fail and not evaluated."""
    root = tmp_path_factory.mktemp("verdicts")
    head = f"""\
models:
  - candidate: {tiny_model_dir}
checks:
  - {{type: sanity, max_new_tokens: 8}}
gates:
  - sign-off
store: results.db
"""
    plans = {"pass": head + "sign_off: {by: Jane}\n",
             "fail": head + "sign_off: {by: Jane, fingerprint: 0123abcd}\n",
             "incomplete": head}
    for name, text in plans.items():
        (root / f"{name}.yaml").write_text(text)
    return root


@pytest.mark.parametrize(("plan", "code"), [("pass", 0), ("fail", 1), ("incomplete", 3)])
def test_run_and_gate_exit_with_the_verdict_and_compare_with_0(signed_plans, plan, code):
    path = signed_plans / f"{plan}.yaml"
    ran = mergeval("run", path, "--json", "--no-write")
    assert ran.returncode == code, ran.stderr
    assert json.loads(ran.stdout)["verdict"]["exit_code"] == code
    assert mergeval("gate", path, "--no-write").returncode == code
    compared = mergeval("compare", path, "--no-write")
    assert compared.returncode == 0, compared.stderr


def _pairs(path, expect):
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt_a": q, "prompt_b": q, "expect": expect}) + "\n"
                            for i, q in enumerate(["The sky is", "Two plus two equals"])))
    return path


@pytest.mark.parametrize(("expect", "code"), [("agree", 0), ("differ", 1)])
def test_consistency_exits_with_its_verdict(tiny_model_dir, tmp_path, expect, code):
    """The same prompt twice gives the same greedy answer: consistent when the pair should agree, a conflict
    when it should differ."""
    args = ["consistency", tiny_model_dir, "--pairs", _pairs(tmp_path / "pairs.jsonl", expect), "--no-chat",
            "--no-stop-at-newline", "--max-new-tokens", "6", "--device", "cpu", "--store", tmp_path / "s.db"]
    proc = mergeval(*args, "--json")
    assert proc.returncode == code, proc.stderr
    summary = json.loads(proc.stdout)["tiny-a"]
    assert summary["n_pairs"] == 2 and summary["passed"] is (code == 0)
    table = mergeval(*args)
    assert table.returncode == code and ("pass" if code == 0 else "fail") in table.stdout


# -- report.md ------------------------------------------------------------------------------------------------

HOSTILE = {
    "title": "<script>alert('title')</script> | [x](javascript:alert(1))",
    "model": '"><img src=x onerror=alert(1)>',
    "gate": "<iframe src=//evil></iframe>|",
    "by": "<script>alert('by')</script>",
    "notes": "tested | fine\n# not a heading\n<b>bold</b>",
}


def test_report_md_escapes_html_and_markdown_from_plan_text(tiny_model_dir, tmp_path):
    plan = tmp_path / "hostile.yaml"
    plan.write_text(json.dumps({
        "title": HOSTILE["title"],
        "models": [{"name": HOSTILE["model"], "path": str(tiny_model_dir), "role": "candidate"}],
        "gates": [{"type": "sign-off", "name": HOSTILE["gate"]}],
        "sign_off": {"by": HOSTILE["by"], "notes": HOSTILE["notes"]},
    }))
    proc = mergeval("run", plan, "--out", tmp_path / "report")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    tags = {"<details>", "</details>", "<summary>", "</summary>"}
    import re

    raw = [t for t in re.findall(r"<[^>]*>?", md) if t not in tags]
    assert raw == [], raw  # no HTML from the plan survives
    assert "&lt;script&gt;alert('title')&lt;/script&gt;" in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "\\[x\\](javascript:alert(1))" in md  # no link
    assert "\n# not a heading" not in md
    for line in md.splitlines():  # an escaped | never ends a cell: every row has its header's cell count
        if line.startswith("| "):
            cells = re.split(r"(?<!\\)\|", line)[1:-1]
            if line.startswith("| Status"):
                width = len(cells)
            if "signed off by" in line:
                assert len(cells) == width, line


@pytest.mark.slow
def test_sanity_exits_0_when_every_check_passes(smollm2_dir, tmp_path):
    """A real small instruct model passes the sanity checks (a random one fails them: tests/test_sanity.py)."""
    proc = mergeval("sanity", smollm2_dir, "--dtype", "float32", "--max-new-tokens", "40", "--json",
                    "--store", tmp_path / "s.db")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["passed"] is True
