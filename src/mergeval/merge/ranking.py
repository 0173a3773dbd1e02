"""A sweep's ranking: every model scored on the selection and the report items, the winner picked on the
selection items, and compared (paired) with the runner-up and the best parent on the report items.

Benchmarks come from the checks' MetricSpecs, so any check type can rank a sweep: each benchmark brings its
report scale and its direction (perplexity: lower is better). An objective averages benchmarks that share a
direction and a scale; "best" follows that direction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mergeval.errors import UserError
from mergeval.merge import selection as sel

ItemScores = dict[sel.ItemKey, float]  # one model's stored item scores: (benchmark, task, item id) -> raw score


@dataclass(frozen=True)
class Benchmark:
    """A column the sweep can rank on: its name, report scale and direction (from the check's MetricSpec)."""

    name: str
    scale: float = 100.0
    higher_is_better: bool = True


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
    selection: dict[str, float] = field(default_factory=dict)  # benchmark -> score (report scale)
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
    higher_is_better: bool = True  # the objective's direction
    racing: dict[str, Any] | None = None  # `sweep --adaptive`: what the race did (merge/racing.py)

    def ranked(self) -> list[ModelScores]:
        """The candidates, best objective (on the selection items) first; unscored ones last."""
        return sorted(self.candidates, key=lambda c: _order(c.objective_selection, self.higher_is_better))

    def model(self, name: str) -> ModelScores:
        for m in [*self.candidates, *self.parents]:
            if name in (m.name, m.fingerprint, m.key):
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _order(value: float | None, higher_is_better: bool) -> float:
    if not sel.finite(value):
        return float("inf")
    return -value if higher_is_better else value  # type: ignore[operator]


@dataclass(frozen=True)
class Objective:
    """What the winner is picked on: benchmarks of one direction and one scale."""

    benchmarks: list[str]
    scale: float
    higher_is_better: bool

    @classmethod
    def of(cls, wanted: str | Sequence[str], benchmarks: Sequence[Benchmark]) -> Objective:
        known = {b.name: b for b in benchmarks}
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        if names == ["mean"]:
            names = list(known)
        unknown = [b for b in names if b not in known]
        if unknown:
            raise UserError(f"objective {', '.join(unknown)} is not a benchmark of the checks "
                            f"({', '.join(known)}). Use one of them, a list of them, or `mean`.")
        chosen = [known[n] for n in names]
        if len({(b.scale, b.higher_is_better) for b in chosen}) > 1:
            raise UserError(f"The objective averages {', '.join(names)}, which differ in scale or direction "
                            "(higher vs lower is better). Name the benchmarks to rank on with `objective:` (one "
                            "benchmark, or a list of benchmarks of the same kind).")
        return cls(names, chosen[0].scale, chosen[0].higher_is_better)


@dataclass
class Ranking:
    """The inputs of a ranking: how items are split, what is ranked on, the models' item scores."""

    split: sel.SplitPlan
    benchmarks: list[Benchmark]
    objective: Objective
    alpha: float = 0.05
    items: dict[str, ItemScores] = field(default_factory=dict)  # fingerprint -> item scores

    @property
    def scales(self) -> dict[str, float]:
        return {b.name: b.scale for b in self.benchmarks}

    def score(self, row: ModelScores, scores: ItemScores) -> None:
        """Fill a model's per-benchmark and objective values on both splits."""
        self.items[row.fingerprint] = scores
        chosen, held_out = self.split.subset(scores, "selection"), self.split.subset(scores, "report")
        row.selection = sel.benchmark_scores(chosen, self.scales)
        row.report = sel.benchmark_scores(held_out, self.scales)
        row.objective_selection = sel.objective_value(chosen, self.objective.benchmarks, self.scales)
        row.objective_report = sel.objective_value(held_out, self.objective.benchmarks, self.scales)

    def best(self, rows: Sequence[ModelScores]) -> list[ModelScores]:
        scored = [r for r in rows if sel.finite(r.objective_selection)]
        return sorted(scored, key=lambda r: _order(r.objective_selection, self.objective.higher_is_better))

    def mark_pareto_front(self, rows: Sequence[ModelScores]) -> None:
        """The front over all benchmarks, each oriented so that more is better."""
        signs = {b.name: 1.0 if b.higher_is_better else -1.0 for b in self.benchmarks}
        scored = [r for r in rows if r.status != "failed" and len(r.selection) == len(self.benchmarks)]
        front = sel.pareto_front({r.name: {k: signs[k] * v for k, v in r.selection.items()} for r in scored})
        for r in scored:
            r.on_pareto_front = r.name in front

    def compare(self, a: ModelScores | None, b: ModelScores | None) -> Comparison | None:
        """`a` against `b` on the report items: the objective (paired) and each benchmark (Holm-adjusted)."""
        if a is None or b is None:
            return None
        a_report = self.split.subset(self.items[a.fingerprint], "report")
        b_report = self.split.subset(self.items[b.fingerprint], "report")
        names = self.objective.benchmarks
        overall = sel.paired_objective(a_report, b_report, names, alpha=self.alpha)
        if overall is None:
            return None
        keep = set(names)
        per_bench = sel.per_benchmark_comparison({k: v for k, v in a_report.items() if k[0] in keep},
                                                 {k: v for k, v in b_report.items() if k[0] in keep},
                                                 alpha=self.alpha)
        scale, scales = self.objective.scale, self.scales
        return Comparison(
            a=a.name, b=b.name, diff=scale * overall.diff, ci_low=scale * overall.ci_low,
            ci_high=scale * overall.ci_high, p_value=overall.p_value, significant=overall.significant,
            test=overall.test_used, n_items=overall.n_paired,
            per_benchmark={bench: {"diff": scales[bench] * c.diff, "ci_low": scales[bench] * c.ci_low,
                                   "ci_high": scales[bench] * c.ci_high, "p_adjusted": c.p_adjusted,
                                   "significant": c.significant} for bench, c in per_bench.items()},
        )

    def split_sizes(self, model: ModelScores | None) -> tuple[int, int]:
        if model is None:
            return 0, 0
        scores = self.items[model.fingerprint]
        return len(self.split.subset(scores, "selection")), len(self.split.subset(scores, "report"))


def _warnings(ranking: Ranking, winner: ModelScores | None, n_report: int, rows: Sequence[ModelScores]) -> list[str]:
    warnings: list[str] = []
    if ranking.split.same_items:
        warnings.append(
            "Selection and reporting use the same items (selection fraction 1.0): the winner's score "
            "is optimistically biased, more so the more candidates there are. Use a fraction below 1."
        )
    if winner is not None and n_report < 30 and not ranking.split.same_items:
        warnings.append(
            f"Only {n_report} items report the winner: differences smaller than a few points cannot be "
            "told apart from noise. Evaluate more items (a larger --limit)."
        )
    failed = [r for r in rows if r.status == "failed"]
    if failed:
        warnings.append(f"{len(failed)} candidate(s) failed to merge; see their errors in the table.")
    return warnings


def rank(name: str, ranking: Ranking, rows: list[ModelScores], parents: list[ModelScores],
         scores: Mapping[str, ItemScores], winner_name: str | None = None) -> SweepResult:
    """Score every model, pick the winner on the selection items (or take `winner_name`, a race's winner),
    compare it on the report items."""
    for row in [*rows, *parents]:
        if row.status != "failed":
            ranking.score(row, scores[row.fingerprint])
    ranking.mark_pareto_front([*rows, *parents])
    ranked = ranking.best(rows)
    if winner_name is not None:
        ranked.sort(key=lambda r: r.name != winner_name)  # stable: the others keep their order
    ranked_parents = ranking.best([p for p in parents if p.role == "parent"])
    winner = ranked[0] if ranked else None
    runner_up = ranked[1] if len(ranked) > 1 else None
    best_parent = ranked_parents[0] if ranked_parents else None
    n_sel, n_rep = ranking.split_sizes(winner)
    return SweepResult(
        name=name,
        benchmarks=[b.name for b in ranking.benchmarks],
        objective=ranking.objective.benchmarks,
        candidates=rows,
        parents=parents,
        winner=winner.name if winner else None,
        runner_up=runner_up.name if runner_up else None,
        best_parent=best_parent.name if best_parent else None,
        vs_runner_up=ranking.compare(winner, runner_up),
        vs_best_parent=ranking.compare(winner, best_parent),
        selection_fraction=ranking.split.fraction,
        selection_items=n_sel,
        report_items=n_rep,
        warnings=_warnings(ranking, winner, n_rep, rows),
        higher_is_better=ranking.objective.higher_is_better,
    )


__all__ = ["Benchmark", "Comparison", "ItemScores", "ModelScores", "Objective", "Ranking", "SweepResult", "rank"]
