"""Ray executor vs the local executor, side by side in one run (issue 12).

    python bench/bench_ray.py [--items 512] [--shard-batches 1] [--plan] [--sweep]

Part 1 (always): the executor's own cost per shard, with a check that computes nothing (each item costs
`--cost-ms`): the same units through the local executor and through Ray with 2 workers on this machine.
Part 2 (--plan): a tiny plan (3 tiny random llamas; ARC 3-shot and Winogrande 2-shot from the bundled smoke
items, --limit each) through `mergeval.run`, and (--sweep) a 4-candidate linear sweep of two of them ranked on
perplexity, merged in memory (on the Ray workers: again, from the recipe), each local vs Ray with 2 workers
(a local Ray cluster of --cpus CPUs, started outside the timing, as a cluster is up before a real run). Every
run starts from an empty store. The last line is one JSON object with the measurements.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from mergeval.core import CheckContext, Entry, LocalExecutor, PlanModel, load_plugin_file, run_entries
from mergeval.core.executors import RayExecutor
from mergeval.core.registry import get_check
from mergeval.models import ModelRef
from mergeval.store import Store

HERE = Path(__file__).resolve().parent


def _ctx(store: Store, n_models: int) -> CheckContext:
    models = [PlanModel(SimpleNamespace(name=f"m{i}", role="candidate"),
                        ModelRef(reference=f"m{i}", kind="endpoint", name=f"m{i}", fingerprint=f"fp-m{i}"))
              for i in range(n_models)]
    return CheckContext(plan=None, store=store, models=models)


def overhead(items: int, models: int, cost_ms: float, shard_batches: int) -> dict:
    load_plugin_file(HERE / "_noop_check.py")
    noop = get_check("bench-noop")
    config = noop.Config(items=items, cost_ms=cost_ms)
    work = Path(tempfile.mkdtemp())
    out = {}
    try:
        for name, make in (("local", LocalExecutor), ("ray", lambda: RayExecutor(shard_batches=shard_batches))):
            executor = make()
            with Store(work / f"{name}.db") as store:
                if name == "ray":  # start the cluster outside the timing (a cluster is up before a real run)
                    executor._connect()
                started = time.perf_counter()
                evaluated = run_entries([Entry(noop, config)], _ctx(store, models), executor).evaluated
                out[name] = {"seconds": round(time.perf_counter() - started, 3), "items": evaluated}
                if name == "ray":
                    out[name].update(executor.stats)
        shards = out["ray"]["shards"]
        out["ray_overhead_ms_per_shard"] = round(1000 * (out["ray"]["seconds"] - out["local"]["seconds"] / 2)
                                                 / shards, 2)
        out["ray_seconds_per_shard"] = round(out["ray"]["seconds"] / shards, 4)
        out["speedup"] = round(out["local"]["seconds"] / out["ray"]["seconds"], 3)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


SUITE = """\
name: bench-mini
title: bench mini
label: "bench mini suite (lm-eval {{lm_eval_version}})"
note: bundled smoke items, few-shot
task_dirs: [{tasks}]
data_root: {data}
benchmarks:
  - {{name: arc, display: ARC, tasks: [smoke_arc], num_fewshot: 3, metric: acc_norm}}
  - {{name: winogrande, display: Winogrande, tasks: [smoke_winogrande], num_fewshot: 2, metric: acc}}
"""


def _models(root: Path) -> dict[str, Path]:
    from mergeval.testing import make_tiny_llama

    return {name: make_tiny_llama(root / name, seed=seed)
            for name, seed in (("merged", 0), ("parent-a", 1), ("parent-b", 2))}


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return round(time.perf_counter() - started, 3)


def _side_by_side(name: str, run) -> dict:
    """`run(executor, store)` once with the local executor and once with Ray, each on an empty store."""
    work = Path(tempfile.mkdtemp())
    try:
        local = _timed(lambda: run("local", work / "local.db"))
        ray_executor = RayExecutor()
        began = time.time()
        remote = _timed(lambda: run(ray_executor, work / "ray.db"))
        with Store(work / "ray.db") as store:
            starts = [r.started_at for m in store.models() for r in store.runs(m.fingerprint)]
        shards = ray_executor.stats["shards"]
        out = {"local_s": local, "ray_s": remote, "ray_over_local": round(remote / local, 3),
               "shards": shards, "actors": ray_executor.stats["actors"],
               # from the call to the first shard starting on a worker: planning, actor start, model load
               "first_shard_s": round(min(starts) - began, 2) if starts else None,
               "extra_ms_per_shard": round(1000 * (remote - local) / max(1, shards), 1)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{name}: local {local:.1f} s, ray {remote:.1f} s (ray/local {out['ray_over_local']:.2f}, "
          f"{shards} shards on {out['actors']} actors; first shard on a worker after {out['first_shard_s']} s)",
          flush=True)
    return out


def plan_bench(root: Path, limit: int) -> dict:
    from mergeval import api
    from mergeval.suites.smoke import DATA_DIR, TASKS_DIR

    models = _models(root / "models")
    (root / "suite.yaml").write_text(SUITE.format(tasks=TASKS_DIR, data=DATA_DIR))
    plan = root / "mergeval.yaml"
    plan.write_text(f"""models:
  - candidate: {models["merged"]}
  - parent: {models["parent-a"]}
  - parent: {models["parent-b"]}
checks:
  - type: suite
    suite: suite.yaml
    limit: {limit}
settings: {{dtype: float32, batch_size: 4, n_boot: 200}}
""")
    return _side_by_side("plan", lambda executor, store: api.run(plan, store=store, executor=executor))


def sweep_bench(root: Path) -> dict:
    from mergeval.merge import run_sweep

    models = _models(root / "models") if not (root / "models").exists() else \
        {p.name: p for p in (root / "models").iterdir()}
    weights = [{"parent-a": w, "parent-b": round(1 - w, 2)} for w in (0.2, 0.4, 0.6, 0.8)]
    spec = {"name": "bench", "in_memory": True, "out_dir": str(root / "sweep"),
            "config": {"models": [{"model": str(models["parent-a"])}, {"model": str(models["parent-b"])}],
                       "dtype": "float32"},
            "grid": [{"merge_method": "linear", "weight": weights}],
            "checks": [{"type": "perplexity", "context_length": 128}]}
    return _side_by_side("sweep (4 candidates)",
                         lambda executor, store: run_sweep(spec, store=store, executor=executor, report=False))


def predict(n: int, parents: int, gpus: int, cost: float, start: float, load: float, overhead_s: float,
            shards: int) -> float:
    """The cost model of docs/cluster.md: predicted wall seconds of a sweep (parents first, then candidates)."""
    from math import ceil

    per_model = cost + shards * overhead_s
    if gpus >= parents:
        t_parents = start + load + per_model / min(gpus // parents, shards)
    else:
        t_parents = start + ceil(parents / gpus) * (load + per_model)
    if gpus <= n:
        t_candidates = start + ceil(n / gpus) * (load + per_model)
    else:
        t_candidates = start + load + per_model / (gpus // n)
    return t_parents + t_candidates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=512)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--cost-ms", type=float, default=20.0)
    parser.add_argument("--shard-batches", type=int, default=1)
    parser.add_argument("--plan", action="store_true", help="also the tiny plan, local vs Ray")
    parser.add_argument("--sweep", action="store_true", help="also the 4-candidate sweep, local vs Ray")
    parser.add_argument("--limit", type=int, default=40, help="--plan: documents per task")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster (= workers)")
    parser.add_argument("--local-threads", type=int, default=0,
                        help="torch threads of the local runs (0: torch's default, every core)")
    parser.add_argument("--predict", action="store_true", help="only print the cost model's predictions")
    parser.add_argument("--cost", type=float, default=3600.0, help="--predict: seconds per model for the suite")
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--parents", type=int, default=2)
    parser.add_argument("--start-s", type=float, default=60.0, help="--predict: actor start (L)")
    parser.add_argument("--load-s", type=float, default=30.0, help="--predict: model load or merge (l)")
    parser.add_argument("--overhead-ms", type=float, default=30.0, help="--predict: per shard (o)")
    parser.add_argument("--shards", type=int, default=300, help="--predict: shards per model (S)")
    args = parser.parse_args()
    if args.local_threads:
        import torch

        torch.set_num_threads(args.local_threads)  # the local runs only: Ray's workers have their own
    if args.predict:
        for gpus in (1, 8, 64):
            t = predict(args.candidates, args.parents, gpus, args.cost, args.start_s, args.load_s,
                        args.overhead_ms / 1000, args.shards)
            work = (args.candidates + args.parents) * args.cost
            print(f"{gpus:>3} GPUs: {t / 60:8.1f} min, efficiency {work / (gpus * t):.2f}")
        return
    import ray

    temp = tempfile.mkdtemp(prefix="rb", dir="/tmp")  # short: Ray's socket paths are limited
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    try:
        result = {"overhead": overhead(args.items, args.models, args.cost_ms, args.shard_batches)}
        print(f"overhead: {result['overhead']['ray_overhead_ms_per_shard']} ms per shard", flush=True)
        root = Path(tempfile.mkdtemp())
        if args.plan:
            result["plan"] = plan_bench(root, args.limit)
        if args.sweep:
            result["sweep"] = sweep_bench(root)
        shutil.rmtree(root, ignore_errors=True)
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
