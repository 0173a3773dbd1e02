"""`mergeval merge CONFIG.yml --out DIR`: run mergekit and record how the result was made.

The merge runs through mergekit's Python API (`run_merge` with `MergeOptions`), into a `.partial` folder next
to the output that is renamed into place only when mergekit has finished, so an interrupted merge never leaves
a half-written model where a finished one is expected. The result is fingerprinted like any model folder and
its provenance (the config with absolute paths, method, parameters, seed, mergekit version, parents'
fingerprints) is written to the store's `merges` table and, for people reading the folder, to
`mergeval-merge.json` in it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mergeval.core.progress import NullProgress, Progress, describe
from mergeval.errors import UserError
from mergeval.merge.preflight import check_disk_space, check_recipe, estimate_output_bytes
from mergeval.merge.recipe import MergeRecipe, load_recipe, mergekit_version
from mergeval.models import ModelRef, resolve
from mergeval.store import DEFAULT_STORE, Store

PROVENANCE_FILE = "mergeval-merge.json"
log = logging.getLogger("mergeval.merge")


@dataclass
class MergeResult:
    """A merged model on disk (or in memory, see `merge_in_memory`) and how it was made."""

    model: ModelRef
    recipe: MergeRecipe
    output_path: Path | None
    seconds: float

    @property
    def fingerprint(self) -> str:
        return self.model.fingerprint


def provenance(recipe: MergeRecipe, output_path: Path | None) -> dict[str, Any]:
    """What the store records about a merge (the arguments of `Store.record_merge`)."""
    return {
        "method": recipe.method,
        "config": recipe.config,
        "parameters": recipe.parameters,
        "seed": recipe.seed,
        "mergekit_version": mergekit_version(),
        "parents": recipe.parent_fingerprints,
        "output_path": str(output_path) if output_path else None,
    }


def record(store: Store, model: ModelRef, recipe: MergeRecipe, output_path: Path | None) -> None:
    """Register the merged model and its provenance in the store (parents are registered too, so a report can
    name them)."""
    for parent in recipe.parents.values():
        if store.model(parent.fingerprint) is None:
            store.upsert_model(
                parent.fingerprint,
                name=parent.name,
                reference=parent.reference,
                kind=parent.kind,
                metadata=parent.describe(),
            )
    metadata = {**model.describe(), "merge_key": recipe.key, "merge_method": recipe.method}
    store.upsert_model(
        model.fingerprint, name=model.name, reference=model.reference, kind=model.kind, metadata=metadata
    )
    store.record_merge(model.fingerprint, **provenance(recipe, output_path))


def translate_mergekit_error(exc: Exception, recipe: MergeRecipe) -> UserError:
    """mergekit's exception as a UserError that says what to change (its own words are kept at the end)."""
    text = str(exc)
    if "Tensor size mismatch" in text:
        hint = (
            "The parents' tensors have different shapes: merge fine-tunes of the same base model, or add "
            "`tokenizer_source: base` when only the vocabularies differ."
        )
    elif "Missing required parameter" in text:
        hint = "A parameter the merge method requires is missing: add it to each model's `parameters:`."
    elif "allow-crimes" in text or "allow_crimes" in text:
        hint = "The parents have different architectures: merge models of one architecture."
    elif "requires a base" in text:
        hint = f"{recipe.method} needs `base_model:` (the model the parents were fine-tuned from)."
    else:
        hint = "Check the config against mergekit's documentation for this merge method."
    return UserError(f"mergekit could not merge ({type(exc).__name__}: {text[:300]}). {hint}")


@contextlib.contextmanager
def _mergekit_steps(on_step: Callable[[int, int], None]) -> Iterator[None]:
    """mergekit's per-tensor loops report to `on_step(done, total)` while its own tqdm bars stay off: its
    modules' `tqdm` is swapped for a counting stand-in for the duration of the merge."""
    import mergekit.graph
    import mergekit.merge

    class _Counting:
        def __init__(self, iterable: Any = None, *args: Any, **kwargs: Any):
            self.items = list(iterable) if iterable is not None else []

        def __iter__(self) -> Iterator[Any]:
            for done, item in enumerate(self.items):
                on_step(done, len(self.items))
                yield item
            on_step(len(self.items), len(self.items))

    modules = [m for m in (mergekit.graph, mergekit.merge) if hasattr(getattr(m, "tqdm", None), "tqdm")]
    saved = {m: m.tqdm for m in modules}
    for m in modules:
        m.tqdm = SimpleNamespace(tqdm=_Counting)
    try:
        yield
    finally:
        for m, original in saved.items():
            m.tqdm = original


def _run_mergekit(recipe: MergeRecipe, out_path: Path, *, allow_crimes: bool, lazy_unpickle: bool,
                  on_step: Callable[[int, int], None] | None = None) -> None:
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    options = MergeOptions(
        random_seed=recipe.seed,
        allow_crimes=allow_crimes,
        copy_tokenizer=True,
        quiet=True,
        lazy_unpickle=lazy_unpickle,
        write_model_card=True,
    )
    try:
        with _mergekit_steps(on_step) if on_step else contextlib.nullcontext():
            run_merge(recipe.mergekit_config(), str(out_path), options, config_source=recipe.to_yaml())
    except UserError:
        raise
    except (ValueError, RuntimeError, KeyError, OSError) as exc:
        raise translate_mergekit_error(exc, recipe) from exc


def _merge_into(recipe: MergeRecipe, out_path: Path, *, allow_crimes: bool, lazy_unpickle: bool,
                on_step: Callable[[int, int], None] | None = None) -> None:
    """mergekit writes into `<out>.partial`, renamed to `out` when complete (a killed merge leaves no `out`)."""
    partial = out_path.with_name(out_path.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        _run_mergekit(recipe, partial, allow_crimes=allow_crimes, lazy_unpickle=lazy_unpickle, on_step=on_step)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out_path.exists():
        shutil.rmtree(out_path)
    partial.rename(out_path)


def _write_provenance_file(model: ModelRef, recipe: MergeRecipe, out_path: Path) -> None:
    """How the folder was made, next to its weights (read back when the merge is found again)."""
    data = {"fingerprint": model.fingerprint, "merge_key": recipe.key, **provenance(recipe, out_path),
            "parent_names": {ref.fingerprint: ref.name for ref in recipe.parents.values()}}
    (out_path / PROVENANCE_FILE).write_text(json.dumps(data, indent=2, sort_keys=True, default=str))


def merge_description(recipe: MergeRecipe) -> str:
    """What a merge is, in a few words: `merging ties: arithmetic + capitals (base: base)`."""
    base = recipe.base_model
    listed = [m.get("model") for m in recipe.config.get("models") or [] if isinstance(m, dict)]
    listed = [str(m) for m in listed if isinstance(m, str)]  # mergekit's `models:`, the base among them for SLERP
    names = [_short(reference) for reference in listed or [r for r in recipe.parents if r != base]]
    text = f"merging {recipe.method}: {' + '.join(names) or '?'}"
    return text + (f" (base: {_short(base)})" if base else "")


def _short(reference: str) -> str:
    """A parent as the user knows it: the folder's name (a hub id stays whole)."""
    path = Path(str(reference))
    return path.name if path.is_absolute() or str(reference).startswith(".") else str(reference)


def merge(
    config: str | Path | dict[str, Any] | MergeRecipe,
    out: str | Path,
    *,
    store: str | Path | Store | None = DEFAULT_STORE,
    seed: int | None = 0,
    name: str | None = None,
    overwrite: bool = False,
    allow_crimes: bool = False,
    lazy_unpickle: bool = False,
    progress: Progress | None = None,
) -> MergeResult:
    """Merge with mergekit into `out` and record the provenance in `store` (None: do not record).
    `progress` shows what is merged (method and parents) and mergekit's steps as they finish.

    `seed` is mergekit's random seed (DARE / DELLA drop weights at random; other methods ignore it).
    Raises a UserError before writing anything when the parents cannot be merged or the disk is too small.
    """
    recipe = config if isinstance(config, MergeRecipe) else load_recipe(config, seed=seed)
    out_path = Path(out).expanduser().resolve()
    if out_path.exists() and any(out_path.iterdir()) and not overwrite:
        raise UserError(
            f"{out_path} already exists and is not empty. Pass another --out, or --overwrite to replace it."
        )
    check_recipe(recipe, allow_crimes=allow_crimes)
    check_disk_space(out_path, estimate_output_bytes(recipe))

    progress = progress or NullProgress()
    key, what = f"merge-{out_path}", merge_description(recipe)
    progress.start(key, what, None)  # a spinner until mergekit says how many steps

    def on_step(done: int, total: int) -> None:
        describe(progress, key, f"{what}: step {done}/{total}")

    started = time.perf_counter()
    status = "failed"
    try:
        _merge_into(recipe, out_path, allow_crimes=allow_crimes, lazy_unpickle=lazy_unpickle, on_step=on_step)
        describe(progress, key, f"{what}: fingerprinting the merge")
        model = resolve(out_path, name=name or out_path.name)
        status = "done"
    finally:
        progress.finish(key, status)
    seconds = time.perf_counter() - started
    _write_provenance_file(model, recipe, out_path)
    if store is not None:
        with contextlib.ExitStack() as stack:
            db = store if isinstance(store, Store) else stack.enter_context(Store(store))
            record(db, model, recipe, out_path)
    return MergeResult(model=model, recipe=recipe, output_path=out_path, seconds=seconds)
