"""`mergeval sweep SWEEP.yml`: many merges of the same parents, evaluated, ranked honestly, reported.

A sweep file is a mergekit config plus the grid to try:

```yaml
name: arithmetic-and-capitals
config:                          # a mergekit config inline (or a path to one); paths relative to this file
  models: [{model: ./parent-a}, {model: ./parent-b}]
  base_model: ./base
  dtype: float32
grid:                            # a grid, or a list of grids; each is the product of its lists
  - merge_method: linear
    weight: [{parent-a: 0.7, parent-b: 0.3}, {parent-a: 0.5, parent-b: 0.5}]   # per model: a mapping
  - merge_method: slerp
    base_model: parent-a         # models are named by folder name (or path as written)
    t: [0.3, 0.5, 0.7]
  - merge_method: [ties, dare_ties]
    weight: 1.0                  # one value for every model
    density: [0.3, 0.6]
    seed: [0, 1]                 # only methods that drop weights at random depend on it
checks: {suite: smoke, limit: 50}      # what `mergeval eval` takes: suite, tasks, include_paths, limit, ...
objective: mean                  # mean of all benchmarks, one benchmark, or a list of benchmarks
selection: {fraction: 0.5, seed: 0}    # items that pick the winner; the rest report it
keep: best                       # none | best | all: which candidates' weights stay on disk
in_memory: auto                  # merge small models in memory (no weights written); true | false
```

A grid key is a mergekit config field (`merge_method`, `base_model`, `dtype`, ...), `seed`, or a parameter of
the merge method (mergekit's method specs say which: parameters a method does not take are dropped for it, so
`linear` x `density: [0.3, 0.6]` is one candidate, not two). Candidates are keyed by their recipe (config with
the parents' fingerprints, seed, mergekit version; see `recipe.py`): a key already merged and evaluated in the
store is skipped, which makes an interrupted sweep resumable and a widened grid cheap.

For each new candidate: merge (in memory, or to disk and deleted afterwards unless kept), record provenance,
evaluate the missing items (parents and base are evaluated once, up front), then rank on the selection items
and report on the others (see `selection.py`).
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import itertools
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mergeval.errors import UserError
from mergeval.merge import selection as sel
from mergeval.merge._checks import check_recipe
from mergeval.merge.inmemory import AUTO_IN_MEMORY_MAX_BYTES, can_merge_in_memory, merge_in_memory
from mergeval.merge.recipe import (
    MergeRecipe,
    _resolve_path,
    is_seeded,
    load_recipe,
    merge_method,
    mergekit_version,
    method_parameters,
    read_config,
)
from mergeval.merge.run import MergeResult, merge, record
from mergeval.models import ModelRef
from mergeval.store import DEFAULT_STORE, Store

log = logging.getLogger("mergeval.merge")
CANDIDATE_NAMESPACE = "merge-candidate"  # store cache: recipe key -> {fingerprint, label}


# -- the sweep file ------------------------------------------------------------------------------------------


class SweepChecks(BaseModel):
    """What every model is evaluated on: the arguments of `mergeval.evaluate`."""

    model_config = ConfigDict(extra="forbid")

    suite: str = "smoke"
    tasks: list[str] | None = None
    include_paths: list[str] = Field(default_factory=list)
    limit: int | float | None = None
    data_dir: str | None = None
    backend: str | None = None
    batch_size: int = 8
    device: str | None = None


class SelectionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fraction: float = 0.5
    seed: int = 0


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    config: dict[str, Any] | str
    grid: list[dict[str, Any]] = Field(default_factory=lambda: [{}])
    checks: SweepChecks = Field(default_factory=SweepChecks)
    objective: str | list[str] = "mean"
    selection: SelectionSpec = Field(default_factory=SelectionSpec)
    alpha: float = 0.05
    keep: Literal["none", "best", "all"] = "best"
    out_dir: str | None = None
    in_memory: Literal["auto"] | bool = "auto"
    seed: int = 0  # the seed of candidates whose grid gives none
    source: Path | None = None

    @field_validator("grid", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    @property
    def display_name(self) -> str:
        return self.name or (self.source.stem if self.source else "sweep")


def load_sweep(source: str | Path | dict[str, Any]) -> SweepSpec:
    """A sweep spec from a YAML file (or a dict), validated, with clear errors."""
    if isinstance(source, dict):
        data, path = dict(source), None
    else:
        path = Path(source)
        if not path.is_file():
            raise UserError(
                f"Sweep file {path} does not exist. Pass the path of a sweep YAML (see docs/merge-lab.md)."
            )
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise UserError(f"{path} is not valid YAML ({exc}).") from exc
        if not isinstance(data, dict):
            raise UserError(f"{path} must be a mapping with `config:` and `grid:` (see docs/merge-lab.md).")
    try:
        return SweepSpec(**data, source=path.resolve() if path else None)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise UserError(
            f"{path or 'The sweep spec'} is not valid ({problems}). See docs/merge-lab.md."
        ) from exc


# -- candidates --------------------------------------------------------------------------------------------


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
    from mergekit.config import MergeConfiguration

    return set(MergeConfiguration.model_fields)


def _model_index(config: dict[str, Any], name: str, base_dir: Path) -> int | None:
    """Index in `config["models"]` of the model called `name` (folder name, path as written or resolved)."""
    resolved = _resolve_path(name, base_dir)
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
    return _resolve_path(name, base_dir)


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


# -- results -----------------------------------------------------------------------------------------------


@dataclass
class ModelScores:
    """One model of the sweep (a candidate or a parent) with its scores on each split."""

    name: str
    role: str  # "candidate" | "parent" | "base"
    fingerprint: str
    method: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    status: str = "new"  # candidates: "new" (merged now) | "cached" (from the store) | "failed"
    error: str | None = None
    seconds: float | None = None
    kept_at: str | None = None
    selection: dict[str, float] = field(default_factory=dict)  # benchmark -> score (0-100)
    report: dict[str, float] = field(default_factory=dict)
    objective_selection: float | None = None
    objective_report: float | None = None
    on_pareto_front: bool = False
    provenance: str | None = None


@dataclass
class Comparison:
    """Paired comparison on the report items: `a` minus `b` on the objective, and per benchmark."""

    a: str
    b: str
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    test: str
    n_items: int
    per_benchmark: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class SweepResult:
    name: str
    benchmarks: list[str]
    objective: list[str]
    candidates: list[ModelScores]
    parents: list[ModelScores]
    winner: str | None
    runner_up: str | None
    best_parent: str | None
    vs_runner_up: Comparison | None
    vs_best_parent: Comparison | None
    selection_fraction: float
    selection_items: int
    report_items: int
    warnings: list[str] = field(default_factory=list)
    out_dir: str | None = None
    report_path: str | None = None
    best_path: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def model(self, name: str) -> ModelScores:
        for m in [*self.candidates, *self.parents]:
            if name in (m.name, m.fingerprint, m.key):
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- running -----------------------------------------------------------------------------------------------


@dataclass
class _TaskInfo:
    benchmark: str
    task: str
    check_hash: str
    metric_key: str
    targets: list[str]


def _target_count(n_docs: int, limit: float | None) -> int:
    """How many documents a limit covers (lm-eval's first-n semantics, as `PreparedTask.target_ids`)."""
    if limit is None:
        return n_docs
    n = math.ceil(n_docs * limit) if limit < 1.0 else int(limit)
    return min(n, n_docs)


def _task_infos(result) -> list[_TaskInfo]:
    """Check hashes, metric keys and target item ids of every task of an EvalResult."""
    infos = []
    metric_keys = {b["name"]: b["metric_key"] for b in result.benchmarks}
    for bench in result.benchmarks:
        for task in result.models[0].scores[bench["name"]].tasks:
            prov = result.provenance["tasks"][task]
            n = _target_count(prov["n_docs"], result.limit)
            infos.append(
                _TaskInfo(
                    bench["name"], task, prov["check"], metric_keys[bench["name"]], [str(i) for i in range(n)]
                )
            )
    return infos


def _item_scores(store: Store, fingerprint: str, infos: list[_TaskInfo]) -> dict[sel.ItemKey, float]:
    scores: dict[sel.ItemKey, float] = {}
    for info in infos:
        targets = set(info.targets)
        for item in store.items(fingerprint, info.check_hash):
            if item.item_id in targets and info.metric_key in item.metrics:
                scores[(info.benchmark, info.task, item.item_id)] = float(item.metrics[info.metric_key])
    return scores


def _complete(store: Store, fingerprint: str, infos: list[_TaskInfo]) -> bool:
    return all(set(i.targets) <= store.item_ids(fingerprint, i.check_hash) for i in infos)


def _run_as(ref: ModelRef, checks: SweepChecks) -> ModelRef:
    """The model reference with the sweep's batch size and device (evaluate() takes ModelRefs as they are)."""
    return dataclasses.replace(ref, batch_size=checks.batch_size, device=checks.device or ref.device)


def _weights_bytes(recipe: MergeRecipe) -> int:
    total = 0
    for ref in recipe.parents.values():
        assert ref.path is not None
        total = max(total, sum(p.stat().st_size for p in ref.path.glob("*.safetensors")))
    return total


def _use_memory(spec_in_memory: Literal["auto"] | bool, recipe: MergeRecipe) -> bool:
    reason = can_merge_in_memory(recipe)
    if spec_in_memory is True and reason:
        log.info("merging %s to disk: %s", recipe.key[:8], reason)
    if reason:
        return False
    if spec_in_memory == "auto":
        return _weights_bytes(recipe) <= AUTO_IN_MEMORY_MAX_BYTES
    return bool(spec_in_memory)


def _objective_benchmarks(spec: SweepSpec, benchmarks: list[str]) -> list[str]:
    wanted = [spec.objective] if isinstance(spec.objective, str) else list(spec.objective)
    if wanted == ["mean"]:
        return benchmarks
    unknown = [b for b in wanted if b not in benchmarks]
    if unknown:
        raise UserError(
            f"objective {', '.join(unknown)} is not a benchmark of the checks "
            f"({', '.join(benchmarks)}). Use one of them, a list of them, or `mean`."
        )
    return wanted


def run_sweep(
    spec: str | Path | dict[str, Any] | SweepSpec,
    *,
    store: str | Path | Store = DEFAULT_STORE,
    out_dir: str | Path | None = None,
    keep: Literal["none", "best", "all"] | None = None,
    in_memory: Literal["auto"] | bool | None = None,
    report: bool = True,
    on_event: Callable[[str], None] | None = None,
    progress=None,
) -> SweepResult:
    """Run (or resume) a sweep; returns the ranked results and writes `sweep.json` + `sweep-report.html` into
    the sweep's folder (default `mergeval-results/sweeps/<name>`)."""
    from mergeval.evaluation import evaluate

    spec = spec if isinstance(spec, SweepSpec) else load_sweep(spec)
    keep = keep or spec.keep
    in_memory = spec.in_memory if in_memory is None else in_memory
    say = on_event or (lambda message: log.info(message))
    folder = Path(out_dir or spec.out_dir or Path("mergeval-results") / "sweeps" / spec.display_name)
    if not folder.is_absolute() and spec.source is not None and out_dir is None and spec.out_dir:
        folder = spec.base_dir / folder
    split = sel.SplitPlan(spec.selection.fraction, spec.selection.seed)
    candidates = expand_candidates(spec)  # every candidate is checked before anything is merged or written
    folder.mkdir(parents=True, exist_ok=True)
    own = not isinstance(store, Store)
    db = Store(store) if own else store
    checks = spec.checks
    include_paths = [str(_resolve_path(p, spec.base_dir)) for p in checks.include_paths]
    suite = checks.suite
    if suite.endswith((".yaml", ".yml")):
        suite = str(_resolve_path(suite, spec.base_dir))
    eval_kwargs: dict[str, Any] = {
        "suite": suite,
        "tasks": checks.tasks,
        "limit": checks.limit,
        "store": db,
        "include_paths": include_paths,
        "data_dir": checks.data_dir,
        "backend": checks.backend,
        "batch_size": checks.batch_size,
        "device": checks.device,
        "progress": progress,
    }
    try:
        # Parents and base first: evaluated once, whatever the number of candidates.
        parent_refs: dict[str, tuple[ModelRef, str]] = {}
        for cand in candidates:
            models = {e.get("model") for e in cand.recipe.config.get("models") or []}
            for reference, ref in cand.recipe.parents.items():
                role = "parent" if reference in models else "base"
                if ref.fingerprint not in parent_refs or role == "parent":
                    parent_refs[ref.fingerprint] = (ref, role)
        say(f"evaluating {len(parent_refs)} parent model(s) (once; later runs read them from the store)")
        parent_result = evaluate([_run_as(r, checks) for r, _ in parent_refs.values()], **eval_kwargs)
        infos = _task_infos(parent_result)
        benchmarks = [b["name"] for b in parent_result.benchmarks]
        objective = _objective_benchmarks(spec, benchmarks)

        rows: list[ModelScores] = []
        for index, cand in enumerate(candidates, start=1):
            prefix = f"[{index}/{len(candidates)}] {cand.label}"
            row = ModelScores(
                name=cand.label,
                role="candidate",
                fingerprint="",
                method=cand.method,
                parameters=cand.parameters,
                key=cand.key,
            )
            known = db.cache_get(CANDIDATE_NAMESPACE, cand.key)
            if known and _complete(db, known["fingerprint"], infos):
                row.fingerprint = known["fingerprint"]
                row.status = "cached"
                row.kept_at = (
                    known.get("kept_at") if known.get("kept_at") and Path(known["kept_at"]).exists() else None
                )
                say(f"{prefix}: already merged and evaluated (store)")
                rows.append(row)
                continue
            started = time.perf_counter()
            try:
                merged = _merge_candidate(cand, folder, in_memory)
                row.fingerprint = merged.fingerprint
                row.kept_at = str(merged.output_path) if merged.output_path else None
                db.cache_put(
                    CANDIDATE_NAMESPACE,
                    cand.key,
                    {"fingerprint": merged.fingerprint, "label": cand.label, "kept_at": row.kept_at},
                )
                record(db, merged.model, cand.recipe, merged.output_path)
                say(
                    f"{prefix}: merged {'in memory' if merged.output_path is None else 'to disk'} "
                    f"({merged.seconds:.1f} s), evaluating"
                )
                evaluate(_run_as(merged.model, checks), **eval_kwargs)
            except UserError as exc:
                row.status, row.error = "failed", str(exc)
                say(f"{prefix}: failed: {exc}")
                rows.append(row)
                continue
            if merged.output_path is not None and keep != "all":
                shutil.rmtree(merged.output_path, ignore_errors=True)
                row.kept_at = None
                db.cache_put(
                    CANDIDATE_NAMESPACE,
                    cand.key,
                    {"fingerprint": merged.fingerprint, "label": cand.label, "kept_at": None},
                )
            del merged  # an in-memory model: free it before the next candidate is merged
            gc.collect()
            row.seconds = time.perf_counter() - started
            say(f"{prefix}: done ({row.seconds:.1f} s)")
            rows.append(row)

        parents = [
            ModelScores(name=ref.name, role=role, fingerprint=fp) for fp, (ref, role) in parent_refs.items()
        ]
        result = _rank(db, spec, split, infos, benchmarks, objective, rows, parents, candidates)
        result.out_dir = str(folder)
        result.provenance = {
            "suite": parent_result.suite,
            "label": parent_result.label,
            "limit": checks.limit,
            "lm_eval_version": parent_result.provenance.get("lm_eval_version"),
            "mergekit_version": mergekit_version(),
            "store": str(db.path),
            "sweep_file": str(spec.source) if spec.source else None,
        }
        if keep in ("best", "all") and result.winner:
            result.best_path = _keep_best(db, result, candidates, folder, say)
        for row in [*result.candidates, *result.parents]:
            from mergeval.merge.provenance import merge_provenance

            prov = merge_provenance(db, row.fingerprint) if row.fingerprint else None
            row.provenance = prov.summary() if prov else None
        (folder / "sweep.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
        if report:
            from mergeval.merge.report import write_sweep_report

            result.report_path = str(write_sweep_report(result, folder / "sweep-report.html"))
            (folder / "sweep.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
        return result
    finally:
        if own:
            db.close()


def _merge_candidate(cand: Candidate, folder: Path, in_memory: Literal["auto"] | bool) -> MergeResult:
    if _use_memory(in_memory, cand.recipe):
        return merge_in_memory(cand.recipe, name=cand.label)
    return merge(
        cand.recipe, folder / "candidates" / cand.key[:16], store=None, name=cand.label, overwrite=True
    )


def _keep_best(
    db: Store, result: SweepResult, candidates: list[Candidate], folder: Path, say: Callable[[str], None]
) -> str | None:
    """Write the winner's weights to `<folder>/best` (re-merged from its recipe when they were not kept)."""
    winner = result.model(result.winner) if result.winner else None
    if winner is None or winner.key is None:
        return None
    target = folder / "best"
    marker = target / "mergeval-merge.json"
    if marker.exists() and json.loads(marker.read_text()).get("merge_key") == winner.key:
        return str(target)
    cand = next(c for c in candidates if c.key == winner.key)
    say(f"writing the winner ({cand.label}) to {target}")
    merged = merge(cand.recipe, target, store=db, name=f"{result.name}-best", overwrite=True)
    return str(merged.output_path)


def _rank(
    db: Store,
    spec: SweepSpec,
    split: sel.SplitPlan,
    infos: list[_TaskInfo],
    benchmarks: list[str],
    objective: list[str],
    rows: list[ModelScores],
    parents: list[ModelScores],
    candidates: list[Candidate],
) -> SweepResult:
    items: dict[str, dict[sel.ItemKey, float]] = {}
    for row in [*rows, *parents]:
        if row.status == "failed":
            continue
        scores = _item_scores(db, row.fingerprint, infos)
        items[row.fingerprint] = scores
        selection_items = split.subset(scores, "selection")
        report_items = split.subset(scores, "report")
        row.selection = sel.benchmark_scores(selection_items)
        row.report = sel.benchmark_scores(report_items)
        row.objective_selection = sel.objective_value(selection_items, objective)
        row.objective_report = sel.objective_value(report_items, objective)

    scored = [r for r in [*rows, *parents] if r.status != "failed" and len(r.selection) == len(benchmarks)]
    front = sel.pareto_front({r.name: r.selection for r in scored})
    for r in scored:
        r.on_pareto_front = r.name in front

    warnings: list[str] = []
    if split.same_items:
        warnings.append(
            "Selection and reporting use the same items (selection fraction 1.0): the winner's score "
            "is optimistically biased, more so the more candidates there are. Use a fraction below 1."
        )
    ranked = sorted(
        [r for r in rows if sel.finite(r.objective_selection)], key=lambda r: -r.objective_selection
    )
    ranked_parents = sorted(
        [p for p in parents if p.role == "parent" and sel.finite(p.objective_selection)],
        key=lambda r: -r.objective_selection,
    )
    winner = ranked[0] if ranked else None
    runner_up = ranked[1] if len(ranked) > 1 else None
    best_parent = ranked_parents[0] if ranked_parents else None

    def compare(a: ModelScores | None, b: ModelScores | None) -> Comparison | None:
        if a is None or b is None:
            return None
        a_report = split.subset(items[a.fingerprint], "report")
        b_report = split.subset(items[b.fingerprint], "report")
        overall = sel.paired_objective(a_report, b_report, objective, alpha=spec.alpha)
        if overall is None:
            return None
        keep = set(objective)
        per_bench = sel.per_benchmark_comparison(
            {k: v for k, v in a_report.items() if k[0] in keep},
            {k: v for k, v in b_report.items() if k[0] in keep},
            alpha=spec.alpha,
        )
        return Comparison(
            a=a.name,
            b=b.name,
            diff=100 * overall.diff,
            ci_low=100 * overall.ci_low,
            ci_high=100 * overall.ci_high,
            p_value=overall.p_value,
            significant=overall.significant,
            test=overall.test_used,
            n_items=overall.n_paired,
            per_benchmark={
                bench: {
                    "diff": 100 * c.diff,
                    "ci_low": 100 * c.ci_low,
                    "ci_high": 100 * c.ci_high,
                    "p_adjusted": c.p_adjusted,
                    "significant": c.significant,
                }
                for bench, c in per_bench.items()
            },
        )

    if winner is not None:
        n_sel = len(split.subset(items[winner.fingerprint], "selection"))
        n_rep = len(split.subset(items[winner.fingerprint], "report"))
    else:
        n_sel = n_rep = 0
    if winner is not None and n_rep < 30 and not split.same_items:
        warnings.append(
            f"Only {n_rep} items report the winner: differences smaller than a few points cannot be "
            "told apart from noise. Evaluate more items (a larger --limit)."
        )
    failed = [r for r in rows if r.status == "failed"]
    if failed:
        warnings.append(f"{len(failed)} candidate(s) failed to merge; see their errors in the table.")
    return SweepResult(
        name=spec.display_name,
        benchmarks=benchmarks,
        objective=objective,
        candidates=rows,
        parents=parents,
        winner=winner.name if winner else None,
        runner_up=runner_up.name if runner_up else None,
        best_parent=best_parent.name if best_parent else None,
        vs_runner_up=compare(winner, runner_up),
        vs_best_parent=compare(winner, best_parent),
        selection_fraction=split.fraction,
        selection_items=n_sel,
        report_items=n_rep,
        warnings=warnings,
    )
