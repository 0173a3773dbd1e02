"""Everything the checks of a plan read back from the store, merged into one view for the comparison."""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from mergeval.compare.registry import BenchmarkInfo, CheckData, Missing, PlanModel, ScoreData
from mergeval.plan import Plan


@dataclass
class Collected:
    plan: Plan
    models: list[PlanModel]
    checks: list[CheckData] = field(default_factory=list)
    benchmarks: list[BenchmarkInfo] = field(default_factory=list)  # unique names, plan order
    scores: dict[str, dict[str, ScoreData]] = field(default_factory=dict)  # model -> benchmark -> score
    facts: dict[str, dict[str, float]] = field(default_factory=dict)
    sanity: list[dict[str, Any]] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    suite: dict[str, str] | None = None  # the primary suite (its benchmarks make the Average)
    limit: int | float | None = None  # the primary suite's limit

    @classmethod
    def merge(cls, plan: Plan, models: list[PlanModel], checks: list[CheckData]) -> Collected:
        """Combine per-check data. The first suite-like check is the primary one: its benchmarks make the
        Average. A benchmark name a later check repeats is prefixed with that check's label."""
        out = cls(plan=plan, models=models, checks=checks)
        seen: set[str] = set()
        for data in checks:
            primary = data.suite is not None and out.suite is None
            if primary:
                out.suite = data.suite
                out.limit = data.limit
            renamed: dict[str, str] = {}
            for bench in data.benchmarks:
                name = bench.name if bench.name not in seen else f"{data.check}.{bench.name}"
                renamed[bench.name] = name
                seen.add(name)
                out.benchmarks.append(
                    BenchmarkInfo(
                        name=name,
                        display=bench.display if name == bench.name else f"{bench.display} ({data.check})",
                        metric_key=bench.metric_key,
                        higher_is_better=bench.higher_is_better,
                        kind=bench.kind,
                        scale=bench.scale,
                        in_average=bench.in_average and primary,
                        check=bench.check or data.check,
                    )
                )
            for model, per_bench in data.scores.items():
                for bench_name, score in per_bench.items():
                    out.scores.setdefault(model, {})[renamed.get(bench_name, bench_name)] = score
            for model, facts in data.facts.items():
                out.facts.setdefault(model, {}).update(facts)
            out.sanity += data.sanity
            out.missing += [
                Missing(
                    m.model, m.check, renamed.get(m.benchmark, m.benchmark) if m.benchmark else None, m.detail
                )
                for m in data.missing
            ]
        return out

    # -- lookups -----------------------------------------------------------------------------------------

    def benchmark(self, name: str) -> BenchmarkInfo | None:
        return next((b for b in self.benchmarks if b.name == name), None)

    def score(self, model: str, benchmark: str) -> ScoreData | None:
        return self.scores.get(model, {}).get(benchmark)

    def value(self, model: str, benchmark: str) -> float | None:
        s = self.score(model, benchmark)
        return s.value if s else None

    @property
    def average_benchmarks(self) -> list[BenchmarkInfo]:
        return [b for b in self.benchmarks if b.in_average]

    def average(self, model: str) -> float | None:
        """Plain mean over the primary suite's benchmarks; None unless every one has a value."""
        values = [self.value(model, b.name) for b in self.average_benchmarks]
        if not values or any(v is None for v in values):
            return None
        return fmean(values)

    def metric(self, model: str, metric: str) -> tuple[float | None, str]:
        """A gate's number for a model: (value, "") or (None, why it is not available)."""
        if metric == "average":
            benches = self.average_benchmarks
            if not benches:
                return None, "no suite check in the plan, so there is no average"
            for b in benches:
                _, why = self._benchmark_value(model, b.name)
                if why:
                    return None, why
            return self.average(model), ""
        if self.benchmark(metric) is not None:
            return self._benchmark_value(model, metric)
        value = self.facts.get(model, {}).get(metric)
        if value is not None:
            return value, ""
        return None, f"{metric} of {model} not measured"

    def _benchmark_value(self, model: str, benchmark: str) -> tuple[float | None, str]:
        s = self.score(model, benchmark)
        if s is None or s.n == 0 or s.value is None:
            return None, f"{model} has no {benchmark} results"
        if s.n < s.n_target:
            return None, f"{model}'s {benchmark} is incomplete ({s.n} of {s.n_target} items)"
        return s.value, ""

    def by_role(self, role: str) -> list[PlanModel]:
        return [m for m in self.models if m.role == role]
