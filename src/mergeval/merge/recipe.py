"""A merge recipe: a mergekit configuration with its parents resolved, fingerprinted and keyed.

mergekit reads a YAML config (`merge_method`, `models`, `base_model`, `parameters`, `dtype`, ...). mergeval
adds what makes a merge reproducible and comparable: the parents' fingerprints (what each parent *is*,
wherever its folder lives), the random seed (DARE/DELLA drop weights at random) and the mergekit version.
Together they give the recipe's `key`: two recipes with the same key produce the same merged model, so a sweep
that meets a key it has already evaluated skips it.

Relative model paths are resolved like mergekit does (against the current directory); a path that only exists
relative to the config file's folder is resolved against that folder, so a config next to its parents works
from anywhere.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mergeval.core.identity import canonical
from mergeval.errors import UserError
from mergeval.models import ModelRef, resolve

# Sparsification methods that drop weights at random: merges that use them depend on the seed.
_RANDOM_SPARSIFICATION = {"random", "della_magprune", "rank_magnitude_sampling"}
KEY_SCHEME = "mergeval-merge-v1"


def mergekit_version() -> str:
    from importlib.metadata import version

    return version("mergekit")


def merge_method(name: str):
    """mergekit's registered merge method `name`, or a UserError listing the known ones."""
    from mergekit import merge_methods

    known = sorted(m.spec.name for m in merge_methods.registered_methods())
    if name not in known:
        raise UserError(
            f"Unknown merge_method {name!r}. mergekit {mergekit_version()} knows: {', '.join(known)}."
        )
    return merge_methods.get(name)


def method_parameters(name: str) -> dict[str, str]:
    """The parameters a merge method accepts: name -> scope ("shared": one value for the merge; "input" /
    "non_base": one value per model, or one shared value for every model)."""
    return {p.name: p.scope.value for p in merge_method(name).spec.parameters}


def is_seeded(name: str) -> bool:
    """Whether the method's result depends on the random seed (it drops weights at random)."""
    sparsification = getattr(merge_method(name), "sparsification_method", None)
    return sparsification is not None and getattr(sparsification, "value", str(sparsification)) in (
        _RANDOM_SPARSIFICATION
    )


def _model_strings(config: dict[str, Any]) -> list[tuple[list[Any], Any]]:
    """(container, key) of every model reference in a raw config, to read or rewrite in place."""
    spots: list[tuple[Any, Any]] = []
    if isinstance(config.get("base_model"), str):
        spots.append((config, "base_model"))
    for entry in config.get("models") or []:
        if isinstance(entry, dict) and isinstance(entry.get("model"), str):
            spots.append((entry, "model"))
    for slice_ in config.get("slices") or []:
        for source in (slice_ or {}).get("sources") or []:
            if isinstance(source, dict) and isinstance(source.get("model"), str):
                spots.append((source, "model"))
    source = config.get("tokenizer_source")
    if isinstance(source, str) and source not in ("base", "union") and not source.startswith("model:"):
        spots.append((config, "tokenizer_source"))
    return spots


def resolve_path(value: str, config_dir: Path | None) -> str:
    """A model reference with a local path made absolute (hub ids and LoRA suffixes are left alone)."""
    path_part, plus, lora = value.partition("+")
    candidate = Path(path_part).expanduser()
    if candidate.exists():
        return str(candidate.resolve()) + plus + lora
    if config_dir is not None and not candidate.is_absolute() and (config_dir / candidate).exists():
        return str((config_dir / candidate).resolve()) + plus + lora
    return value


def read_yaml_mapping(path: Path, *, missing: str, fix: str, mapping: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping (a mergekit config, a sweep file), or a one-sentence UserError:
    `missing` when there is no such file, `fix` after a YAML error, `mapping` says what it must be."""
    if not path.is_file():
        raise UserError(missing)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML ({exc}).{' ' + fix if fix else ''}") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path} must be {mapping}.")
    return data


def read_config(
    source: str | Path | dict[str, Any], *, base_dir: Path | None = None
) -> tuple[dict[str, Any], Path | None]:
    """A mergekit config as plain data (from a YAML file or a dict), with local model paths made absolute.

    Relative paths that do not exist from the current directory are tried against the YAML file's folder
    (or `base_dir` for a dict)."""
    if isinstance(source, dict):
        raw, origin, config_dir = copy.deepcopy(source), None, base_dir
    else:
        origin = Path(source)
        raw = read_yaml_mapping(origin, missing=f"Merge config {origin} does not exist. Pass the path of a "
                                "mergekit YAML config.", fix="Fix the file and run again.",
                                mapping="a mapping with merge_method and models")
        config_dir = origin.resolve().parent
    for container, key in _model_strings(raw):
        container[key] = resolve_path(container[key], config_dir)
    return raw, origin


@dataclass
class MergeRecipe:
    """A validated mergekit config whose parents are resolved local models, plus the seed it runs with."""

    config: dict[str, Any]  # mergekit config as plain data; local model paths absolute
    parents: dict[str, ModelRef]  # model reference as written in `config` -> resolved parent
    seed: int | None = None
    source: Path | None = None
    notes: list[str] = field(default_factory=list)  # adjustments mergeval made (e.g. ignored parameters)

    @property
    def method(self) -> str:
        return str(self.config.get("merge_method"))

    @property
    def base_model(self) -> str | None:
        return self.config.get("base_model")

    @property
    def parent_fingerprints(self) -> list[str]:
        return list(dict.fromkeys(ref.fingerprint for ref in self.parents.values()))

    def parent_name(self, reference: str) -> str:
        ref = self.parents.get(reference)
        return ref.name if ref else Path(reference).name

    @property
    def parameters(self) -> dict[str, Any]:
        """The merge's parameters in one flat mapping: top-level ones by name, per-model ones as
        `name[parent]` (e.g. `weight[parent-b]`). The seed is not one of them (see `seed`)."""
        flat: dict[str, Any] = dict(self.config.get("parameters") or {})
        for entry in self.config.get("models") or []:
            for name, value in (entry.get("parameters") or {}).items():
                flat[f"{name}[{self.parent_name(entry['model'])}]"] = value
        return flat

    def keyed_config(self) -> dict[str, Any]:
        """The config with every parent path replaced by its fingerprint: what the merge *is*."""
        keyed = copy.deepcopy(self.config)
        for container, key in _model_strings(keyed):
            path_part, plus, lora = container[key].partition("+")
            ref = self.parents.get(container[key]) or self.parents.get(path_part)
            if ref is not None:
                container[key] = "fp:" + ref.fingerprint + plus + lora
        return keyed

    @property
    def key(self) -> str:
        """Hash of (config with parents' fingerprints, seed if the method uses it, mergekit version)."""
        payload = {
            "scheme": KEY_SCHEME,
            "config": self.keyed_config(),
            "seed": self.seed if is_seeded(self.method) else None,
            "mergekit": mergekit_version(),
        }
        # canonical: content only (a value without one raises); same text as before for plain YAML data
        return hashlib.sha256(json.dumps(canonical(payload), sort_keys=True).encode()).hexdigest()[:24]

    def mergekit_config(self):
        """The config as mergekit's `MergeConfiguration`, or a UserError with pydantic's complaint."""
        from mergekit.config import MergeConfiguration
        from pydantic import ValidationError

        try:
            return MergeConfiguration.model_validate(self.config)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
                for err in exc.errors()[:5]
            )
            raise UserError(
                f"The merge config is not valid for mergekit ({problems}). Fix it and run again."
            ) from exc

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.config, sort_keys=False)


def load_recipe(
    source: str | Path | dict[str, Any],
    *,
    seed: int | None = 0,
    base_dir: Path | None = None,
    parents: dict[str, ModelRef] | None = None,
) -> MergeRecipe:
    """Read a mergekit config (YAML path or dict), validate it with mergekit, resolve and fingerprint parents.

    `parents` is a cache of already resolved references (a sweep resolves each parent once)."""
    raw, origin = read_config(source, base_dir=base_dir)
    if "merge_method" not in raw:
        raise UserError(
            f"{origin or 'The merge config'} has no merge_method. Add e.g. `merge_method: linear`."
        )
    recipe = MergeRecipe(config=raw, parents={}, seed=seed, source=origin)
    merge_method(recipe.method)  # unknown method: a clear error before anything else
    recipe.mergekit_config()
    references = [container[key] for container, key in _model_strings(raw)]
    if not references:
        raise UserError(
            f"{origin or 'The merge config'} lists no models. Add `models:` with at least two entries."
        )
    for reference in dict.fromkeys(references):
        path_part, _, lora = reference.partition("+")
        if lora:
            raise UserError(
                f"{reference!r} applies a LoRA adapter inside the merge, and mergeval cannot fingerprint "
                "that parent. Merge the adapter into its base first (peft's merge_and_unload), then "
                "reference the merged folder."
            )
        if parents is not None and reference in parents:
            recipe.parents[reference] = parents[reference]
            continue
        recipe.parents[reference] = resolve(path_part, name=_display_name(path_part))
        if parents is not None:
            parents[reference] = recipe.parents[reference]
    return recipe


def _display_name(reference: str) -> str:
    path = Path(reference)
    return path.name if path.is_absolute() else reference
