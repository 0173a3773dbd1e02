"""Adaptive evaluation on real per-item results: SmolLM2-135M-Instruct vs noised copies of it, on the real
leaderboard data (../shared/data), every item evaluated once and stored, then

1. `mergeval run --adaptive` on a copy of that store (the product's scheduler: seeded order, rounds of
   32 + 25%, Bonferroni over the run's rules; every item it asks for is already stored, so nothing is
   evaluated again): per benchmark the items it needed and whether its verdicts equal the full run's;
2. `bench_adaptive.replay_adaptive` over many seeded orders: mean fraction of items and verdict agreement.

Usage (minutes on 2 cores; the first run evaluates and stores, later runs reuse the store):
  OMP_NUM_THREADS=1 python bench/bench_adaptive_real.py --limit 50 --noise 0.05,0.5 [--margin 5]
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_adaptive import replay_adaptive, zone

ROOT = Path(__file__).resolve().parents[1]


def noised_copy(src: Path, dst: Path, sigma: float, seed: int) -> Path:
    """`src` with Gaussian noise of `sigma` x each weight matrix's own std added to every 2-D weight."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (dst / "config.json").exists():
        return dst
    model = AutoModelForCausalLM.from_pretrained(src, torch_dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            if p.ndim == 2:
                p.add_(torch.randn(p.shape, generator=gen) * p.std() * sigma)
    model.save_pretrained(dst, safe_serialization=True)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    return dst


# The leaderboard's tasks 0-shot (25-shot ARC is hours on 2 shared CPU cores for a 135M model), with a
# six-subject MMLU (the subject-weighted order and macro mean).
SUITE = """\
name: adaptive-real
title: leaderboard tasks, 0-shot
label: "leaderboard v1 tasks 0-shot (lm-eval {lm_eval_version})"
note: bench/bench_adaptive_real.py
lm_eval_task_dirs: [arc, truthfulqa, mmlu/default, winogrande]
benchmarks:
  - {name: arc, display: ARC-Easy, tasks: [arc_easy], num_fewshot: 0, metric: acc_norm, filter: none}
  - name: mmlu
    display: MMLU (6 subjects)
    task_pattern: "mmlu_{subject}"
    groups: {stem: [astronomy, college_biology, high_school_physics], other: [nutrition, marketing, global_facts]}
    num_fewshot: 0
    metric: acc
    filter: none
    aggregate: task_mean
  - {name: truthfulqa, display: TruthfulQA, tasks: [truthfulqa_mc2], num_fewshot: 0, metric: acc, filter: none}
  - {name: winogrande, display: Winogrande, tasks: [winogrande], num_fewshot: 0, metric: acc, filter: none}
"""


def plan_text(models: dict[str, tuple[Path, str]], suite: Path, limit: int, data_dir: Path, margin: float) -> str:
    lines = ["title: adaptive replay", "store: mergeval.db", "models:"]
    for name, (path, role) in models.items():
        lines += [f"  - name: {name}", f"    path: {path}", f"    role: {role}"]
    lines += ["checks:", "  - type: suite", f"    suite: {suite}", f"    limit: {limit}",
              "gates: []", "settings:", "  device: cpu", "  batch_size: 8", "  dtype: float32",
              f"  data_dir: {data_dir}", f"  margin: {margin}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=200, help="items per task (MMLU: per subject)")
    ap.add_argument("--noise", default="0.1,0.5", help="relative weight noise of each candidate")
    ap.add_argument("--margin", type=float, default=1.0, help="points")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--orders", type=int, default=100)
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "hf"))
    ap.add_argument("--work", default="/tmp/mergeval-bench-adaptive-real", help="models, store, replay")
    args = ap.parse_args(argv)

    from mergeval.api import run
    from mergeval.demo import smollm2_gguf
    from mergeval.models import resolve

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = resolve(smollm2_gguf(), dtype="float32").path
    suite = work / "suite.yaml"
    suite.write_text(SUITE)
    out: dict = {"limit": args.limit, "suite": "leaderboard v1 tasks 0-shot (ARC-Easy, MMLU 6 subjects, "
                 "TruthfulQA mc2, Winogrande)", "margin_points": args.margin, "alpha": args.alpha}
    sigmas = [float(x) for x in args.noise.split(",")]
    models = {f"noise{s:g}": (noised_copy(base, work / f"smollm2-noise{s:g}", s, seed=1000 + i), "candidate")
              for i, s in enumerate(sigmas)}
    models["smollm2"] = (base, "parent")
    plan = work / "mergeval.yaml"
    plan.write_text(plan_text(models, suite, args.limit, Path(args.data_dir), args.margin))
    t0 = time.time()
    full = run(plan, adaptive=False)  # every item, stored (a later run reuses them)
    out["seconds_full_run"] = round(time.time() - t0, 1)
    replay = work / "replay"
    shutil.rmtree(replay, ignore_errors=True)
    replay.mkdir()
    shutil.copy(work / "mergeval.db", replay / "mergeval.db")
    shutil.copy(plan, replay / "mergeval.yaml")
    adaptive = run(replay / "mergeval.yaml", adaptive=True)  # the product's scheduler; nothing is evaluated
    product = {}
    for entry in adaptive.adaptive:
        rules = {}
        for r in entry.rules:
            cand = r.rule.split(" vs ")[0]
            d_full = full.comparison(cand, "smollm2", entry.benchmark).diff
            full_verdict = zone(d_full / 100, args.margin / 100)
            rules[r.rule] = {"verdict": r.verdict, "full_verdict": full_verdict, "full_difference_points": d_full,
                             "interval": [r.lower, r.upper]}
        agree = all(v["verdict"] == v["full_verdict"] for v in rules.values()) if entry.status == "stopped early" \
            else True  # ran to the end: the full evaluation itself
        product[entry.benchmark] = {"n": entry.n, "N": entry.n_target, "status": entry.status, "agree": agree,
                                    "rules": rules}
    out["product"] = product
    out["items_fraction"] = sum(p["n"] for p in product.values()) / sum(p["N"] for p in product.values())
    out["agreement"] = all(p["agree"] for p in product.values())
    pairs = _item_pairs(plan)
    out["replay"] = {}
    for s in sigmas:
        name = f"noise{s:g}"
        per_bench = {b: (c[name], c["smollm2"], w) for b, (c, w) in pairs.items()}
        out["replay"][name] = replay_adaptive(per_bench, alpha=args.alpha, margin=args.margin / 100,
                                              orders=args.orders)
    out["replay_fraction"] = float(np.mean([r["_summed"]["fraction"] for r in out["replay"].values()]))
    out["replay_agreement"] = float(np.mean([r["_summed"]["agreement"] for r in out["replay"].values()]))
    print(json.dumps(out, default=float))
    return out


def _item_pairs(plan_file: Path) -> dict:
    """benchmark -> (candidate item scores, reference item scores, weights) over the items both have."""
    from mergeval.analysis.engine import check_context, collect, resolve_models
    from mergeval.plan import load_plan
    from mergeval.store import Store

    plan = load_plan(plan_file, check_paths=False)
    with Store(plan.resolve_path(plan.store), create=False) as db:
        collected = collect(plan, check_context(plan, db, resolve_models(plan, db)))
    out = {}
    for b in collected.benchmarks:
        scores = {m.name: collected.score(m.name, b.name) for m in collected.models}
        if any(sc is None or not sc.items for sc in scores.values()):
            continue
        keys = sorted(set.intersection(*(set(sc.items) for sc in scores.values())))
        first = next(iter(scores.values()))
        weights = None
        if first.strata:
            sizes: dict[str, int] = {}
            for k in keys:
                sizes[first.strata[k]] = sizes.get(first.strata[k], 0) + 1
            weights = np.array([1.0 / sizes[first.strata[k]] for k in keys])
        out[b.name] = ({name: np.array([sc.items[k] for k in keys]) for name, sc in scores.items()}, weights)
    return out


if __name__ == "__main__":
    main()
