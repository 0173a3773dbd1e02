"""`--executor ray` through the product, on a real local Ray cluster (2 CPUs, 127.0.0.1): `mergeval run` of a plan
with tiny models (an lm-eval suite with few-shot contexts, cut into several shards per task) stores per-item
results equal to `--executor local`'s; a sweep's in-memory candidates are merged again on the workers from their
recipe and score as they do locally; a plan's `settings: {executor: ray}` is used and the CLI overrides it; without
Ray installed `--executor ray` is one sentence, exit 2, with the store untouched (the other bad executor inputs
are in tests/cli/test_bad_inputs.py)."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from typer.testing import CliRunner

from mergeval import api
from mergeval.cli import app
from mergeval.core.executors import RayExecutor
from mergeval.store import Store

SUITE = """\
name: ray-mini
title: ray mini
label: "ray mini suite (lm-eval {{lm_eval_version}})"
note: bundled smoke items, few-shot
task_dirs: [{tasks}]
data_root: {data}
benchmarks:
  - {{name: arc, display: ARC, tasks: [smoke_arc], num_fewshot: 3, metric: acc_norm}}
  - {{name: winogrande, display: Winogrande, tasks: [smoke_winogrande], num_fewshot: 2, metric: acc}}
"""


@pytest.fixture(scope="module")
def cluster():
    import ray

    folder = tempfile.mkdtemp(prefix="mp", dir="/tmp")  # short: Ray's socket paths are limited
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=folder)
    yield ray
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


def _write_plan(folder, models, limit, extra_settings=""):
    from mergeval.suites.smoke import DATA_DIR, TASKS_DIR

    (folder / "suite.yaml").write_text(SUITE.format(tasks=TASKS_DIR, data=DATA_DIR))
    path = folder / "mergeval.yaml"
    path.write_text(f"""\
models:
{models}
checks:
  - type: suite
    suite: suite.yaml
    limit: {limit}
settings:
  dtype: float32
  batch_size: 2
  n_boot: 200
{extra_settings}""")
    return path


@pytest.fixture(scope="module")
def plan(tiny_models, tmp_path_factory):
    models = f"  - candidate: {tiny_models / 'merged'}\n  - parent: {tiny_models / 'parent-a'}"
    return _write_plan(tmp_path_factory.mktemp("rayplan"), models, limit=10)


@contextlib.contextmanager
def _threads(n):
    """torch's intra-op threads of this process: a Ray actor with num_cpus=1 computes with one thread, and the
    same thread count gives the same float rounding (two threads sum in another order: the log-likelihoods then
    differ in the last bits; the metrics here do not)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _items(store) -> list[dict]:
    result = CliRunner().invoke(app, ["export", "--items", "--store", str(store)])
    assert result.exit_code == 0, result.output
    return sorted(json.loads(result.stdout), key=lambda r: (r["model"], r["task"], str(r.get("item_id"))))


def test_run_with_the_ray_executor_stores_what_the_local_executor_stores(cluster, plan, tmp_path):
    local, remote = tmp_path / "local.db", tmp_path / "ray.db"
    with _threads(1):
        ran = CliRunner().invoke(app, ["run", str(plan), "--store", str(local), "--no-write", "--executor", "local"])
    assert ran.exit_code in (0, 1, 3), ran.output
    ran = CliRunner().invoke(app, ["run", str(plan), "--store", str(remote), "--no-write", "--executor", "ray"])
    assert ran.exit_code in (0, 1, 3), ran.output
    expected = _items(local)
    assert len(expected) == 2 * 2 * 10  # 2 models x 2 tasks x 10 items
    # every stored field: metrics, log-likelihoods, the prompt's and the document's hashes (the few-shot
    # contexts of a shard's documents are the ones the whole task builds)
    assert _items(remote) == expected
    assert {r.provenance.get("executor") for r in _runs(remote)} == {"ray"}
    # everything is stored: a second run computes nothing
    again = CliRunner().invoke(app, ["run", str(plan), "--store", str(remote), "--no-write", "--executor", "ray"])
    assert again.exit_code in (0, 1, 3), again.output
    assert len(_runs(remote)) == 2 * 2  # one shard per (model, task): 10 documents fit one

    # shards of one chunk (8 documents): each task is cut in two, the second shard's few-shot contexts are
    # still those of documents 8..9 in a whole run, and the numbers stay the same
    sharded = tmp_path / "sharded.db"
    report = api.run(plan, store=sharded, executor=RayExecutor(shard_batches=1))
    assert report.models and _items(sharded) == expected
    runs = _runs(sharded)
    assert sorted(r.n_items for r in runs) == [2, 2, 2, 2, 8, 8, 8, 8]
    assert {r.provenance.get("executor") for r in runs} == {"ray"}


def _runs(store):
    with Store(store) as db:
        return [r for m in db.models() for r in db.runs(m.fingerprint)]


def test_the_plan_settings_choose_the_executor_and_the_cli_overrides_them(cluster, tiny_models, tmp_path):
    ray_plan = _write_plan(tmp_path, f"  - candidate: {tiny_models / 'parent-b'}", limit=3, extra_settings="  executor: ray\n")
    store = tmp_path / "s.db"
    ran = CliRunner().invoke(app, ["run", str(ray_plan), "--store", str(store), "--no-write"])
    assert ran.exit_code in (0, 1, 3), ran.output
    with Store(store) as db:
        executors = {r.provenance.get("executor") for m in db.models() for r in db.runs(m.fingerprint)}
    assert executors == {"ray"}
    # --executor local overrides the plan (nothing missing here, so nothing runs; the bad address is ignored)
    ray_plan.write_text(ray_plan.read_text() + "  ray_address: 127.0.0.1:1\n")
    ran = CliRunner().invoke(app, ["run", str(ray_plan), "--store", str(store), "--no-write", "--executor", "local"])
    assert ran.exit_code in (0, 1, 3), ran.output


NO_RAY = """
import sys
sys.modules["ray"] = None  # what `import ray` meets in an install without the [ray] extra: ImportError
from mergeval.cli import main
sys.argv = ["mergeval", *sys.argv[1:]]
main()
"""


def test_without_ray_the_ray_executor_is_one_sentence_and_the_store_stays_as_it_was(plan, tmp_path):
    store = tmp_path / "s.db"
    with Store(store) as db:
        db.cache_put("keep", "me", {"v": 1})
    before = store.read_bytes()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    ran = subprocess.run([sys.executable, "-c", NO_RAY, "run", str(plan), "--store", str(store), "--executor", "ray"],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert ran.returncode == 2, ran.stderr
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "needs Ray, which is not installed" in lines[0] and "mergeval[ray]" in lines[0]
    assert store.read_bytes() == before


def _sweep(tiny_models, folder):
    return {
        "name": "ray-sweep",
        "config": {"models": [{"model": str(tiny_models / "parent-a")}, {"model": str(tiny_models / "parent-b")}],
                   "dtype": "float32"},
        "grid": [{"merge_method": "linear",
                  "weight": [{"parent-a": 0.3, "parent-b": 0.7}, {"parent-a": 0.6, "parent-b": 0.4}]}],
        "checks": [{"type": "perplexity", "context_length": 64}],
        "in_memory": True,
        "out_dir": str(folder),
    }


def test_a_sweep_on_ray_merges_its_candidates_on_the_workers_and_scores_as_locally(cluster, tiny_models, tmp_path):
    from mergeval.merge import run_sweep

    local, remote = tmp_path / "local.db", tmp_path / "ray.db"
    with _threads(1):
        here = run_sweep(_sweep(tiny_models, tmp_path / "l"), store=local, report=False)
    events = []
    there = run_sweep(_sweep(tiny_models, tmp_path / "r"), store=remote, report=False, executor="ray",
                      on_event=events.append)
    # the config names its dtype, so the identity is known without merging: only the workers merge
    assert sum("to be merged in memory on the workers, queued" in e for e in events) == 2, events
    assert [(r.name, r.fingerprint, r.objective_report) for r in there.ranked()] == \
           [(r.name, r.fingerprint, r.objective_report) for r in here.ranked()]
    assert all(r.fingerprint.startswith("merge-") for r in there.candidates)  # merged in memory, not on disk
    assert _items(remote) == _items(local)
    with Store(remote) as db:
        runs = [r for c in there.candidates for r in db.runs(c.fingerprint)]
    assert runs and {r.provenance.get("executor") for r in runs} == {"ray"}
    assert {r.provenance.get("worker_pid") for r in runs} - {os.getpid()}  # evaluated in the workers
    assert not list((tmp_path / "r").glob("candidates/*"))  # no weights were written for the workers
