"""The grid of a sweep: every distinct candidate merge it names, checked before anything is merged.

A grid key is a mergekit config field (`merge_method`, `base_model`, `dtype`, ...), `seed`, or a parameter of
the merge method (mergekit's method specs say which: parameters a method does not take are dropped for it, so
`linear` x `density: [0.3, 0.6]` is one candidate, not two). Candidates are keyed by their recipe (config with
the parents' fingerprints, seed, mergekit version; see `recipe.py`), so two grid entries that name the same
merge give one candidate.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mergeval.errors import UserError
from mergeval.merge.preflight import check_recipe
from mergeval.merge.recipe import (
    MergeRecipe,
    is_seeded,
    load_recipe,
    merge_method,
    method_parameters,
    read_config,
    resolve_path,
)
from mergeval.merge.spec import SweepSpec
from mergeval.models import ModelRef

# store cache of merged candidates: recipe key -> {fingerprint, label, dtype, kept_at} (sweep and racing)
CANDIDATE_NAMESPACE = "merge-candidate"


@dataclass
class Candidate:
    label: str
    recipe: MergeRecipe
    parameters: dict[str, Any]  # what varies, flat (e.g. {"t": 0.5} or {"weight[parent-b]": 0.7})

    @property
    def key(self) -> str:
        return self.recipe.key

    @property
    def method(self) -> str:
        return self.recipe.method


def _config_fields() -> set[str]:
    from mergekit.config import MergeConfiguration  # mergekit imports torch: only when a grid is expanded

    return set(MergeConfiguration.model_fields)


def _model_index(config: dict[str, Any], name: str, base_dir: Path) -> int | None:
    """Index in `config["models"]` of the model called `name` (folder name, path as written or resolved)."""
    resolved = resolve_path(name, base_dir)
    for i, entry in enumerate(config.get("models") or []):
        model = str(entry.get("model", ""))
        if name in (model, Path(model).name) or resolved == model:
            return i
    return None


def _model_reference(config: dict[str, Any], name: str, base_dir: Path) -> str:
    """A model named in the grid (e.g. `base_model: parent-a`) as the config's reference to it."""
    index = _model_index(config, name, base_dir)
    if index is not None:
        return config["models"][index]["model"]
    return resolve_path(name, base_dir)


def _apply(
    config: dict[str, Any], key: str, value: Any, base_dir: Path, config_fields: set[str]
) -> str | None:
    """Set one grid value on a candidate config; returns the name it shows as (None: not shown)."""
    if key in ("base_model", "tokenizer_source") and isinstance(value, str):
        config[key] = _model_reference(config, value, base_dir)
        return key
    if key in config_fields:
        config[key] = value
        return key if key != "merge_method" else None
    accepted = method_parameters(config["merge_method"])
    if key not in accepted:
        return None  # not this method's parameter (checked against the whole grid in `expand_candidates`)
    if isinstance(value, dict):
        if accepted[key] == "shared":
            raise UserError(
                f"{config['merge_method']}'s {key!r} is one value for the whole merge, not per model."
            )
        for name, per_model in value.items():
            index = _model_index(config, str(name), base_dir)
            if index is None:
                models = ", ".join(Path(e["model"]).name for e in config.get("models") or [])
                raise UserError(
                    f"The grid gives {key} for {name!r}, which is not one of the config's models "
                    f"({models}). Name models by folder name."
                )
            config["models"][index].setdefault("parameters", {})[key] = per_model
        return key
    config.setdefault("parameters", {})[key] = value
    return key


def _strip_foreign_parameters(config: dict[str, Any]) -> None:
    """Drop parameters the method does not take (e.g. a linear `weight` left in the shared config for slerp),
    so they neither reach mergekit nor split one merge into several keys."""
    accepted = method_parameters(config["merge_method"])
    for holder in [config, *(config.get("models") or [])]:
        params = holder.get("parameters")
        if params:
            for name in [n for n in params if n not in accepted]:
                del params[name]
            if not params:
                del holder["parameters"]
    from mergekit.merge_methods.base import BasePolicy

    models = {e.get("model") for e in config.get("models") or []}
    if (
        merge_method(config["merge_method"]).spec.contract.base == BasePolicy.IGNORED
        and config.get("base_model") not in models
    ):
        config.pop("base_model", None)  # a method that ignores the base would otherwise average it in


def _label(method: str, shown: dict[str, Any]) -> str:
    parts = [method] + [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()]
    return " ".join(parts)


def _flat(shown: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Grid values as flat display parameters; per-model mappings become `name[model]` entries."""
    flat: dict[str, Any] = {}
    for key, value in shown.items():
        if isinstance(value, dict):
            for model, v in value.items():
                flat[f"{key}[{model}]"] = v
        elif key in ("base_model", "tokenizer_source") and isinstance(value, str):
            flat[key] = Path(value).name
        else:
            flat[key] = value
    return flat


def expand_candidates(spec: SweepSpec) -> list[Candidate]:
    """Every distinct candidate of the grid, in grid order, parents resolved once (a UserError names the first
    grid entry that cannot work, before anything is merged)."""
    base_config, _ = read_config(
        spec.config if isinstance(spec.config, dict) else _config_path(spec), base_dir=spec.base_dir
    )
    config_fields = _config_fields()
    parents: dict[str, ModelRef] = {}
    seen: dict[str, Candidate] = {}
    for block_index, block in enumerate(spec.grid):
        methods = block.get("merge_method", base_config.get("merge_method"))
        methods = methods if isinstance(methods, list) else [methods]
        if not methods or methods == [None]:
            raise UserError(f"grid entry {block_index + 1} has no merge_method (and the config has none).")
        known_params = set().union(*(method_parameters(m) for m in methods))
        for key in block:
            if key not in config_fields and key != "seed" and key not in known_params:
                raise UserError(
                    f"grid entry {block_index + 1}: {key!r} is not a parameter of {', '.join(methods)} "
                    f"(they take: {', '.join(sorted(known_params))}) nor a mergekit config field."
                )
        keys = [k for k in block if k != "merge_method"]
        values = [block[k] if isinstance(block[k], list) else [block[k]] for k in keys]
        for method in methods:
            for combo in itertools.product(*values):
                config = copy.deepcopy(base_config)
                config["merge_method"] = method
                seed = spec.seed
                shown: dict[str, Any] = {}
                for key, value in zip(keys, combo):
                    if key == "seed":
                        seed = int(value)
                        continue
                    if _apply(config, key, value, spec.base_dir, config_fields) is not None:
                        shown[key] = value
                _strip_foreign_parameters(config)
                try:
                    recipe = load_recipe(config, seed=seed, parents=parents)
                    check_recipe(recipe)
                except UserError as exc:
                    raise UserError(
                        f"grid entry {block_index + 1} ({_label(method, _flat(shown, config))}): {exc}"
                    ) from exc
                flat = _flat(shown, config)
                if is_seeded(method):
                    flat["seed"] = seed
                candidate = Candidate(label=_label(method, flat), recipe=recipe, parameters=flat)
                seen.setdefault(candidate.key, candidate)
    if not seen:
        raise UserError("The sweep has no candidates. Add at least one grid entry with a merge_method.")
    return list(seen.values())


def _config_path(spec: SweepSpec) -> Path:
    path = Path(str(spec.config))
    if not path.is_absolute() and not path.exists():
        path = spec.base_dir / path
    return path


__all__ = ["Candidate", "expand_candidates"]
