"""`mergeval sweep SWEEP.yml`: many merges of the same parents, evaluated, ranked honestly, reported.

The sweep file (see `spec.py`) is a mergekit config, a grid (see `grid.py`) and the checks to rank on: the
same check entries as a plan's, so a sweep can rank on an lm-eval suite, MT-Bench, HumanEval, perplexity or a
plugin's check. Every model is evaluated through the runner (only items the store lacks are computed).

Candidates are keyed by their recipe: a key already merged and evaluated in the store is skipped, which makes
an interrupted sweep resumable and a widened grid cheap. For each new candidate: merge (in memory, or to disk
and deleted afterwards unless kept), record provenance, evaluate the missing items (parents and base are
evaluated once, up front), then rank on the selection items and report on the others (`ranking.py`,
`selection.py`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from mergeval.core.context import CheckContext, PlanModel, RunEnv
from mergeval.core.executors import resolve_executor
from mergeval.core.progress import NullProgress, Progress
from mergeval.core.registry import get_check
from mergeval.core.results import CheckData, ScoreData
from mergeval.core.runner import Entry, run_entries
from mergeval.dtypes import resolved_dtype
from mergeval.errors import UserError
from mergeval.merge import selection as sel
from mergeval.merge.grid import CANDIDATE_NAMESPACE, Candidate, expand_candidates
from mergeval.merge.inmemory import (
    AUTO_IN_MEMORY_MAX_BYTES,
    can_merge_in_memory,
    merge_in_memory,
    planned_in_memory,
)
from mergeval.merge.provenance import merge_provenance
from mergeval.merge.racing import race_candidates
from mergeval.merge.ranking import Benchmark, ItemScores, ModelScores, Objective, Ranking, SweepResult, rank
from mergeval.merge.recipe import MergeRecipe, mergekit_version
from mergeval.merge.report import write_sweep_report
from mergeval.merge.run import MergeResult, merge, record
from mergeval.merge.spec import SweepSpec, load_sweep
from mergeval.models import ModelRef
from mergeval.plan import ModelSpec, Plan
from mergeval.store import DEFAULT_STORE, RESULTS_DIR, Store

log = logging.getLogger("mergeval.merge")


# -- the sweep's checks, through the runner -----------------------------------------------------------------------


def _item_key(benchmark: str, score: ScoreData, key: str) -> sel.ItemKey:
    """(benchmark, task, item id): the task is the item's stratum (a benchmark of several lm-eval tasks keys
    its items `task/id`), the benchmark's one task, or the benchmark itself."""
    task = (score.strata or {}).get(key)
    if task is not None:
        return benchmark, task, key.removeprefix(f"{task}/")
    tasks = list(score.tasks)
    return benchmark, tasks[0] if len(tasks) == 1 else benchmark, key


class SweepChecks:
    """The sweep's check entries as a plan of its parents (validated before anything is merged or written),
    run for any model through the runner and read back from the store as item scores."""

    def __init__(self, spec: SweepSpec, parents: Sequence[tuple[ModelRef, str]], store: Store,
                 progress: Progress | None = None, executor: Any = None):
        self.plan = sweep_plan(spec, parents, store)
        self.executor = executor  # None: this process
        self.entries = [Entry(get_check(config.type), config) for config in self.plan.checks]
        self.parents = [PlanModel(model_spec, ref) for model_spec, (ref, _) in zip(self.plan.models, parents)]
        self.store = store
        s = self.plan.settings
        self.env = RunEnv(base_dir=str(spec.base_dir), backend=s.backend, device=s.device, batch_size=s.batch_size,
                          data_dir=s.data_dir, seed=s.seed)
        self.progress = progress or NullProgress()
        self.objective = Objective.of(spec.objective, self.planned_benchmarks())

    def planned_benchmarks(self) -> list[Benchmark]:
        """The benchmarks the checks will produce (from their MetricSpecs: no model, no store)."""
        return [Benchmark(m.name, m.scale, m.higher_is_better) for e in self.entries
                for m in e.check.metrics(e.config, self.plan) if m.kind == "benchmark"]

    def context(self, models: Sequence[PlanModel]) -> CheckContext:
        return CheckContext(plan=self.plan, store=self.store, models=list(models), env=self.env,
                            progress=self.progress)

    def evaluate(self, models: Sequence[PlanModel]) -> None:
        run_entries(self.entries, self.context(models), self.executor)

    def collect(self, models: Sequence[PlanModel]) -> list[CheckData]:
        ctx = self.context(models)
        return [e.check.collect(e.config, ctx) for e in self.entries]

    def complete(self, model: PlanModel) -> bool:
        """Whether the store holds every item every check needs for `model` (nothing is loaded)."""
        for data in self.collect([model]):
            if any(m.model == model.name for m in data.missing):
                return False
            if not all(s.complete for s in data.scores.get(model.name, {}).values()):
                return False
        return True

    def item_scores(self, models: Sequence[PlanModel]) -> tuple[list[Benchmark], dict[str, ItemScores]]:
        """The benchmarks measured and each model's item scores (by fingerprint)."""
        benchmarks: dict[str, Benchmark] = {}
        scores: dict[str, ItemScores] = {m.fingerprint: {} for m in models}
        by_name = {m.name: m.fingerprint for m in models}
        for data in self.collect(models):
            for spec in data.benchmarks:
                benchmarks.setdefault(spec.name, Benchmark(spec.name, spec.scale, spec.higher_is_better))
            for model, per_bench in data.scores.items():
                for bench, score in per_bench.items():
                    for key, value in score.items.items():
                        scores[by_name[model]][_item_key(bench, score, key)] = float(value)
        return list(benchmarks.values()), scores


def sweep_plan(spec: SweepSpec, parents: Sequence[tuple[ModelRef, str]], store: Store) -> Plan:
    """The sweep's checks and settings as a plan of its parents (candidates join it as they are merged)."""
    data = {"models": [{"name": ref.name, "path": str(ref.path or ref.reference), "role": role}
                       for ref, role in parents],
            "checks": spec.checks, "settings": spec.settings.model_dump(exclude_none=True), "store": str(store.path)}
    try:
        plan = Plan.model_validate(data, context={"base_dir": str(spec.base_dir)})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {str(e['msg']).removeprefix('Value error, ')}"
                             for e in exc.errors()[:5])
        raise UserError(f"{spec.source or 'The sweep spec'} is not valid ({problems}). See docs/merge-lab.md.") from exc
    plan.source = spec.source
    return plan


def candidate_model(name: str, ref: ModelRef) -> PlanModel:
    return PlanModel(ModelSpec(name=name, path=ref.reference, role="candidate"), ref)


# -- one sweep run ---------------------------------------------------------------------------------------------


def _parents(candidates: Sequence[Candidate]) -> list[tuple[ModelRef, str]]:
    """Every model the candidates are merged from, once: (ref, "parent" | "base")."""
    found: dict[str, tuple[ModelRef, str]] = {}
    for cand in candidates:
        models = {e.get("model") for e in cand.recipe.config.get("models") or []}
        for reference, ref in cand.recipe.parents.items():
            role = "parent" if reference in models else "base"
            if ref.fingerprint not in found or role == "parent":
                found[ref.fingerprint] = (ref, role)
    return list(found.values())


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


@dataclass
class SweepRun:
    """A sweep being run: its spec and options, the store, the checks, and where things go."""

    spec: SweepSpec
    db: Store
    checks: SweepChecks
    folder: Path
    keep: Literal["none", "best", "all"]
    in_memory: Literal["auto"] | bool
    say: Callable[[str], None]
    # a remote executor (Ray): candidates are merged here (identity, provenance), queued, and evaluated all at
    # once on the workers, which merge in-memory candidates again from their recipe
    remote: bool = False
    queued: list[tuple[PlanModel, Path | None, dict[str, Any], str]] = field(default_factory=list)

    def cached(self, cand: Candidate, row: ModelScores) -> PlanModel | None:
        """The candidate from the store, when it was merged and fully evaluated before."""
        known = self.db.cache_get(CANDIDATE_NAMESPACE, cand.key)
        # An entry without a dtype was written before check identities had resolved dtypes: merged again
        # (evaluating it then adopts what the store holds under the old identity, so nothing is recomputed).
        if not known or not known.get("dtype"):
            return None
        ref = ModelRef(reference=f"merge:{cand.key}", kind="in-memory", name=cand.label,
                       fingerprint=known["fingerprint"], dtype=known["dtype"])
        model = PlanModel(ModelSpec(name=cand.label, path=ref.reference, role="candidate"), ref, from_store=True)
        if not self.checks.complete(model):
            return None
        row.fingerprint, row.status = known["fingerprint"], "cached"
        kept = known.get("kept_at")
        row.kept_at = kept if kept and Path(kept).exists() else None
        return model

    def merge(self, cand: Candidate) -> MergeResult:
        if _use_memory(self.in_memory, cand.recipe):
            # for the workers, a candidate whose identity is known up front is not merged here at all
            planned = planned_in_memory(cand.recipe, name=cand.label) if self.remote else None
            return planned or merge_in_memory(cand.recipe, name=cand.label)
        return merge(cand.recipe, self.folder / "candidates" / cand.key[:16], store=None, name=cand.label,
                     overwrite=True)

    def new(self, cand: Candidate, row: ModelScores, prefix: str) -> PlanModel:
        """Merge the candidate, record it, evaluate it; its weights go unless kept."""
        merged = self.merge(cand)
        row.fingerprint = merged.fingerprint
        row.kept_at = str(merged.output_path) if merged.output_path else None
        entry = {"fingerprint": merged.fingerprint, "label": cand.label, "dtype": resolved_dtype(merged.model)}
        self.db.cache_put(CANDIDATE_NAMESPACE, cand.key, {**entry, "kept_at": row.kept_at})
        record(self.db, merged.model, cand.recipe, merged.output_path)
        where = "in memory" if merged.output_path is None else "to disk"
        if self.remote:
            planned = merged.model.model_object is None and merged.model.recipe is not None
            merged.model.model_object = None  # the workers merge it (again) from merged.model.recipe
            self.queued.append((candidate_model(cand.label, merged.model), merged.output_path, entry, cand.key))
            done = "to be merged in memory on the workers" if planned else \
                f"merged {where} ({merged.seconds:.1f} s)"
            self.say(f"{prefix}: {done}, queued for the workers")
        else:
            self.say(f"{prefix}: merged {where} ({merged.seconds:.1f} s), evaluating")
            self.checks.evaluate([candidate_model(cand.label, merged.model)])
            if merged.output_path is not None and self.keep != "all":
                self.forget_weights(merged.output_path, entry, cand.key)
                row.kept_at = None
        stored = ModelRef(reference=merged.model.reference, kind=merged.model.kind, name=cand.label,
                          fingerprint=merged.fingerprint, dtype=entry["dtype"])
        del merged  # an in-memory model: free it before the next candidate is merged
        gc.collect()
        return PlanModel(ModelSpec(name=cand.label, path=stored.reference, role="candidate"), stored,
                         from_store=True)

    def forget_weights(self, folder: Path, entry: dict[str, Any], key: str) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        self.db.cache_put(CANDIDATE_NAMESPACE, key, {**entry, "kept_at": None})

    def evaluate_queued(self, rows: Sequence[ModelScores]) -> None:
        """Remote executor: every queued candidate in one run (the workers share them out), then the weights
        written to disk go unless kept."""
        if not self.queued:
            return
        self.say(f"evaluating {len(self.queued)} candidate(s) on the workers")
        self.checks.evaluate([model for model, *_ in self.queued])
        if self.keep != "all":
            by_key = {row.key: row for row in rows}
            for _, folder, entry, key in self.queued:
                if folder is not None:
                    self.forget_weights(folder, entry, key)
                    by_key[key].kept_at = None
        self.queued.clear()

    def candidate(self, index: int, total: int, cand: Candidate) -> tuple[ModelScores, PlanModel | None]:
        prefix = f"[{index}/{total}] {cand.label}"
        row = ModelScores(name=cand.label, role="candidate", fingerprint="", method=cand.method,
                          parameters=cand.parameters, key=cand.key)
        model = self.cached(cand, row)
        if model is not None:
            self.say(f"{prefix}: already merged and evaluated (store)")
            return row, model
        started = time.perf_counter()
        try:
            model = self.new(cand, row, prefix)
        except UserError as exc:
            row.status, row.error = "failed", str(exc)
            self.say(f"{prefix}: failed: {exc}")
            return row, None
        row.seconds = time.perf_counter() - started
        self.say(f"{prefix}: done ({row.seconds:.1f} s)")
        return row, model

    def keep_best(self, result: SweepResult, candidates: Sequence[Candidate]) -> str | None:
        """Write the winner's weights to `<folder>/best` (re-merged from its recipe when they were not kept)."""
        winner = result.model(result.winner) if result.winner else None
        if winner is None or winner.key is None:
            return None
        target = self.folder / "best"
        marker = target / "mergeval-merge.json"
        if marker.exists() and json.loads(marker.read_text()).get("merge_key") == winner.key:
            return str(target)
        cand = next(c for c in candidates if c.key == winner.key)
        self.say(f"writing the winner ({cand.label}) to {target}")
        merged = merge(cand.recipe, target, store=self.db, name=f"{result.name}-best", overwrite=True)
        return str(merged.output_path)

    def provenance(self) -> dict[str, Any]:
        checks = [c.model_dump(mode="json", exclude_none=True) for c in self.checks.plan.checks]
        return {"label": "checks: " + ", ".join(c.label for c in self.checks.plan.checks),
                "checks": json.dumps(checks, sort_keys=True), "mergekit_version": mergekit_version(),
                "store": str(self.db.path), "sweep_file": str(self.spec.source) if self.spec.source else None}


def _folder(spec: SweepSpec, out_dir: str | Path | None) -> Path:
    if out_dir is not None:
        return Path(out_dir)
    if spec.out_dir:
        folder = Path(spec.out_dir)
        return folder if folder.is_absolute() or spec.source is None else spec.base_dir / folder
    return RESULTS_DIR / "sweeps" / spec.display_name


@contextlib.contextmanager
def _opened(store: str | Path | Store) -> Iterator[Store]:
    if isinstance(store, Store):
        yield store
        return
    with Store(store) as db:
        yield db


def run_sweep(
    spec: str | Path | dict[str, Any] | SweepSpec,
    *,
    store: str | Path | Store = DEFAULT_STORE,
    out_dir: str | Path | None = None,
    keep: Literal["none", "best", "all"] | None = None,
    in_memory: Literal["auto"] | bool | None = None,
    report: bool = True,
    on_event: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    executor: Any = None,
    adaptive: bool = False,
) -> SweepResult:
    """Run (or resume) a sweep; returns the ranked results and writes `sweep.json` + `sweep-report.html` into
    the sweep's folder (default `mergeval-results/sweeps/<name>`). `executor`: "local" | "ray" or an executor
    object (default: the sweep's `settings.executor`). `adaptive`: race the candidates on the selection items
    and evaluate only the winner in full (`racing.py`)."""
    spec = spec if isinstance(spec, SweepSpec) else load_sweep(spec)
    executor = resolve_executor(executor, settings=spec.settings)
    candidates = expand_candidates(spec)  # every candidate is checked before anything is merged or written
    parents = _parents(candidates)
    with _opened(store) as db:
        checks = SweepChecks(spec, parents, db, progress, executor)  # and every check entry and the objective
        run = SweepRun(spec, db, checks, _folder(spec, out_dir), keep or spec.keep,
                       spec.in_memory if in_memory is None else in_memory,
                       on_event or (lambda message: log.info(message)), remote=executor.name != "local")
        run.folder.mkdir(parents=True, exist_ok=True)
        run.say(f"evaluating {len(parents)} parent model(s) (once; later runs read them from the store)")
        checks.evaluate(checks.parents)
        racing, winner = None, None
        if adaptive:
            outcomes, winner, racing = race_candidates(run, candidates)
        else:
            outcomes = [run.candidate(i, len(candidates), c) for i, c in enumerate(candidates, start=1)]
        run.evaluate_queued([row for row, _ in outcomes])
        result = _ranked(run, outcomes, parents, winner)
        result.racing = racing
        _finish(run, result, candidates, report=report)
    return result


def _ranked(run: SweepRun, outcomes: list[tuple[ModelScores, PlanModel | None]],
            parents: list[tuple[ModelRef, str]], winner: str | None = None) -> SweepResult:
    rows = [row for row, _ in outcomes]
    models = [*run.checks.parents, *(m for _, m in outcomes if m is not None)]
    benchmarks, scores = run.checks.item_scores(models)
    spec = run.spec
    ranking = Ranking(sel.SplitPlan(spec.selection.fraction, spec.selection.seed), benchmarks,
                      Objective.of(spec.objective, benchmarks), alpha=spec.alpha)
    parent_rows = [ModelScores(name=ref.name, role=role, fingerprint=ref.fingerprint) for ref, role in parents]
    return rank(spec.display_name, ranking, rows, parent_rows, scores, winner)


def _finish(run: SweepRun, result: SweepResult, candidates: Sequence[Candidate], *, report: bool) -> None:
    result.out_dir = str(run.folder)
    result.provenance = run.provenance()
    if run.keep in ("best", "all") and result.winner:
        result.best_path = run.keep_best(result, candidates)
    for row in [*result.candidates, *result.parents]:
        prov = merge_provenance(run.db, row.fingerprint) if row.fingerprint else None
        row.provenance = prov.summary() if prov else None
    if report:
        result.report_path = str(run.folder / "sweep-report.html")
        write_sweep_report(result, result.report_path)
    (run.folder / "sweep.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))


__all__ = ["CANDIDATE_NAMESPACE", "SweepChecks", "run_sweep"]
