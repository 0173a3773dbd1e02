"""What does merging in memory save? Side by side, for one merge config:

  disk       mergekit `run_merge` into a folder, then `AutoModelForCausalLM.from_pretrained` of it
             (what a sweep does without in-memory merging), folder deleted afterwards
  tmpfs      the same into /dev/shm (RAM-backed), when it exists
  in-memory  `mergeval.merge.merge_in_memory`: mergekit's plan executed into tensors, copied into a model
             object (no file written or read)

Each timing covers everything from the config to a model object ready for the evaluator. The parents are
random Llama models of two sizes: "tiny" (the tests' size) and "smol" (SmolLM2-135M's shape, float32).

    python bench/bench_merge_inmemory.py                 # both sizes, 3 repeats, linear + ties
    python bench/bench_merge_inmemory.py --sizes tiny --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

SIZES = {
    "tiny": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_layers": 2,
        "num_heads": 4,
        "num_kv_heads": 4,
        "vocab_size": 400,
    },
    # SmolLM2-135M's shape: 30 layers, hidden 576, 9 heads (3 KV), MLP 1536; the tiny tokenizer's
    # vocabulary padded to 49152 rows so the embeddings have the real size (untied: 163M weights).
    "smol": {
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_layers": 30,
        "num_heads": 9,
        "num_kv_heads": 3,
        "vocab_size": 49152,
    },
}


def make_parents(root: Path, size: str) -> dict[str, Path]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from mergeval.testing import make_tiny_llama, make_tokenizer

    spec = SIZES[size]
    tok = make_tokenizer()
    folders = {}
    for name, seed in (("base", 0), ("a", 1), ("b", 2)):
        config = LlamaConfig(
            vocab_size=max(len(tok), spec["vocab_size"]),
            hidden_size=spec["hidden_size"],
            intermediate_size=spec["intermediate_size"],
            num_hidden_layers=spec["num_layers"],
            num_attention_heads=spec["num_heads"],
            num_key_value_heads=spec["num_kv_heads"],
            tie_word_embeddings=False,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        torch.manual_seed(seed)
        folders[name] = make_tiny_llama(root / name, model=LlamaForCausalLM(config))
    return folders


def configs(folders: dict[str, Path]) -> dict[str, dict]:
    """The demo's mergekit configs (linear 0.5/0.5, SLERP t=0.5, TIES density 0.5) over these folders."""
    from mergeval.demo import merge_configs

    return merge_configs(folders["base"], folders["a"], folders["b"])


def via_disk(config: dict, where: Path) -> tuple[float, int]:
    from transformers import AutoModelForCausalLM

    from mergeval.merge import merge

    out = Path(tempfile.mkdtemp(dir=where)) / "merged"
    started = time.perf_counter()
    merge(config, out, store=None)
    model = AutoModelForCausalLM.from_pretrained(out, dtype="float32")
    seconds = time.perf_counter() - started
    written = sum(p.stat().st_size for p in out.iterdir())
    del model
    shutil.rmtree(out.parent)
    return seconds, written


def in_memory(config: dict) -> tuple[float, int]:
    from mergeval.merge import merge_in_memory

    started = time.perf_counter()
    result = merge_in_memory(config)
    seconds = time.perf_counter() - started
    del result
    return seconds, 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="tiny,smol")
    parser.add_argument("--methods", default="linear,ties")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from mergeval.merge import load_recipe

    rows = []
    for size in args.sizes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            folders = make_parents(Path(tmp), size)
            params = sum(
                p.numel()
                for p in __import__("transformers")
                .AutoModelForCausalLM.from_pretrained(folders["a"])
                .parameters()
            )
            for method in args.methods.split(","):
                config = configs(folders)[method]
                load_recipe(config)  # warm imports and the parents' fingerprints out of the timings
                in_memory(config)
                modes = {
                    "disk": lambda c=config: via_disk(c, Path(tmp)),
                    "in-memory": lambda c=config: in_memory(c),
                }
                if Path("/dev/shm").is_dir():
                    modes["tmpfs"] = lambda c=config: via_disk(c, Path("/dev/shm"))
                # Modes take turns within each repeat, so a slow spell of the machine hits all of them.
                times: dict[str, list[float]] = {mode: [] for mode in modes}
                written: dict[str, int] = {}
                for _ in range(args.repeats):
                    for mode, run in modes.items():
                        gc.collect()
                        seconds, written[mode] = run()
                        times[mode].append(seconds)
                for mode in modes:
                    median = statistics.median(times[mode])
                    rows.append((size, params, method, mode, median, min(times[mode]), written[mode]))
                    print(
                        f"{size:5} {method:7} {mode:10} median {median:7.3f} s  "
                        f"min {min(times[mode]):7.3f} s  written {written[mode] / 1e6:8.1f} MB",
                        flush=True,
                    )
    print()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print("| parents | weights | method | mode | median s | min s | written MB | vs disk |")
    print("|---|---|---|---|---|---|---|---|")
    for size, params, method, mode, median, best, written in rows:
        disk = next(r[4] for r in rows if r[0] == size and r[2] == method and r[3] == "disk")
        print(
            f"| {size} | {params / 1e6:.3g}M | {method} | {mode} | {median:.3f} | {best:.3f} | "
            f"{written / 1e6:.1f} "
            f"| {disk / median:.2f}x |"
        )


if __name__ == "__main__":
    main()
