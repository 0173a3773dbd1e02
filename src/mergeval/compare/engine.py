"""Plan -> store -> report: `run_plan` (evaluate what is missing, then compare), `compare_plan` (store only),
and `build_report`, which turns what the checks read back into the report dict (schema mergeval.report/1,
see docs/plan-file.md and mergeval.report).

Everything after `collect` is a pure function of the store's contents: the same store and plan give the same
report (bootstrap resamples are seeded).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mergeval.compare.bands import leaderboard_band, mtbench_band
from mergeval.compare.collected import Collected
from mergeval.compare.gates import evaluate_gates, verdict
from mergeval.compare.paired import MEAN_OF_PARENTS, compare_pair, lookup, mean_of_scores
from mergeval.compare.registry import CheckContext, PlanModel, check_types
from mergeval.compare.retention import (
    best_parent,
    regression_row,
    retention_row,
    strengths_summary,
    worst_parent,
)
from mergeval.compare.stats import mean_ci_bootstrap
from mergeval.errors import UserError
from mergeval.models import ModelRef, resolve
from mergeval.plan import NoRegressionGate, Plan, check_model_paths, load_plan, looks_like_local_path
from mergeval.store import Store

logger = logging.getLogger(__name__)

SCHEMA = "mergeval.report/1"


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
            row = _from_store(plan, store, i, by_name=not strict)
            if row is None:
                raise UserError(
                    f"{exc} The results store {store.path} has no model under this reference"
                    f"{'' if strict else ' or name'} either, so nothing is known about it."
                ) from exc
            logger.warning("model %s (%s): %s; using what the store holds for it", spec.name, spec.path, exc)
            ref = ModelRef(
                reference=row.reference,
                kind=row.kind,
                name=spec.name,
                fingerprint=row.fingerprint,
                dtype=plan.dtype_of(spec),
                metadata=row.metadata,
            )
            models.append(PlanModel(spec, ref, from_store=True))
    return models


def _from_store(plan: Plan, store: Store, index: int, by_name: bool = True):
    spec = plan.models[index]
    keys = {spec.path, _reference_for(plan, spec.path)}
    rows = [r for r in store.models() if r.reference in keys]
    if not rows and by_name:
        rows = [r for r in store.models() if r.name == spec.name]
    return rows[-1] if rows else None  # the newest model seen under this reference


# -- run / collect -------------------------------------------------------------------------------------------


def _context(plan: Plan, store: Store, models: list[PlanModel], progress, say) -> CheckContext:
    return CheckContext(plan=plan, store=store, models=models, progress=progress, say=say or (lambda m: None))


def collect(plan: Plan, ctx: CheckContext) -> Collected:
    registry = check_types()
    data = [registry[check.type].collect(check, ctx) for check in plan.checks]
    return Collected.merge(plan, ctx.models, data)


def run_plan(
    plan: Plan | str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    progress=None,
    say: Callable[[str], None] | None = None,
    checks: list[str] | None = None,
) -> dict[str, Any]:
    """Evaluate everything the plan needs that the store lacks (sanity checks first: they are fast and catch
    broken merges), then compare. `checks`: only run these check types/labels (the rest is still compared)."""
    plan = plan if isinstance(plan, Plan) else load_plan(plan, check_paths=False)
    registry = check_types()
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
        ctx = _context(plan, db, models, progress, say)
        order = sorted(plan.checks, key=lambda c: 0 if c.type == "sanity" else 1)
        for check in order:
            if checks and check.type not in checks and check.label not in checks:
                continue
            registry[check.type].run(check, ctx)
        return build_report(collect(plan, ctx), store=db)


def compare_plan(
    plan: Plan | str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The report from what the store holds; nothing is evaluated. `report["missing"]` lists the gaps."""
    plan = plan if isinstance(plan, Plan) else load_plan(plan, check_paths=False)
    path = store_path(plan, store)
    if not path.exists():
        raise UserError(
            f"No results store at {path} yet. Run `mergeval run {plan.source or 'PLAN'}` first "
            "(or pass --store PATH)."
        )
    with Store(path, create=False) as db:
        models = resolve_models(plan, db)
        ctx = _context(plan, db, models, None, say)
        return build_report(collect(plan, ctx), store=db)


# -- the report ----------------------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """NaN and infinities -> None, recursively, so the report is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _score_entry(score, bench, settings) -> dict[str, Any]:
    if score is None:
        return {"value": None, "stderr": None, "ci_low": None, "ci_high": None, "n": 0, "n_target": 0}
    ci_low = ci_high = None
    if len(score.items) >= 2:
        ci = mean_ci_bootstrap(
            score.items, strata=score.strata, n_boot=settings.n_boot, seed=settings.seed, alpha=settings.alpha
        )
        ci_low, ci_high = ci.ci_low * bench.scale, ci.ci_high * bench.scale
    return {
        "value": score.value,
        "stderr": score.stderr,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "n": score.n,
        "n_target": score.n_target,
    }


def _merge_info(store: Store | None, plan: Plan, m: PlanModel) -> dict[str, Any] | None:
    stored = store.merge(m.fingerprint) if store is not None else None
    if stored:
        return {k: stored.get(k) for k in ("method", "parameters", "seed", "mergekit_version", "parents")}
    if m.spec.merge_config:
        return _merge_from_config(plan.resolve_path(m.spec.merge_config))
    return None


def _merge_from_config(path: Path) -> dict[str, Any] | None:
    """Provenance from a mergekit YAML (method, parameters, parent models); None if unreadable."""
    import yaml

    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(cfg, dict):
        return None
    parents: list[str] = []
    for entry in cfg.get("models") or []:
        if isinstance(entry, dict) and entry.get("model"):
            parents.append(str(entry["model"]))
    for sl in cfg.get("slices") or []:
        for src in (sl or {}).get("sources") or []:
            if isinstance(src, dict) and src.get("model") and str(src["model"]) not in parents:
                parents.append(str(src["model"]))
    if cfg.get("base_model") and str(cfg["base_model"]) not in parents:
        parents.append(str(cfg["base_model"]))
    from importlib.metadata import PackageNotFoundError, version

    try:
        mk = version("mergekit")
    except PackageNotFoundError:
        mk = None
    return {
        "method": cfg.get("merge_method"),
        "parameters": cfg.get("parameters") or {},
        "seed": None,
        "mergekit_version": mk,
        "parents": parents,
        "config_file": str(path),
    }


def _subject_rows(data: Collected, benchmark: str) -> list[dict[str, Any]]:
    """Per sub-task (MMLU subject) values of every model, for benchmarks made of several tasks."""
    tasks: dict[str, dict[str, Any]] = {}
    for m in data.models:
        score = data.score(m.name, benchmark)
        if score is not None and len(score.tasks) > 1:
            tasks = score.tasks
            break
    rows = []
    for task, info in tasks.items():
        values = {}
        for m in data.models:
            score = data.score(m.name, benchmark)
            values[m.name] = score.tasks.get(task, {}).get("value") if score else None
        rows.append({"task": task, "group": info.get("group"), "values": values})
    return rows


def _usable(data: Collected, model: str, bench: str) -> float | None:
    value, why = data.metric(model, bench)
    return None if why else value


def paired_comparisons(data: Collected) -> list[dict[str, Any]]:
    """Each candidate vs each parent, the base, each baseline and (2+ parents) the mean of the parents."""
    settings = data.plan.settings
    stats = {"alpha": settings.alpha, "n_boot": settings.n_boot, "seed": settings.seed}
    parents = data.by_role("parent")
    references = parents + data.by_role("base") + data.by_role("baseline")
    rows: list[dict[str, Any]] = []
    for cand in data.by_role("candidate"):
        mine = data.scores.get(cand.name, {})
        for ref in references:
            theirs = data.scores.get(ref.name, {})
            rows += compare_pair(cand.name, ref.name, ref.role, mine, theirs, data.benchmarks, **stats)
        if len(parents) >= 2:
            mean = mean_of_scores([data.scores.get(p.name, {}) for p in parents], data.benchmarks)
            rows += compare_pair(
                cand.name, MEAN_OF_PARENTS, "mean-parents", mine, mean, data.benchmarks, **stats
            )
    return rows


def retention_and_regressions(
    data: Collected, comparisons: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Retention and regression rows per candidate and benchmark (+ the Average's retention), from complete
    results only: a benchmark some model has not fully evaluated gets no row (it is in `missing`)."""
    settings = data.plan.settings
    parents = data.by_role("parent")
    critical: set[str] = set()
    for gate in data.plan.gates:
        if isinstance(gate, NoRegressionGate):
            critical |= set(gate.tasks or [b.name for b in data.benchmarks])
    retention: list[dict[str, Any]] = []
    regressions: list[dict[str, Any]] = []
    for cand in data.by_role("candidate") if parents else []:
        rows = []
        parent_values: dict[str, dict[str, float]] = {}
        for b in data.benchmarks:
            merged = _usable(data, cand.name, b.name)
            values = {p.name: _usable(data, p.name, b.name) for p in parents}
            if merged is None or any(v is None for v in values.values()):
                continue
            parent_values[b.name] = values
            rows.append(
                retention_row(
                    cand.name,
                    b.name,
                    merged,
                    values,
                    display=b.display,
                    higher_is_better=b.higher_is_better,
                    threshold=settings.retention,
                )
            )
            # Is the drop real? The paired test against the weakest parent (the one setting the threshold);
            # is the gain real? against the best parent.
            sign = 1 if b.higher_is_better else -1
            vs_worst = lookup(comparisons, cand.name, worst_parent(values, b.higher_is_better), b.name)
            vs_best = lookup(comparisons, cand.name, best_parent(values, b.higher_is_better), b.name)
            regressions.append(
                regression_row(
                    cand.name,
                    b.name,
                    merged,
                    values,
                    tolerance=settings.tolerance,
                    higher_is_better=b.higher_is_better,
                    significant_worse=bool(
                        vs_worst and vs_worst["significant"] and sign * vs_worst["diff"] < 0
                    ),
                    significant_better=bool(
                        vs_best and vs_best["significant"] and sign * vs_best["diff"] > 0
                    ),
                    critical=b.name in critical,
                )
            )
        merged_average = _usable(data, cand.name, "average")
        parent_averages = {p.name: _usable(data, p.name, "average") for p in parents}
        if merged_average is not None and all(v is not None for v in parent_averages.values()):
            row = retention_row(
                cand.name,
                "average",
                merged_average,
                parent_averages,
                display="Average",
                threshold=settings.retention,
            )
            strengths = strengths_summary(
                rows,
                parent_values,
                {b.name: b.display for b in data.benchmarks},
                higher_is_better={b.name: b.higher_is_better for b in data.benchmarks},
                threshold=settings.retention,
            )
            if strengths:
                row["summary"] += f". Per benchmark: {strengths}"
            rows.append(row)
        retention += rows
    return retention, regressions


def _bands(data: Collected) -> dict[str, dict[str, str | None]]:
    """Quality-band labels: the leaderboard band only for a full six-benchmark leaderboard-v1 Average."""
    full_leaderboard = bool(
        data.suite and data.suite.get("name") == "leaderboard-v1" and len(data.average_benchmarks) == 6
    )
    bands = {}
    for m in data.models:
        average = data.average(m.name)
        mtbench = data.metric(m.name, "mtbench")[0]
        bands[m.name] = {
            "leaderboard": leaderboard_band(average) if full_leaderboard and average is not None else None,
            "mtbench": mtbench_band(mtbench) if mtbench is not None else None,
        }
    return bands


def _provenance(data: Collected, store: Store | None) -> dict[str, Any]:
    from mergeval import __version__
    from mergeval.harness import lm_eval_version

    plan, settings = data.plan, data.plan.settings
    tasks: dict[str, Any] = {}
    for c in data.checks:
        tasks.update(c.provenance.get("tasks", {}))
    return {
        "lm_eval_version": lm_eval_version(),
        "mergeval_version": __version__,
        "plan_hash": plan.content_hash(),
        "store": str(store.path) if store is not None else None,
        "limit": data.limit,
        "average_of": [b.name for b in data.average_benchmarks],
        "settings": settings.model_dump(mode="json"),
        "statistics": {
            "alpha": settings.alpha,
            "n_boot": settings.n_boot,
            "seed": settings.seed,
            "tests": "exact McNemar for 0/1 scores, else paired bootstrap (stratified by subject for "
            "multi-task benchmarks); Holm across the benchmarks of each candidate-vs-reference pair",
            "regression_rule": f"merged < min(parents) x (1 - {settings.tolerance}) [point rule]; "
            "'regression' also needs a significant paired difference vs the weakest parent",
        },
        "tasks": tasks,
        "checks": {c.check: c.provenance for c in data.checks},
        "models": {
            m.name: {
                "fingerprint": m.fingerprint,
                "reference": m.spec.path,
                "kind": m.ref.kind,
                "dtype": plan.dtype_of(m.spec),
                "revision": m.spec.revision,
                "identity_from_store": m.from_store,
            }
            for m in data.models
        },
    }


def build_report(data: Collected, *, store: Store | None = None) -> dict[str, Any]:
    """The report dict (schema mergeval.report/1) for the collected results."""
    from mergeval import __version__

    plan = data.plan
    candidates, parents = data.by_role("candidate"), data.by_role("parent")
    comparisons = paired_comparisons(data)
    retention, regressions = retention_and_regressions(data, comparisons)
    gates = evaluate_gates(data, retention=retention, regressions=regressions)
    title = plan.title or (
        f"{', '.join(c.name for c in candidates)} vs {', '.join(p.name for p in parents) or 'references'}"
    )
    subjects = {b.name: _subject_rows(data, b.name) for b in data.benchmarks}
    report = {
        "schema": SCHEMA,
        "title": title,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mergeval_version": __version__,
        "plan": str(plan.source) if plan.source else None,
        "suite": data.suite or {"name": "", "label": "", "note": ""},
        "models": [
            {
                "name": m.name,
                "fingerprint": m.fingerprint,
                "role": m.role,
                "reference": m.spec.path,
                "merge": _merge_info(store, plan, m),
            }
            for m in data.models
        ],
        "benchmarks": [
            {
                "name": b.name,
                "display": b.display,
                "metric_key": b.metric_key,
                "higher_is_better": b.higher_is_better,
                "kind": b.kind,
            }
            for b in data.benchmarks
        ],
        "scores": {
            m.name: {
                b.name: _score_entry(data.score(m.name, b.name), b, plan.settings) for b in data.benchmarks
            }
            for m in data.models
        },
        "averages": {m.name: data.average(m.name) for m in data.models},
        "subjects": {name: rows for name, rows in subjects.items() if rows},
        "comparisons": comparisons,
        "retention": retention,
        "regressions": regressions,
        "gates": gates,
        "sanity": data.sanity,
        "bands": _bands(data),
        "verdict": verdict(gates),
        "facts": data.facts,
        "missing": [m.to_dict() for m in data.missing],
        "provenance": _provenance(data, store),
    }
    return _clean(report)


# -- writing -------------------------------------------------------------------------------------------------


def write_reports(
    report: dict[str, Any], out_dir: str | os.PathLike, *, subjects: bool = False
) -> dict[str, Path]:
    """Write report.md, report.json and (when the HTML renderer is installed) report.html to `out_dir`."""
    from mergeval.report.jsonreport import render_json
    from mergeval.report.markdown import render_markdown

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"Cannot create the report folder {out}: {exc}. Pass --out DIR.") from exc
    written = {"md": out / "report.md", "json": out / "report.json"}
    written["md"].write_text(render_markdown(report, subjects=subjects), encoding="utf-8")
    written["json"].write_text(render_json(report), encoding="utf-8")
    try:
        from mergeval.report.html import render_html
    except ImportError:
        render_html = None
    if render_html is not None:
        written["html"] = out / "report.html"
        written["html"].write_text(render_html(report), encoding="utf-8")
    return written


def exit_code(report: dict[str, Any]) -> int:
    """`mergeval gate`'s exit code: 0 pass, 1 a gate failed, 3 some gate not evaluated."""
    return int(report["verdict"]["exit_code"])
