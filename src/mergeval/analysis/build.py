"""What the checks read back from the store (`Collected`) -> the typed Report (schema mergeval.report/1).

Everything here is a pure function of the collected data (bootstrap resamples are seeded): the same store and
plan give the same report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from mergeval import __version__
from mergeval.analysis.adaptive import adaptive_gates, apply_adaptive
from mergeval.analysis.collected import Collected
from mergeval.analysis.paired import MEAN_OF_PARENTS, compare_pair, lookup, mean_of_scores
from mergeval.analysis.retention import (
    best_parent,
    regression_row,
    retention_row,
    strengths_summary,
    worst_parent,
)
from mergeval.analysis.stats import mean_ci_bootstrap
from mergeval.core.check import MetricSpec
from mergeval.core.context import PlanModel
from mergeval.core.results import ScoreData
from mergeval.engines.lmeval.harness import lm_eval_version
from mergeval.plan import NoRegressionGate, Settings, evaluate_gates
from mergeval.report import (
    SCHEMA,
    BenchmarkEntry,
    Comparison,
    MergeInfo,
    MissingEntry,
    ModelEntry,
    Provenance,
    RegressionRow,
    Report,
    RetentionRow,
    SanityRow,
    ScoreEntry,
    SubjectRow,
    SuiteInfo,
    Verdict,
)
from mergeval.store import Store


def build_report(data: Collected, *, store: Store | None = None) -> Report:
    """The Report (schema mergeval.report/1) for the collected results."""
    plan = data.plan
    adaptive = apply_adaptive(data, store)  # benchmarks an adaptive run decided early: their items evaluated
    comparisons = paired_comparisons(data)
    retention, regressions = retention_and_regressions(data, comparisons)
    gates = adaptive_gates(evaluate_gates(plan.gates, data, retention=retention, regressions=regressions), data)
    report = Report(
        schema=SCHEMA,
        title=plan.title or _default_title(data),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        mergeval_version=__version__,
        plan=str(plan.source) if plan.source else None,
        suite=SuiteInfo.model_validate(data.suite or {}),
        models=[_model_entry(m, data, store) for m in data.models],
        benchmarks=[_benchmark_entry(b) for b in data.benchmarks],
        scores={m.name: {b.name: score_entry(data.score(m.name, b.name), b, plan.settings) for b in data.benchmarks}
                for m in data.models},
        averages={m.name: data.average(m.name) for m in data.models},
        subjects={b.name: rows for b in data.benchmarks if (rows := subject_rows(data, b.name))},
        comparisons=comparisons,
        retention=retention,
        regressions=regressions,
        gates=gates,
        sanity=[SanityRow.model_validate(row) for row in data.sanity],
        bands={m.name: data.bands(m.name) for m in data.models},
        verdict=Verdict.of(gates),
        facts=data.facts,
        missing=[MissingEntry.model_validate(m.to_dict()) for m in data.missing],
        provenance=provenance(data, store),
    )
    if adaptive:
        report.adaptive = adaptive
    report.metrics = {**{b.name: b for b in data.benchmarks}, **data.fact_specs}
    if data.average_bands:
        report.metrics["average"] = MetricSpec("average", "Average", kind="fact", bands=data.average_bands)
    return report


def _default_title(data: Collected) -> str:
    candidates = ", ".join(c.name for c in data.by_role("candidate"))
    return f"{candidates} vs {', '.join(p.name for p in data.by_role('parent')) or 'references'}"


# -- entries ------------------------------------------------------------------------------------------------


def _model_entry(m: PlanModel, data: Collected, store: Store | None) -> ModelEntry:
    merge = merge_info(store, data, m)
    return ModelEntry(name=m.name, fingerprint=m.fingerprint, role=m.role, reference=m.spec.path,
                      merge=MergeInfo.model_validate(merge) if merge is not None else None)


def _benchmark_entry(spec: MetricSpec) -> BenchmarkEntry:
    normalized = {"normalized": True} if spec.normalized else {}  # leaderboard v2 (the key is written only then)
    return BenchmarkEntry(name=spec.name, display=spec.title, metric_key=spec.metric_key,
                          higher_is_better=spec.higher_is_better, kind=spec.family, **normalized)


def score_entry(score: ScoreData | None, bench: MetricSpec, settings: Settings) -> ScoreEntry:
    """A score on the report scale, with its bootstrap interval (stratified by subject where there are some)."""
    if score is None:
        return ScoreEntry(value=None, stderr=None, ci_low=None, ci_high=None, n=0, n_target=0)
    ci_low = ci_high = None
    if len(score.items) >= 2:
        ci = mean_ci_bootstrap(score.items, strata=score.strata, n_boot=settings.n_boot, seed=settings.seed,
                               alpha=settings.alpha)
        ci_low, ci_high = ci.ci_low * bench.scale, ci.ci_high * bench.scale
    raw = {"raw": score.raw} if bench.normalized else {}  # leaderboard v2: `value` normalised, `raw` lm-eval's
    return ScoreEntry(value=score.value, stderr=score.stderr, ci_low=ci_low, ci_high=ci_high, n=score.n,
                      n_target=score.n_target, **raw)


def subject_rows(data: Collected, benchmark: str) -> list[SubjectRow]:
    """Per sub-task (MMLU subject) values of every model, for benchmarks made of several tasks."""
    tasks: dict[str, dict[str, Any]] = next(
        (s.tasks for m in data.models if (s := data.score(m.name, benchmark)) is not None and len(s.tasks) > 1), {}
    )
    rows = []
    for task, info in tasks.items():
        values = {}
        for m in data.models:
            score = data.score(m.name, benchmark)
            values[m.name] = score.tasks.get(task, {}).get("value") if score else None
        rows.append(SubjectRow(task=task, group=info.get("group"), values=values))
    return rows


# -- statistics, retention, regressions -----------------------------------------------------------------------


def paired_comparisons(data: Collected) -> list[Comparison]:
    """Each candidate vs each parent, the base, each baseline and (2+ parents) the mean of the parents."""
    settings = data.plan.settings
    stats = {"alpha": settings.alpha, "n_boot": settings.n_boot, "seed": settings.seed}
    parents = data.by_role("parent")
    references = parents + data.by_role("base") + data.by_role("baseline")
    rows: list[Comparison] = []
    for cand in data.by_role("candidate"):
        mine = data.scores.get(cand.name, {})
        for ref in references:
            theirs = data.scores.get(ref.name, {})
            rows += compare_pair(cand.name, ref.name, ref.role, mine, theirs, data.benchmarks, **stats)
        if len(parents) >= 2:
            mean = mean_of_scores([data.scores.get(p.name, {}) for p in parents], data.benchmarks)
            rows += compare_pair(cand.name, MEAN_OF_PARENTS, "mean-parents", mine, mean, data.benchmarks, **stats)
    return rows


def _critical(data: Collected) -> set[str]:
    """The benchmarks a no-regression gate names (all of them for a gate without `tasks`)."""
    critical: set[str] = set()
    for gate in data.plan.gates:
        if isinstance(gate, NoRegressionGate):
            critical |= set(gate.tasks or data.benchmark_names())
    return critical


def _regression(data: Collected, comparisons: list[Comparison], cand: str, bench: MetricSpec, merged: float,
                parents: dict[str, float], critical: bool) -> RegressionRow:
    """Is a drop real? The paired test against the weakest parent (the one setting the threshold); is a gain
    real? Against the best parent."""
    sign = 1 if bench.higher_is_better else -1
    vs_worst = lookup(comparisons, cand, worst_parent(parents, bench.higher_is_better), bench.name)
    vs_best = lookup(comparisons, cand, best_parent(parents, bench.higher_is_better), bench.name)
    return regression_row(
        cand, bench.name, merged, parents, tolerance=data.plan.settings.tolerance,
        higher_is_better=bench.higher_is_better,
        significant_worse=bool(vs_worst and vs_worst.significant and sign * (vs_worst.diff or 0) < 0),
        significant_better=bool(vs_best and vs_best.significant and sign * (vs_best.diff or 0) > 0),
        critical=critical,
    )


def _average_retention(data: Collected, cand: str, rows: list[RetentionRow],
                       parent_values: dict[str, dict[str, float]]) -> RetentionRow | None:
    """The Average's retention row, its summary naming whose strengths were kept or lost."""
    settings = data.plan.settings
    merged = data.usable(cand, "average")
    parents = data.usable_values(data.by_role("parent"), "average")
    if merged is None or parents is None:
        return None
    row = retention_row(cand, "average", merged, parents, display="Average", threshold=settings.retention)
    strengths = strengths_summary(
        rows, parent_values, {b.name: b.title for b in data.benchmarks},
        higher_is_better={b.name: b.higher_is_better for b in data.benchmarks}, threshold=settings.retention,
    )
    if strengths:
        row.summary += f". Per benchmark: {strengths}"
    return row


def retention_and_regressions(data: Collected, comparisons: list[Comparison]
                              ) -> tuple[list[RetentionRow], list[RegressionRow]]:
    """Retention and regression rows per candidate and benchmark (+ the Average's retention), from complete
    results only: a benchmark some model has not fully evaluated gets no row (it is in `missing`)."""
    parents = data.by_role("parent")
    critical = _critical(data)
    retention: list[RetentionRow] = []
    regressions: list[RegressionRow] = []
    for cand in data.by_role("candidate") if parents else []:
        rows: list[RetentionRow] = []
        parent_values: dict[str, dict[str, float]] = {}
        for b in data.benchmarks:
            merged = data.usable(cand.name, b.name)
            values = data.usable_values(parents, b.name)
            if merged is None or values is None:
                continue
            parent_values[b.name] = values
            rows.append(retention_row(cand.name, b.name, merged, values, display=b.title,
                                      higher_is_better=b.higher_is_better, threshold=data.plan.settings.retention))
            regressions.append(_regression(data, comparisons, cand.name, b, merged, values, b.name in critical))
        average = _average_retention(data, cand.name, rows, parent_values)
        retention += rows + ([average] if average is not None else [])
    return retention, regressions


# -- provenance -----------------------------------------------------------------------------------------------


def merge_info(store: Store | None, data: Collected, m: PlanModel) -> dict[str, Any] | None:
    """How a candidate was made: the store's record of the merge, else the plan's `merge_config`."""
    stored = store.merge(m.fingerprint) if store is not None else None
    if stored:
        return {k: stored.get(k) for k in ("method", "parameters", "seed", "mergekit_version", "parents")}
    if m.spec.merge_config:
        return merge_from_config(data.plan.resolve_path(m.spec.merge_config))
    return None


def _mergekit_version() -> str | None:
    try:
        return version("mergekit")
    except PackageNotFoundError:
        return None


def merge_from_config(path: Path) -> dict[str, Any] | None:
    """Provenance from a mergekit YAML (method, parameters, parent models); None if unreadable."""
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(cfg, dict):
        return None
    parents: list[str] = [str(e["model"]) for e in cfg.get("models") or [] if isinstance(e, dict) and e.get("model")]
    for sl in cfg.get("slices") or []:
        for src in (sl or {}).get("sources") or []:
            if isinstance(src, dict) and src.get("model") and str(src["model"]) not in parents:
                parents.append(str(src["model"]))
    if cfg.get("base_model") and str(cfg["base_model"]) not in parents:
        parents.append(str(cfg["base_model"]))
    return {"method": cfg.get("merge_method"), "parameters": cfg.get("parameters") or {}, "seed": None,
            "mergekit_version": _mergekit_version(), "parents": parents, "config_file": str(path)}


def provenance(data: Collected, store: Store | None) -> Provenance:
    plan, settings = data.plan, data.plan.settings
    tasks: dict[str, Any] = {}
    for c in data.checks:
        tasks.update(c.provenance.get("tasks", {}))
    return Provenance(
        lm_eval_version=lm_eval_version(),
        mergeval_version=__version__,
        plan_hash=plan.content_hash(),
        store=str(store.path) if store is not None else None,
        limit=data.limit,
        average_of=[b.name for b in data.average_benchmarks],
        settings=settings.model_dump(mode="json"),
        statistics={
            "alpha": settings.alpha,
            "n_boot": settings.n_boot,
            "seed": settings.seed,
            "tests": "exact McNemar for 0/1 scores, else paired bootstrap (stratified by subject for "
            "multi-task benchmarks); Holm across the benchmarks of each candidate-vs-reference pair",
            "regression_rule": f"merged < min(parents) x (1 - {settings.tolerance}) [point rule]; "
            "'regression' also needs a significant paired difference vs the weakest parent",
        },
        tasks=tasks,
        checks={c.check: c.provenance for c in data.checks},
        models={m.name: {"fingerprint": m.fingerprint, "reference": m.spec.path, "kind": m.ref.kind,
                         "dtype": plan.dtype_of(m.spec), "revision": m.spec.revision,
                         "identity_from_store": m.from_store, **_recorded_runtime(store, m.fingerprint)}
                for m in data.models},
    )


def _recorded_runtime(store: Store | None, fingerprint: str | None) -> dict[str, str]:
    """The backend and device the model's finished runs recorded ("PrefixCachingHFLM", "cpu"; several joined
    in the order first seen); nothing for what no run recorded."""
    if store is None or not fingerprint:
        return {}
    found: dict[str, list[str]] = {}
    for run in store.runs(fingerprint):
        if run.status != "done" or not isinstance(run.provenance, dict):
            continue
        for key in ("backend", "device"):
            value = run.provenance.get(key)
            if value not in (None, "", "None") and str(value) not in found.setdefault(key, []):
                found[key].append(str(value))
    return {key: ", ".join(values) for key, values in found.items() if values}


__all__ = [
    "build_report",
    "merge_from_config",
    "merge_info",
    "paired_comparisons",
    "provenance",
    "retention_and_regressions",
    "score_entry",
    "subject_rows",
]
