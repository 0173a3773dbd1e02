"""Everything the checks of a plan read back from the store, merged into one view for the comparison.

Each benchmark is carried as the MetricSpec its check declared (scale, range, unit, direction, bands), so
what comes after (statistics, gates, the report, the renderers) reads how to treat a number from data and
never from the name of the check type that produced it. `Collected` is also what gates read
(mergeval.plan.gates.GateData).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from mergeval.analysis.bands import AVERAGE_BAND, band_label
from mergeval.core.check import Band, MetricSpec
from mergeval.core.context import PlanModel
from mergeval.core.results import CheckData, Missing, ScoreData
from mergeval.plan import Plan, check_configs, known_metrics, plan_vocabulary


def _specs(data: CheckData) -> list[MetricSpec]:
    """A check's benchmarks, each with its check label and family (the report's `kind`; default its type)."""
    return [dataclasses.replace(spec, check=spec.check or data.check, family=spec.family or data.type)
            for spec in data.benchmarks]


@dataclass
class Collected:
    plan: Plan
    models: list[PlanModel]
    checks: list[CheckData] = field(default_factory=list)
    benchmarks: list[MetricSpec] = field(default_factory=list)  # unique names, plan order
    fact_specs: dict[str, MetricSpec] = field(default_factory=dict)
    scores: dict[str, dict[str, ScoreData]] = field(default_factory=dict)  # model -> benchmark -> score
    facts: dict[str, dict[str, float]] = field(default_factory=dict)
    sanity: list[dict[str, Any]] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    suite: dict[str, Any] | None = None  # the primary suite (its benchmarks make the Average)
    limit: int | float | None = None  # the primary suite's limit
    average_bands: tuple[Band, ...] = ()  # the quality bands of the Average (the primary suite's)

    @classmethod
    def merge(cls, plan: Plan, models: list[PlanModel], checks: list[CheckData]) -> Collected:
        """Combine per-check data. The first suite-like check is the primary one: its benchmarks make the
        Average. A benchmark name a later check repeats is prefixed with that check's label."""
        out = cls(plan=plan, models=models, checks=checks)
        for data in checks:
            primary = data.suite is not None and out.suite is None
            if primary:
                out.suite, out.limit = data.suite, data.limit
            renamed = out._add_benchmarks(data, primary)
            out._add_facts(data, primary)
            for model, per_bench in data.scores.items():
                for bench_name, score in per_bench.items():
                    out.scores.setdefault(model, {})[renamed.get(bench_name, bench_name)] = score
            out.sanity += data.sanity
            out.missing += [Missing(m.model, m.check, renamed.get(m.benchmark, m.benchmark) if m.benchmark else None,
                                    m.detail) for m in data.missing]
        return out

    def _add_benchmarks(self, data: CheckData, primary: bool) -> dict[str, str]:
        """Add a check's benchmarks (a repeated name gets the check's label); returns old -> new names."""
        seen = {b.name for b in self.benchmarks}
        renamed: dict[str, str] = {}
        for spec in _specs(data):
            name = spec.name if spec.name not in seen else f"{data.check}.{spec.name}"
            display = spec.title if name == spec.name else f"{spec.title} ({data.check})"
            renamed[spec.name] = name
            seen.add(name)
            self.benchmarks.append(dataclasses.replace(spec, name=name, display=display,
                                                       in_average=spec.in_average and primary))
        return renamed

    def _add_facts(self, data: CheckData, primary: bool) -> None:
        for model, facts in data.facts.items():
            self.facts.setdefault(model, {}).update(facts)
        for spec in data.fact_specs:
            if spec.name == "average":  # the suite's Average: its bands, when this is the primary suite
                self.average_bands = spec.bands if primary else self.average_bands
                continue
            self.fact_specs.setdefault(spec.name, dataclasses.replace(spec, check=spec.check or data.check))

    # -- lookups -----------------------------------------------------------------------------------------

    def benchmark(self, name: str) -> MetricSpec | None:
        return next((b for b in self.benchmarks if b.name == name), None)

    def spec(self, name: str) -> MetricSpec | None:
        """How to read a benchmark or fact (None for a name no check declared)."""
        return self.benchmark(name) or self.fact_specs.get(name)

    def benchmark_names(self) -> list[str]:
        return [b.name for b in self.benchmarks]

    def score(self, model: str, benchmark: str) -> ScoreData | None:
        return self.scores.get(model, {}).get(benchmark)

    def value(self, model: str, benchmark: str) -> float | None:
        s = self.score(model, benchmark)
        return s.value if s else None

    @property
    def average_benchmarks(self) -> list[MetricSpec]:
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

    def usable(self, model: str, metric: str) -> float | None:
        """A complete result (the value `metric` gives without a reason against it), else None."""
        value, why = self.metric(model, metric)
        return None if why else value

    def usable_values(self, models: list[PlanModel], metric: str) -> dict[str, float] | None:
        """Every model's complete result on `metric`, or None when one of them has none."""
        values = {m.name: self.usable(m.name, metric) for m in models}
        known = {name: v for name, v in values.items() if v is not None}
        return known if len(known) == len(values) else None

    def _benchmark_value(self, model: str, benchmark: str) -> tuple[float | None, str]:
        s = self.score(model, benchmark)
        if s is not None and s.value is None and s.reason:
            return None, s.reason
        if s is None or s.n == 0 or s.value is None:
            return None, f"{model} has no {benchmark} results"
        if s.n < s.n_target and not s.stopped_early:  # an adaptive run's early decision is a result
            return None, f"{model}'s {benchmark} is incomplete ({s.n} of {s.n_target} items)"
        return s.value, ""

    def by_role(self, role: str) -> list[PlanModel]:
        return [m for m in self.models if m.role == role]

    # -- bands ---------------------------------------------------------------------------------------------

    def bands(self, model: str) -> dict[str, str | None]:
        """The model's quality-band labels: the Average's (report key "leaderboard"), then one per banded metric."""
        average = self.average(model)
        out: dict[str, str | None] = {
            AVERAGE_BAND: band_label(self.average_bands, average) or None if average is not None else None
        }
        for spec in [*self.benchmarks, *self.fact_specs.values()]:
            if spec.bands:
                value = self.metric(model, spec.name)[0]
                out[spec.name] = band_label(spec.bands, value) or None if value is not None else None
        return out

    def band_note(self, metric: str, value: float) -> str:
        """A gate detail's band ("MT-Bench band: good"; the Average's says when it rests on a subset)."""
        if metric == "average":
            if not self.average_bands:
                return ""
            subset = f", on a limit={self.limit} subset" if self.limit else ""
            return f"{AVERAGE_BAND} band: {band_label(self.average_bands, value)}{subset}"
        spec = self.spec(metric)
        return f"{spec.title} band: {band_label(spec.bands, value)}" if spec and spec.bands else ""

    # -- what gates read besides numbers (mergeval.plan.gates.GateData) ---------------------------------------

    def sanity_rows(self, model: str) -> list[Mapping[str, Any]]:
        return [r for r in self.sanity if r["model"] == model]

    def has_check(self, check_type: str) -> bool:
        return any(c.type == check_type for c in self.plan.checks)

    @property
    def tolerance(self) -> float:
        return self.plan.settings.tolerance

    @property
    def sign_off(self) -> Any:
        return self.plan.sign_off

    def not_measured(self, metric: str) -> str:
        """What to do about a metric no result exists for."""
        vocab = plan_vocabulary(self.plan)
        if metric in vocab.benchmarks or metric in vocab.facts or metric == "average":
            return "run `mergeval run` to evaluate it"
        provider = known_metrics().get(metric)
        if provider and provider not in check_configs():
            return f"no check in the plan measures {metric} (check type '{provider}' is not in this install)"
        if provider:
            return f"no check in the plan measures {metric}; add `- type: {provider}` to `checks:`"
        return f"no check in the plan measures {metric}"
