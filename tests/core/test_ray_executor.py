"""The Ray executor on a real local Ray cluster (2 CPUs, 127.0.0.1): the same results as the local executor,
a worker killed mid-run is replaced and its shard run again, a shard that keeps failing is reported while
everything else is stored, and a driver killed with SIGKILL resumes without recomputing anything."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mergeval.core import CheckContext, Entry, LocalExecutor, PlanModel, load_plugin_file, run_entries
from mergeval.core.executors import RayExecutor, ShardsFailed, make_executor
from mergeval.core.registry import get_check
from mergeval.errors import UserError
from mergeval.models import ModelRef
from mergeval.store import Store

TOY_FILE = Path(__file__).with_name("toy_check.py")
load_plugin_file(TOY_FILE)
TOY = get_check("toy-upper")
TEXTS = [f"text number {i} " * (1 + i % 3) for i in range(24)]


@pytest.fixture(scope="module")
def cluster():
    import ray

    folder = tempfile.mkdtemp(prefix="mr", dir="/tmp")  # short: Ray's socket paths are limited
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=folder)
    yield ray
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


def _ctx(store, *names):
    models = [PlanModel(SimpleNamespace(name=n, role="candidate"),
                        ModelRef(reference=n, kind="endpoint", name=n, fingerprint=f"fp-{n}")) for n in names]
    return CheckContext(plan=None, store=store, models=models)


def _items(store, names, config):
    ctx = _ctx(store, *names)
    out = {}
    for m in ctx.models:
        task = TOY.tasks(config, ctx, m, "evaluate")[0]
        out[m.name] = {it.item_id: (it.metrics, it.data) for it in store.items(m.fingerprint, task.hash, with_data=True)}
    return out


def test_results_equal_the_local_executor_and_shards_are_written_as_runs(cluster, tmp_path):
    config = TOY.Config(texts=TEXTS)
    with Store(tmp_path / "local.db") as local, Store(tmp_path / "ray.db") as remote:
        run_entries([Entry(TOY, config)], _ctx(local, "a", "b"), LocalExecutor())
        executor = RayExecutor(shard_batches=2)
        summary = run_entries([Entry(TOY, config)], _ctx(remote, "a", "b"), executor)
        assert summary.evaluated == 48
        assert _items(remote, ["a", "b"], config) == _items(local, ["a", "b"], config)
        assert executor.stats["shards"] == 12  # 24 items, batches of 2, 2 batches a shard, 2 models
        runs = remote.runs("fp-a")
        assert len(runs) == 6 and all(r.status == "done" and r.n_items == 4 for r in runs)
        assert {r.provenance["executor"] for r in runs} == {"ray"}
        assert run_entries([Entry(TOY, config)], _ctx(remote, "a", "b"), RayExecutor()).evaluated == 0


def test_a_killed_worker_is_replaced_and_its_shard_run_again(cluster, tmp_path):
    marker = tmp_path / "crashed"
    config = TOY.Config(texts=TEXTS, crash_marker=str(marker))
    with Store(tmp_path / "s.db") as store:
        executor = RayExecutor(shard_batches=2)
        run_entries([Entry(TOY, config)], _ctx(store, "a"), executor)
        assert marker.exists()  # a worker really was SIGKILLed mid-run
        assert int(marker.read_text()) != os.getpid()
        # the shard it was running and the one queued behind it are run again
        assert 1 <= executor.stats["retries"] <= 2 and executor.stats["failed"] == 0
        assert sorted(_items(store, ["a"], config)["a"], key=int) == [str(i) for i in range(24)]
        assert sum(r.n_items for r in store.runs("fp-a")) == 24  # no duplicates


def test_a_shard_that_keeps_failing_is_reported_and_the_rest_is_stored(cluster, tmp_path):
    config = TOY.Config(texts=TEXTS, fail_item="13")
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(ShardsFailed, match="cannot be evaluated") as failed:
            run_entries([Entry(TOY, config)], _ctx(store, "a"), RayExecutor(shard_batches=2, max_retries=1))
        assert failed.value.exit_code == 4
        stored = set(_items(store, ["a"], config)["a"])
        assert stored == {str(i) for i in range(24)} - {"12", "13", "14", "15"}  # only the failing shard


def test_bad_executor_input_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match="Unknown executor 'dask'"):
        make_executor("dask")
    script = "import sys; sys.modules['ray'] = None\nfrom mergeval.core.executors import make_executor\n" \
             "try:\n    make_executor('ray')\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.startswith("UserError --executor ray needs Ray") and "mergeval[ray]" in out
    for address in ("127.0.0.1:1", "ray://127.0.0.1:1"):  # nothing listens on port 1 (Ray would wait minutes)
        with pytest.raises(UserError, match="No Ray cluster answers at"):
            RayExecutor(address=address).execute([], None)


DRIVER = textwrap.dedent("""
    import sys
    from types import SimpleNamespace
    from mergeval.core import CheckContext, Entry, PlanModel, load_plugin_file, run_entries
    from mergeval.core.executors import RayExecutor
    from mergeval.core.registry import get_check
    from mergeval.models import ModelRef
    from mergeval.store import Store

    load_plugin_file(sys.argv[1])
    toy = get_check("toy-upper")
    texts = [f"text number {i} " * (1 + i % 3) for i in range(24)]
    config = toy.Config(texts=texts, sleep_s=float(sys.argv[4]), log_file=sys.argv[3])
    ref = ModelRef(reference="a", kind="endpoint", name="a", fingerprint="fp-a")
    with Store(sys.argv[2]) as store:
        ctx = CheckContext(plan=None, store=store, models=[PlanModel(SimpleNamespace(name="a", role="candidate"), ref)])
        executor = RayExecutor(shard_batches=1, init_kwargs={"num_cpus": 2, "_temp_dir": sys.argv[5]})
        print("evaluated", run_entries([Entry(toy, config)], ctx, executor).evaluated, flush=True)
""")


def test_a_driver_killed_with_sigkill_resumes_without_recomputing(tmp_path):
    store, log = tmp_path / "s.db", tmp_path / "evaluated.txt"
    args = [sys.executable, "-c", DRIVER, str(TOY_FILE), str(store), str(log)]
    # Ray's socket paths must stay short (AF_UNIX): its folders live in short temporary folders
    ray_dirs = [tempfile.mkdtemp(prefix="mr", dir="/tmp") for _ in range(2)]
    first = subprocess.Popen([*args, "0.5", ray_dirs[0]], start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and (not log.exists() or len(log.read_text().split()) < 6):
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the local cluster it started
    first.wait()
    with Store(store) as db:
        stored_before = {it.item_id for it in db.items("fp-a", db.checks()[0].hash)}
    assert 0 < len(stored_before) < 24
    second = subprocess.run([*args, "0", ray_dirs[1]], check=False, capture_output=True, text=True, timeout=600,
                            start_new_session=True)
    for folder in ray_dirs:
        shutil.rmtree(folder, ignore_errors=True)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.strip().endswith(f"evaluated {24 - len(stored_before)}")
    evaluated = log.read_text().split()
    rerun = evaluated[len(evaluated) - (24 - len(stored_before)):]
    assert not set(rerun) & stored_before  # nothing stored was evaluated again
    with Store(store) as db:
        stored = sorted((it.item_id for it in db.items("fp-a", db.checks()[0].hash)), key=int)
    assert stored == [str(i) for i in range(24)]


class _Recorder:
    """A Progress that keeps what it is told (with the optional `describe`)."""

    def __init__(self):
        self.events = []

    def start(self, key, description, total):
        self.events.append(("start", key, description, total))

    def advance(self, key, n=1):
        self.events.append(("advance", key, n))

    def finish(self, key, status="done"):
        self.events.append(("finish", key, status))

    def describe(self, key, description):
        self.events.append(("describe", key, description))

    def say(self, message):
        self.events.append(("say", message))


def test_the_driver_shows_each_models_shards_done_running_and_failed(cluster, tmp_path):
    config = TOY.Config(texts=TEXTS, fail_item="13")
    recorder = _Recorder()
    with Store(tmp_path / "s.db") as store:
        ctx = _ctx(store, "a", "b")
        ctx.progress = recorder
        with pytest.raises(ShardsFailed):
            run_entries([Entry(TOY, config)], ctx, RayExecutor(shard_batches=2, max_retries=1))
    starts = {e[1]: e for e in recorder.events if e[0] == "start" and e[1].startswith("ray:")}
    assert set(starts) == {"ray:fp-a", "ray:fp-b"}
    assert all(e[3] == 6 for e in starts.values())  # 24 items, shards of 4: 6 per model
    for key in starts:
        advanced = sum(e[2] for e in recorder.events if e[0] == "advance" and e[1] == key)
        described = [e[2] for e in recorder.events if e[0] == "describe" and e[1] == key]
        assert advanced == 5  # the shard with item 13 fails twice, for good
        assert any("1 running" in d or "2 running" in d for d in described)
        assert described[-1].endswith("(0 running, 1 retried, 1 failed)")
        assert ("finish", key, "failed") in recorder.events
