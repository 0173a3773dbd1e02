"""Retention and regression rules on numbers with known answers (the methodology's definitions)."""

import pytest

from mergeval.analysis.retention import regression_row, retention_row, strengths_summary


def test_retention_is_merged_over_mean_of_parents_and_over_best_parent():
    row = retention_row("m", "gsm8k", 57.0, {"a": 60.0, "b": 40.0}, display="GSM8K")
    assert row["vs_mean_parents"] == pytest.approx(57.0 / 50.0)
    assert row["vs_best_parent"] == pytest.approx(57.0 / 60.0)
    assert row["per_parent"] == {"a": pytest.approx(0.95), "b": pytest.approx(57.0 / 40.0)}
    assert row["expected_range"] == [40.0, 60.0]
    assert row["within_range"] is True
    assert "kept 95% of a's 60.00 (best parent)" in row["summary"]
    assert "114% of the parents' mean" in row["summary"]


def test_retention_below_the_mark_and_outside_the_range_is_said():
    row = retention_row("m", "mmlu", 30.0, {"a": 40.0, "b": 50.0}, display="MMLU", threshold=0.95)
    assert row["vs_mean_parents"] == pytest.approx(30 / 45)
    assert row["within_range"] is False
    assert "below the expected range [40.00, 50.00] (worse than every parent)" in row["summary"]
    assert "below the 95% retention mark" in row["summary"]
    above = retention_row("m", "mmlu", 55.0, {"a": 40.0, "b": 50.0})
    assert "above the expected range" in above["summary"] and "better than every parent" in above["summary"]


def test_retention_of_a_zero_parent_score_is_unknown_not_infinite():
    row = retention_row("m", "gsm8k", 3.0, {"a": 0.0})
    assert row["vs_best_parent"] is None and row["per_parent"]["a"] is None


def test_retention_for_lower_is_better_metrics_is_reference_over_merged():
    # perplexity: 8 is better than 10; keeping "100%" means equal, above 100% means better
    row = retention_row("m", "ppl", 8.0, {"a": 10.0, "b": 12.0}, higher_is_better=False)
    assert row["vs_best_parent"] == pytest.approx(10.0 / 8.0)
    assert row["vs_mean_parents"] == pytest.approx(11.0 / 8.0)
    assert "a's 10.00 (best parent)" in row["summary"]


def test_strengths_summary_names_whose_strength_was_lost():
    parents = {"gsm8k": {"a": 60.0, "b": 30.0}, "mmlu": {"a": 40.0, "b": 70.0}}
    rows = [
        retention_row("m", "gsm8k", 58.8, parents["gsm8k"]),
        retention_row("m", "mmlu", 49.7, parents["mmlu"]),
    ]
    text = strengths_summary(rows, parents, {"gsm8k": "GSM8K", "mmlu": "MMLU"})
    assert text == "kept 98% of a's GSM8K, 71% of b's MMLU (lost)"


@pytest.mark.parametrize(
    ("merged", "significant_worse", "significant_better", "verdict", "point_rule"),
    [
        (47.4, True, False, "regression", True),  # below 50 x 0.95 = 47.5, and the paired test agrees
        (47.4, False, False, "possible regression", True),  # below, but not shown by the test
        (47.6, True, False, "ok", False),  # a significant drop within the tolerance is not a regression
        (63.1, False, True, "improvement", False),  # above 60 x 1.05 = 63
        (63.1, False, False, "possible improvement", False),
        (55.0, False, False, "ok", False),
    ],
)
def test_regression_point_rule_and_significance_aware_verdict(
    merged, significant_worse, significant_better, verdict, point_rule
):
    row = regression_row(
        "m",
        "arc",
        merged,
        {"a": 50.0, "b": 60.0},
        tolerance=0.05,
        significant_worse=significant_worse,
        significant_better=significant_better,
        critical=True,
    )
    assert row["threshold"] == pytest.approx(47.5)
    assert row["drop"] == pytest.approx(50.0 - merged)
    assert row["point_rule"] is point_rule
    assert row["verdict"] == verdict
    assert row["critical"] is True
    assert row["parents"] == {"a": 50.0, "b": 60.0}


def test_regression_tolerance_and_lower_is_better():
    assert regression_row("m", "x", 44.0, {"a": 50.0}, tolerance=0.10)["point_rule"] is True
    assert regression_row("m", "x", 46.0, {"a": 50.0}, tolerance=0.10)["point_rule"] is False
    # perplexity: worse means higher; threshold = max(parents) x 1.05
    row = regression_row(
        "m", "ppl", 12.7, {"a": 10.0, "b": 12.0}, higher_is_better=False, significant_worse=True
    )
    assert row["threshold"] == pytest.approx(12.6)
    assert row["point_rule"] is True and row["verdict"] == "regression"
    assert row["drop"] == pytest.approx(0.7)
    better = regression_row("m", "ppl", 9.0, {"a": 10.0, "b": 12.0}, higher_is_better=False)
    assert better["verdict"] == "possible improvement"
