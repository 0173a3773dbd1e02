"""What a check hands to the comparison when it reads its results back from the store (`Check.collect`).

Each check contributes one CheckData: the metrics it measured (MetricSpecs), per-model scores with the
per-item values behind them (for paired statistics), single-number facts, sanity outcomes, and what is
missing. `mergeval.analysis` combines the CheckData of a plan's checks into the comparison; nothing
downstream needs to know which check type produced what.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mergeval.core.check import MetricSpec


@dataclass
class ScoreData:
    """One model's result on one benchmark, with the per-item scores behind it."""

    value: float | None  # on the report scale; None when nothing is stored
    stderr: float | None
    n: int  # items behind the value
    n_target: int  # items the check asks for
    items: dict[str, float] = field(default_factory=dict)  # item id -> raw score (unscaled); {} = no per-item
    strata: dict[str, str] | None = None  # item id -> stratum (e.g. MMLU subject)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # sub-task -> {value, group, n}
    raw: float | None = None  # normalised benchmarks: the raw (engine) score on the report scale
    reason: str | None = None  # why there is no value, when it is known (a gated dataset)
    stopped_early: bool = False  # an adaptive run decided on the first n items (the value is their mean)

    @property
    def complete(self) -> bool:
        return self.value is not None and (self.n >= self.n_target or self.stopped_early)


@dataclass
class Missing:
    """An evaluation the comparison needs and the store does not (fully) hold."""

    model: str
    check: str
    benchmark: str | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "check": self.check, "benchmark": self.benchmark, "detail": self.detail}


@dataclass
class CheckData:
    """Everything one check contributes to the report, read from the store."""

    check: str  # label
    type: str
    benchmarks: list[MetricSpec] = field(default_factory=list)  # kind="benchmark"
    fact_specs: list[MetricSpec] = field(default_factory=list)  # kind="fact"
    scores: dict[str, dict[str, ScoreData]] = field(default_factory=dict)  # model -> benchmark -> score
    facts: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> fact -> value
    sanity: list[dict[str, Any]] = field(default_factory=list)  # {model, check, status, detail}
    missing: list[Missing] = field(default_factory=list)
    suite: dict[str, Any] | None = None  # {name, label, note, ...} for suite checks
    provenance: dict[str, Any] = field(default_factory=dict)
    limit: int | float | None = None


__all__ = ["CheckData", "Missing", "ScoreData"]
