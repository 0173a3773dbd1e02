"""Checks run before mergekit touches anything: the mistakes mergekit users hit, as one clear sentence each.

mergekit finds most of these too, but late (after loading every parent) and in its own words ("Tensor size
mismatch for lm_head.weight: [(400, 32), (400, 64)]"). Checked here from the parents' config.json, tokenizer
files and safetensors headers, in milliseconds:
  - the merge method's inputs: a base model for TIES / DARE / task arithmetic, two models for SLERP, the
    parameters it requires;
  - architecture: the same model class and the same tensor shapes;
  - vocabulary: the same tokenizer, unless the config asks mergekit to align them (`tokenizer_source`);
  - disk: room for the output, estimated from the parents' weights, before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path
from typing import Any

from mergeval.errors import UserError
from mergeval.merge.recipe import MergeRecipe, merge_method
from mergeval.models import ModelRef

# config.json keys that fix tensor shapes: parents differing in any of them cannot be merged tensor by tensor.
_SHAPE_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "n_embd",
    "n_head",
    "d_model",
)
_DTYPE_BYTES = {
    "float32": 4,
    "F32": 4,
    "float16": 2,
    "F16": 2,
    "bfloat16": 2,
    "BF16": 2,
    "float64": 8,
    "F64": 8,
    "int8": 1,
    "I8": 1,
    "U8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}
# Room kept free beyond the estimate: mergekit also writes the tokenizer, config and a model card.
DISK_MARGIN_BYTES = 64 * 1024 * 1024
DISK_MARGIN_FRACTION = 0.05


def _config(ref: ModelRef) -> dict[str, Any]:
    assert ref.path is not None
    return json.loads((ref.path / "config.json").read_text())


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    """Multimodal configs keep the language model's shape under `text_config`."""
    return config.get("text_config") or config


def check_inputs(recipe: MergeRecipe) -> None:
    """The merge method exists, gets the base model and the number of models it needs, and its parameters."""
    from mergekit.merge_methods.base import BasePolicy

    method = merge_method(recipe.method)
    contract = method.spec.contract
    base = recipe.base_model
    entries = recipe.config.get("models") or []
    models = [entry["model"] for entry in entries]
    if contract.base == BasePolicy.REQUIRED and not base:
        raise UserError(
            f"{recipe.method} merges the parents' differences from a common base model, but the config has "
            "no base_model. Add `base_model: <the model both parents were fine-tuned from>`."
        )
    if not models:
        return  # slices / modules syntax: mergekit checks these itself
    uses_base = base and contract.base != BasePolicy.IGNORED
    inputs = list(dict.fromkeys([*models, *([base] if uses_base else [])]))
    if contract.max_inputs is not None and len(inputs) > contract.max_inputs:
        if recipe.method in ("slerp", "nearswap") and base not in models:
            raise UserError(
                f"{recipe.method} interpolates between exactly two models and uses base_model as one of "
                f"them, but base_model {recipe.parent_name(base)!r} is not among the config's models. "
                "Set base_model to one of the two models (the one t=0 returns)."
            )
        raise UserError(
            f"{recipe.method} takes at most {contract.max_inputs} models (base included) and the config has "
            f"{len(inputs)}. Remove models, or use a method that merges more (e.g. ties, linear)."
        )
    if len(inputs) < contract.min_inputs:
        raise UserError(
            f"{recipe.method} needs at least {contract.min_inputs} models; the config has {len(inputs)}."
        )

    shared = recipe.config.get("parameters") or {}
    for spec in method.spec.parameters:
        if not spec.required or spec.name in shared:
            continue
        if spec.scope.value == "shared":
            raise UserError(
                f"{recipe.method} needs the parameter {spec.name!r}. Add `parameters: {{{spec.name}: ...}}`."
            )
        # per-model parameters: every model needs one ("non_base": every model but the base)
        lacking = [
            entry["model"]
            for entry in entries
            if (spec.scope.value == "input" or entry["model"] != base)
            and spec.name not in (entry.get("parameters") or {})
        ]
        if lacking:
            names = ", ".join(recipe.parent_name(m) for m in lacking)
            raise UserError(
                f"{recipe.method} needs a {spec.name!r} for every model and {names} has none. Add "
                f"`parameters: {{{spec.name}: ...}}` to each model, or once at the top level for all of them."
            )


def check_architectures(recipe: MergeRecipe, *, allow_crimes: bool = False) -> None:
    """Every parent has the same architecture and the same tensor shapes."""
    configs = {
        reference: _config(ref)
        for reference, ref in recipe.parents.items()
        if reference != recipe.config.get("tokenizer_source")
    }
    first_ref, first = next(iter(configs.items()))
    for reference, config in configs.items():
        a, b = (
            first.get("architectures") or [first.get("model_type")],
            config.get("architectures") or [config.get("model_type")],
        )
        if a != b and not allow_crimes:
            raise UserError(
                f"Cannot merge {recipe.parent_name(first_ref)} ({', '.join(map(str, a))}) with "
                f"{recipe.parent_name(reference)} ({', '.join(map(str, b))}): mergekit merges models of one "
                "architecture. Merge models fine-tuned from the same base model (or pass --allow-crimes "
                "if you know the tensors line up)."
            )
        for key in _SHAPE_KEYS:
            va, vb = _text_config(first).get(key), _text_config(config).get(key)
            if va != vb:
                raise UserError(
                    f"{recipe.parent_name(first_ref)} and {recipe.parent_name(reference)} have different "
                    f"shapes ({key} {va} vs {vb}), so their weights cannot be merged tensor by tensor. Merge "
                    "models that share an architecture size (fine-tunes of the same base model)."
                )
        if not recipe.config.get("slices") and not recipe.config.get("modules"):
            la, lb = (
                _text_config(first).get("num_hidden_layers"),
                _text_config(config).get("num_hidden_layers"),
            )
            if la != lb:
                raise UserError(
                    f"{recipe.parent_name(first_ref)} has {la} layers and {recipe.parent_name(reference)} "
                    f"has {lb}. A `models:` merge needs equal depth; use `slices:` with matching layer_range "
                    "to merge parts."
                )


def vocabulary_hash(folder: Path) -> str | None:
    """A hash of a tokenizer's vocabulary (token -> id, added tokens too); None without tokenizer files."""
    tokenizer_json = folder / "tokenizer.json"
    digest = hashlib.sha256()
    if tokenizer_json.exists():
        data = json.loads(tokenizer_json.read_text())
        vocab = (data.get("model") or {}).get("vocab")
        digest.update(json.dumps(vocab, sort_keys=True).encode())
        added = sorted((t.get("id"), t.get("content")) for t in data.get("added_tokens") or [])
        digest.update(json.dumps(added).encode())
        return digest.hexdigest()[:16]
    for name in ("tokenizer.model", "vocab.json"):
        if (folder / name).exists():
            digest.update((folder / name).read_bytes())
            return digest.hexdigest()[:16]
    return None


def check_vocabularies(recipe: MergeRecipe) -> None:
    """Parents share one vocabulary, unless the config tells mergekit how to align them."""
    if recipe.config.get("tokenizer_source") or recipe.config.get("tokenizer"):
        return  # mergekit builds a common vocabulary and permutes the embedding rows
    refs = list(recipe.parents.values())
    sizes = [_text_config(_config(ref)).get("vocab_size") for ref in refs]
    hashes = [vocabulary_hash(ref.path) if ref.path else None for ref in refs]
    first = refs[0]
    for i, other in enumerate(refs[1:], start=1):
        differs_in_size = sizes[0] != sizes[i]
        differs_in_tokens = None not in (hashes[0], hashes[i]) and hashes[0] != hashes[i]
        if differs_in_size or differs_in_tokens:
            what = (
                f"vocabularies of {sizes[0]} and {sizes[i]} tokens"
                if differs_in_size
                else "vocabularies of the same size with different tokens"
            )
            raise UserError(
                f"{first.name} and {other.name} have different tokenizers ({what}), so merging their "
                "embeddings row by row would mix unrelated tokens. Add `tokenizer_source: base` (or `union`) "
                "to the config so mergekit aligns the vocabularies, or merge models that share a tokenizer."
            )


def _weight_elements(folder: Path) -> tuple[int, int]:
    """(number of weights, bytes on disk) of a model folder, from safetensors headers when present."""
    numel = 0
    size = 0
    for path in sorted(folder.glob("*.safetensors")):
        size += path.stat().st_size
        with path.open("rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(header_len))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in info["shape"]:
                count *= dim
            numel += count
    if numel == 0:  # .bin checkpoints: assume the file size is the weights at their stored precision
        for path in folder.iterdir():
            if path.suffix in (".bin", ".pt", ".pth"):
                size += path.stat().st_size
        numel = size // 2
    return numel, size


def estimate_output_bytes(recipe: MergeRecipe) -> int:
    """Bytes the merged weights will take: the largest parent's weights at the output dtype."""
    out_dtype = recipe.config.get("out_dtype") or recipe.config.get("dtype")
    best = 0
    for ref in recipe.parents.values():
        assert ref.path is not None
        numel, size = _weight_elements(ref.path)
        bytes_out = numel * _DTYPE_BYTES[out_dtype] if out_dtype in _DTYPE_BYTES else size
        best = max(best, bytes_out)
    return best


def _existing_ancestor(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def check_disk_space(out_dir: Path, needed_bytes: int) -> None:
    """Enough free space where `out_dir` will be written for `needed_bytes` plus a margin."""
    where = _existing_ancestor(out_dir)
    free = shutil.disk_usage(where).free
    wanted = int(needed_bytes * (1 + DISK_MARGIN_FRACTION)) + DISK_MARGIN_BYTES
    if free < wanted:
        raise UserError(
            f"Not enough disk space for the merged model: it needs about {_gb(wanted)} in {where} and only "
            f"{_gb(free)} is free. Free some space, or pass --out on a disk with more room."
        )


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def check_recipe(recipe: MergeRecipe, *, allow_crimes: bool = False) -> None:
    """Every check that needs no output folder."""
    check_inputs(recipe)
    check_architectures(recipe, allow_crimes=allow_crimes)
    check_vocabularies(recipe)
