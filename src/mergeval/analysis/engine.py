"""Plan -> store -> Report: `run_plan` (evaluate what is missing, then compare) and `compare_plan` (from the
store only). The Report is built by mergeval.analysis.build from what the checks read back (`collect`).

Everything after `collect` is a pure function of the store's contents: the same store and plan give the same
report (bootstrap resamples are seeded).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from mergeval.analysis.adaptive import run_adaptive
from mergeval.analysis.build import build_report
from mergeval.analysis.collected import Collected
from mergeval.core.context import CheckContext, PlanModel, RunEnv
from mergeval.core.executors import resolve_executor
from mergeval.core.progress import as_progress
from mergeval.core.registry import get_check
from mergeval.core.runner import Entry, run_entries
from mergeval.errors import UserError
from mergeval.models import ModelRef, resolve
from mergeval.plan import Plan, check_model_paths, load_plan, looks_like_local_path
from mergeval.report import EXIT_NOT_EVALUATED, Report
from mergeval.store import ModelRow, Store

logger = logging.getLogger(__name__)


# -- models and store ----------------------------------------------------------------------------------------


def store_path(plan: Plan, override: str | os.PathLike | None = None) -> Path:
    """The plan's results store (relative to the plan file), unless overridden (--store / MERGEVAL_STORE)."""
    return Path(override) if override else plan.resolve_path(plan.store)


def _reference_for(plan: Plan, path: str) -> str:
    """What to hand to `resolve`: plan-relative local paths made absolute; hub ids, endpoints as they are."""
    if path.startswith("openai:"):
        return path
    local = plan.resolve_path(path)
    if looks_like_local_path(path) or local.exists():
        return str(local)
    return path


def _resolve(plan: Plan, index: int) -> ModelRef:
    spec = plan.models[index]
    try:
        return resolve(
            _reference_for(plan, spec.path),
            name=spec.name,
            revision=spec.revision,
            dtype=plan.dtype_of(spec),
            device=plan.settings.device,
            batch_size=plan.settings.batch_size,
            trust_remote_code=spec.trust_remote_code,
            api_key_env=spec.api_key_env,
        )
    except UserError as exc:
        raise UserError(f"{plan.where(('models', index))}: model '{spec.name}': {exc}") from exc


def resolve_models(plan: Plan, store: Store | None = None, *, strict: bool = False) -> list[PlanModel]:
    """Resolve every plan model (fingerprints). With a `store`, a model whose files are gone (or a hub model
    not in the local cache) is identified from the store by its reference or name instead.

    strict (for `run`, which evaluates): fall back to the store only when the model is not there at all (a
    local path that does not exist, or a hub id / name that cannot be resolved), never for a folder that
    exists but cannot be read, and match the store by reference only (not by display name)."""
    if store is None:
        check_model_paths(plan)
    models = []
    for i, spec in enumerate(plan.models):
        try:
            models.append(PlanModel(spec, _resolve(plan, i)))
        except UserError as exc:
            if store is None or (strict and plan.resolve_path(spec.path).exists()):
                raise
            models.append(_known_from_store(plan, store, i, exc, by_name=not strict))
    return models


def _known_from_store(plan: Plan, store: Store, index: int, exc: UserError, by_name: bool) -> PlanModel:
    """A model that cannot be resolved, identified by what the store holds for its reference (or name)."""
    spec = plan.models[index]
    row = _from_store(plan, store, index, by_name=by_name)
    if row is None:
        raise UserError(
            f"{exc} The results store {store.path} has no model under this reference"
            f"{'' if not by_name else ' or name'} either, so nothing is known about it."
        ) from exc
    logger.warning("model %s (%s): %s; using what the store holds for it", spec.name, spec.path, exc)
    ref = ModelRef(reference=row.reference, kind=row.kind, name=spec.name, fingerprint=row.fingerprint,
                   dtype=plan.dtype_of(spec), metadata=row.metadata)
    return PlanModel(spec, ref, from_store=True)


def _from_store(plan: Plan, store: Store, index: int, by_name: bool = True) -> ModelRow | None:
    spec = plan.models[index]
    keys = {spec.path, _reference_for(plan, spec.path)}
    rows = [r for r in store.models() if r.reference in keys]
    if not rows and by_name:
        rows = [r for r in store.models() if r.name == spec.name]
    return rows[-1] if rows else None  # the newest model seen under this reference


# -- run / compare -------------------------------------------------------------------------------------------


def check_context(plan: Plan, store: Store, models: list[PlanModel], progress=None,
                  say: Callable[[str], None] | None = None) -> CheckContext:
    """What the checks of `plan` see: the store, the resolved models, the settings an engine needs (RunEnv)
    and the progress (a mergeval.core.Progress or the older TaskProgress callbacks; `say` gets the messages)."""
    settings = plan.settings
    env = RunEnv(base_dir=str(plan.base_dir), backend=settings.backend, device=settings.device,
                 batch_size=settings.batch_size, data_dir=settings.data_dir, seed=settings.seed)
    return CheckContext(plan=plan, store=store, models=models, env=env, progress=as_progress(progress, say))


def collect(plan: Plan, ctx: CheckContext) -> Collected:
    """What every check of the plan reads back from the store, merged."""
    data = [get_check(check.type).collect(check, ctx) for check in plan.checks]
    return Collected.merge(plan, ctx.models, data)


def plan_entries(plan: Plan, only: list[str] | None = None) -> list[Entry]:
    """The plan's checks in run order (by their type's `order`: sanity first, then plan order); `only`: the
    checks of these types or labels."""
    entries = [Entry(get_check(c.type), c) for c in plan.checks if not only or c.type in only or c.label in only]
    return sorted(entries, key=lambda e: e.check.order)


def run_plan(
    plan: Plan | str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    progress=None,
    say: Callable[[str], None] | None = None,
    checks: list[str] | None = None,
    executor=None,
    adaptive: bool | None = None,
) -> Report:
    """Evaluate everything the plan needs that the store lacks (sanity checks first: they are fast and catch
    broken merges), then compare. `checks`: only run these check types/labels (the rest is still compared).
    `executor`: "local" | "ray" or an executor (mergeval.core.executors); default the plan's settings.
    `adaptive`: lm-eval benchmarks stop once decided (mergeval.analysis.adaptive); False evaluates every item
    (`--full`); None: the plan's `settings.adaptive`."""
    plan = plan if isinstance(plan, Plan) else load_plan(plan, check_paths=False)
    executor = resolve_executor(executor, settings=plan.settings)  # bad executor settings fail before the store
    path = store_path(plan, store)
    if not path.exists():
        resolve_models(plan)  # nothing stored yet: every model must be there (errors before a store is made)
    with Store(path) as db:
        # A model that is not there (a deleted merge folder, a model known only from imported HumanEval
        # samples) but that the store knows by its reference: its stored results are used, nothing is
        # evaluated for it.
        models = resolve_models(plan, db, strict=True)
        for m in models:
            if m.from_store and say is not None:
                say(f"{m.name}: {m.spec.path} is not here; using only the results the store holds for it")
        ctx = check_context(plan, db, models, progress, say)
        if plan.settings.adaptive if adaptive is None else adaptive:
            run_adaptive(plan_entries(plan, checks), ctx, executor)
        else:
            for entry in plan_entries(plan, checks):  # check by check: a later check sees what an earlier stored
                run_entries([entry], ctx, executor)
        return build_report(collect(plan, ctx), store=db)


def compare_plan(
    plan: Plan | str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    say: Callable[[str], None] | None = None,
) -> Report:
    """The Report from what the store holds; nothing is evaluated. `report.missing` lists the gaps."""
    plan = plan if isinstance(plan, Plan) else load_plan(plan, check_paths=False)
    path = store_path(plan, store)
    if not path.exists():
        raise UserError(
            f"No results store at {path} yet. Run `mergeval run {plan.source or 'PLAN'}` first "
            "(or pass --store PATH)."
        )
    with Store(path, create=False) as db:
        models = resolve_models(plan, db)
        ctx = check_context(plan, db, models, say=say)
        return build_report(collect(plan, ctx), store=db)


def exit_code(report: Report) -> int:
    """`mergeval gate`'s exit code: 0 pass, 1 a gate failed, 3 some gate not evaluated."""
    code = Report.from_data(report).verdict.exit_code
    return EXIT_NOT_EVALUATED if code is None else int(code)


__all__ = ["check_context", "collect", "compare_plan", "exit_code", "plan_entries", "resolve_models", "run_plan",
           "store_path"]
