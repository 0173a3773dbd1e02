"""The methodology's score bands: labels for numbers, never verdicts.

Bands are data on the metrics: a check's MetricSpec carries its `bands` (MT-Bench's 1-10 bands, in
mergeval.checks.mtbench), a suite's YAML carries the bands of its Average (`average_bands:` in
leaderboard_v1.yaml). Everything that shows a band (the report's `bands`, a gate's detail, the terminal table)
reads them through `band_label` from those specs. The bands were set for 7B-class models of early 2024 (docs:
METHODOLOGY "Reading the numbers").
"""

from __future__ import annotations

from mergeval.checks.mtbench import MTBENCH_BANDS
from mergeval.core.check import Band, MetricSpec
from mergeval.errors import UserError
from mergeval.report import AVERAGE_BAND
from mergeval.suites import load_suite


def band_label(bands: tuple[Band, ...], value: float | None) -> str:
    """The label of the band `value` falls in ("" for none)."""
    return MetricSpec("band", bands=bands).band(value) or ""


def suite_average_bands(suite: str, n_benchmarks: int) -> tuple[Band, ...]:
    """The bands of a suite's Average (its YAML's `average_bands:`), when the Average covers every benchmark of
    the suite (a band describes the whole suite's Average, not a part of it); () for none."""
    try:
        full = load_suite(suite)
    except UserError:
        return ()
    return full.bands() if n_benchmarks == len(full.benchmarks) else ()


def mtbench_band(score: float | None) -> str:
    """The quality band of an MT-Bench score (1-10 scale)."""
    return band_label(MTBENCH_BANDS, score)


def leaderboard_band(average: float | None) -> str:
    """The quality band of an Open LLM Leaderboard v1 Average (all six benchmarks)."""
    return band_label(load_suite("leaderboard-v1").bands(), average)


__all__ = ["AVERAGE_BAND", "band_label", "leaderboard_band", "mtbench_band", "suite_average_bands"]
