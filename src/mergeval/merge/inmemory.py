"""Merge into memory and evaluate the model object directly, without writing (and reading back) weights.

mergekit plans a merge as a graph of small tasks; `MergePlanner.plan_in_memory()` ends the graph with
`ReturnTensor` tasks instead of writes (mergekit's own evolutionary merge uses this). Executing that plan
yields the merged tensors one by one; they are copied into a model built from the output config, and the
model object goes to the evaluator (`ModelRef.model_object`), with the tokenizer read from the donor parent's
folder (the base model, else the first model: the tokenizer mergekit would copy to the output).

Identity: an in-memory model has no files to fingerprint, so its fingerprint is derived from its recipe key
(parents' fingerprints + config + seed + mergekit version): `merge-<hash>`. The same recipe merged to disk
gets the usual content fingerprint instead, so the two are stored as different models (their scores agree to
float rounding; see bench/RESULTS_merge.md).

Not for every merge: a config that rebuilds the vocabulary (`tokenizer_source`, `tokenizer:`) needs the
tokenizer mergekit writes, so those are merged to disk (`can_merge_in_memory` says which).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from mergeval.dtypes import canonical_dtype
from mergeval.errors import UserError
from mergeval.merge.preflight import check_recipe
from mergeval.merge.recipe import MergeRecipe, load_recipe
from mergeval.merge.run import MergeResult, translate_mergekit_error
from mergeval.models import ModelRef, fingerprint_text

# Parents larger than this are merged to disk by `in_memory="auto"` (the merged copy must fit in RAM too).
AUTO_IN_MEMORY_MAX_BYTES = 2 * 1024**3


# What rebuilds an in-memory merge from its recipe in another process (named in the recipe, so the executor
# that runs it needs no merge code: mergeval.core.executors.build_from_recipe).
BUILDER = f"{__name__}:rebuild"


def in_memory_fingerprint(recipe: MergeRecipe) -> str:
    return "merge-" + fingerprint_text("in-memory", recipe.key)


def can_merge_in_memory(recipe: MergeRecipe) -> str | None:
    """None when the recipe can be merged in memory, else the reason it cannot."""
    if recipe.config.get("tokenizer_source") or recipe.config.get("tokenizer"):
        return (
            "the config rebuilds the vocabulary (tokenizer_source), which needs the tokenizer mergekit writes"
        )
    if recipe.config.get("chat_template"):
        return "the config sets a chat_template, which mergekit writes into the output tokenizer"
    return None


def tokenizer_donor(recipe: MergeRecipe) -> Path:
    """The parent whose tokenizer the merge uses: the base model, else the first model (as mergekit)."""
    reference = recipe.base_model or next(iter(recipe.parents))
    path = recipe.parents[reference].path
    assert path is not None
    return path


def _plan_in_memory(planner) -> list:
    """`MergePlanner.plan_in_memory()`, working around mergekit 0.1.5's: its `ReturnTensor` declares
    `tensor_task: Task[Tensor]` while the planned tasks are `Task[Optional[Tensor]]`, so pydantic rejects
    every one ("Can't instantiate abstract class Task[Tensor]"). Same tasks, the field's type loosened."""
    from mergekit.graph import Task
    from mergekit.io.tasks import ReturnTensor

    class _ReturnTensor(ReturnTensor):
        tensor_task: Task

    planner._plan()
    return [
        _ReturnTensor(
            weight_info=weight, tensor_task=task, dtype=weight.force_dtype or planner.config.out_dtype
        )
        for weight, task in planner._tensors
    ]


def _merged_tensors(recipe: MergeRecipe, allow_crimes: bool) -> tuple[dict, object]:
    """mergekit's plan for the recipe, executed into tensors (name -> tensor) and the output model config."""
    import transformers
    from mergekit.architecture import get_architecture_info
    from mergekit.graph import Executor
    from mergekit.io.tasks import LoaderCache
    from mergekit.merge import _model_out_config  # the output config mergekit writes; no public accessor
    from mergekit.options import MergeOptions
    from mergekit.plan import MergePlanner

    options = MergeOptions(random_seed=recipe.seed, allow_crimes=allow_crimes, quiet=True)
    merge_config = recipe.mergekit_config()
    try:
        if recipe.seed is not None:
            transformers.trainer_utils.set_seed(recipe.seed)
        arch_info = get_architecture_info(merge_config, options)
        LoaderCache().setup(options=options)
        out_config = _model_out_config(merge_config, arch_info, trust_remote_code=False)
        planner = MergePlanner(merge_config, arch_info, options=options, out_model_config=out_config)
        executor = Executor(_plan_in_memory(planner), math_device="cpu", storage_device="cpu")
        # None: an optional weight no parent has
        tensors = {task.weight_info.name: value for task, value in executor.run(quiet=True) if value is not None}
    except UserError:
        raise
    except (ValueError, RuntimeError, KeyError, OSError) as exc:
        raise translate_mergekit_error(exc, recipe) from exc
    return tensors, out_config


def _model_from_tensors(tensors: dict, out_config):
    """A transformers model of the output config holding the merged tensors (tied weights tied again)."""
    import transformers
    from transformers.initialization import no_init_weights

    dtype = tensors[next(iter(tensors))].dtype
    out_config.dtype = dtype
    with no_init_weights():  # every weight is overwritten by the merge: skip the random init
        model = transformers.AutoModelForCausalLM.from_config(out_config, dtype=dtype)
    result = model.load_state_dict(tensors, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    untied_missing = [k for k in result.missing_keys if k not in tied]
    if untied_missing or result.unexpected_keys:
        raise UserError(
            f"The in-memory merge does not fit the output architecture (missing {untied_missing[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}). Merge this config to disk instead (mergeval merge)."
        )
    if tied:
        model.tie_weights()
    return model.eval()


def merge_in_memory(
    config: str | Path | dict | MergeRecipe,
    *,
    seed: int | None = 0,
    name: str | None = None,
    allow_crimes: bool = False,
) -> MergeResult:
    """Merge with mergekit into a model object (no files written). The result's `model` is a ModelRef whose
    `model_object` is the merged transformers model, ready for `mergeval.evaluate`."""
    recipe = config if isinstance(config, MergeRecipe) else load_recipe(config, seed=seed)
    reason = can_merge_in_memory(recipe)
    if reason:
        raise UserError(f"This merge cannot be done in memory: {reason}. Merge it to disk (mergeval merge).")
    check_recipe(recipe, allow_crimes=allow_crimes)
    started = time.perf_counter()
    model = _model_from_tensors(*_merged_tensors(recipe, allow_crimes))
    ref = _in_memory_ref(recipe, name, str(model.dtype).replace("torch.", ""), allow_crimes, model)
    return MergeResult(model=ref, recipe=recipe, output_path=None, seconds=time.perf_counter() - started)


def _in_memory_ref(recipe: MergeRecipe, name: str | None, dtype: str, allow_crimes: bool,
                   model: object = None) -> ModelRef:
    """The ModelRef of an in-memory merge: identity from the recipe, the recipe itself to rebuild it elsewhere."""
    return ModelRef(
        reference=f"merge:{recipe.key}",
        kind="in-memory",
        name=name or f"{recipe.method}-{recipe.key[:8]}",
        path=tokenizer_donor(recipe),
        fingerprint=in_memory_fingerprint(recipe),
        dtype=dtype,
        metadata={"merge_key": recipe.key, "merge_method": recipe.method, "in_memory": True},
        model_object=model,
        recipe={"config": recipe.config, "seed": recipe.seed, "allow_crimes": allow_crimes, "builder": BUILDER},
    )


def planned_in_memory(recipe: MergeRecipe, *, name: str | None = None) -> MergeResult | None:
    """The in-memory merge's ModelRef without merging (for a worker to merge from `recipe`), when its identity
    is known up front: the fingerprint comes from the recipe, and the dtype from the config's `dtype:`. None
    without a `dtype:` (the merged tensors' dtype is then known only by merging). The worker's merge checks
    both (`rebuild`)."""
    dtype = recipe.config.get("dtype")
    if not dtype or can_merge_in_memory(recipe):
        return None
    check_recipe(recipe)
    ref = _in_memory_ref(recipe, name, canonical_dtype(dtype), False)
    return MergeResult(model=ref, recipe=recipe, output_path=None, seconds=0.0)


def rebuild(ref: ModelRef) -> object:
    """The model object of an in-memory merge, merged again from `ref.recipe` (on a Ray worker: the driver
    sends the recipe, never the weights). The parents must be the same files there: the fingerprint (from
    the parents' content, the config and the seed) and the dtype are checked, so a worker that sees other
    parents fails instead of evaluating another model."""
    if ref.recipe is None:
        raise UserError(f"{ref.name} has no merge recipe to rebuild it from.")
    recipe = load_recipe(ref.recipe["config"], seed=ref.recipe.get("seed"))
    merged = merge_in_memory(recipe, name=ref.name, allow_crimes=bool(ref.recipe.get("allow_crimes")))
    if merged.model.fingerprint != ref.fingerprint or merged.model.dtype != ref.dtype:
        raise UserError(
            f"Merging {ref.name} again on {os.uname().nodename} gave another model ({merged.model.fingerprint}, "
            f"{merged.model.dtype}; the driver's is {ref.fingerprint}, {ref.dtype}). The parents' files differ "
            "there: give every worker the same model folder (docs/cluster.md)."
        )
    return merged.model.model_object
