"""The methodology's score bands: labels for numbers, never verdicts.

The bands were set for 7B-class models of early 2024 (docs: METHODOLOGY "Reading the numbers").
"""

from __future__ import annotations

from mergeval.report.terminal import leaderboard_band

MTBENCH_BANDS = [
    (6.0, "poor conversation"),
    (7.0, "acceptable"),
    (8.0, "good"),
    (9.0, "excellent"),
    (float("inf"), "near human level"),
]


def mtbench_band(score: float | None) -> str:
    """The quality band of an MT-Bench score (1-10 scale)."""
    if score is None:
        return ""
    for upper, label in MTBENCH_BANDS:
        if score < upper:
            return label
    return ""


__all__ = ["MTBENCH_BANDS", "leaderboard_band", "mtbench_band"]
