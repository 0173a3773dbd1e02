"""Tests of mergeval.analysis.stats against closed forms, scipy and statsmodels on synthetic per-item data."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.contingency_tables import mcnemar as statsmodels_mcnemar
from statsmodels.stats.multitest import multipletests

from mergeval.analysis import (
    compare_many,
    holm,
    mcnemar_exact,
    mean_ci_bootstrap,
    minimum_detectable_difference,
    pair_scores,
    paired_bootstrap,
    paired_comparison,
    paired_ttest,
    stderr,
)
from mergeval.errors import UserError


def as_items(values, prefix="q"):
    return {f"{prefix}{i}": float(v) for i, v in enumerate(values)}


def binary_pairs(n11: int, n10: int, n01: int, n00: int, seed: int = 0):
    """Per-item 0/1 scores of a and b with the given 2x2 table (n10: a right and b wrong), shuffled."""
    a = np.array([1] * n11 + [1] * n10 + [0] * n01 + [0] * n00)
    b = np.array([1] * n11 + [0] * n10 + [1] * n01 + [0] * n00)
    order = np.random.default_rng(seed).permutation(len(a))
    return as_items(a[order]), as_items(b[order])


# --- pairing ---------------------------------------------------------------------------------------


def test_pairing_aligns_on_common_ids_and_counts_missing_items():
    a = {"x": 1.0, "y": 0.0, "z": 1.0, "only_a": 1.0}
    b = {"z": 0.0, "x": 1.0, "y": 1.0, "only_b1": 0.0, "only_b2": 1.0}
    paired = pair_scores(a, b)
    assert paired.item_ids == ("x", "y", "z")
    assert paired.a.tolist() == [1.0, 0.0, 1.0]
    assert paired.b.tolist() == [1.0, 1.0, 0.0]
    assert (paired.n_paired, paired.n_only_a, paired.n_only_b) == (3, 1, 2)

    result = paired_comparison(a, b, n_boot=200)
    assert result.n_paired == 3
    assert result.n_missing_a == 2  # the two items only b has
    assert result.n_missing_b == 1


def test_pairing_accepts_arrays_with_ids():
    paired = pair_scores([0.5, 0.25, 1.0], {"c": 0.0, "a": 1.0}, ids_a=["a", "b", "c"])
    assert paired.item_ids == ("a", "c")
    assert paired.a.tolist() == [0.5, 1.0]
    assert paired.b.tolist() == [1.0, 0.0]
    assert (paired.n_only_a, paired.n_only_b) == (1, 0)


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "message"),
    [
        ({"x": 1.0}, {"y": 1.0}, {}, "no scored item in common"),
        ({"x": float("nan")}, {"x": 1.0}, {}, "finite number"),
        ([1.0, 0.0], {"x": 1.0}, {}, "ids_a"),
        ([1.0, 0.0], {"x": 1.0}, {"ids_a": ["x", "x"]}, "duplicate"),
        ([1.0, 0.0], {"x": 1.0}, {"ids_a": ["x"]}, "has 1 ids but there are 2 scores"),
    ],
)
def test_pairing_rejects_bad_input_with_a_clear_message(a, b, kwargs, message):
    with pytest.raises(UserError, match=message):
        pair_scores(a, b, **kwargs)


# --- identical models and a constant shift ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_identical_models_differ_by_nothing(kind):
    rng = np.random.default_rng(3)
    values = rng.integers(0, 2, 500) if kind == "binary" else rng.normal(size=500)
    result = paired_comparison(as_items(values), as_items(values), n_boot=2000)
    assert result.diff == 0.0
    assert result.ci_low <= 0.0 <= result.ci_high
    assert result.p_bootstrap == 1.0
    assert result.p_ttest == 1.0
    assert result.p_value == 1.0
    assert not result.significant
    assert result.mdd == 0.0  # no item ever differs: the spread of the differences is 0
    if kind == "binary":
        assert result.binary and result.test_used == "mcnemar" and result.p_mcnemar == 1.0
    else:
        assert not result.binary and result.test_used == "bootstrap" and result.p_mcnemar is None


def test_constant_shift_is_recovered_exactly_and_is_significant():
    rng = np.random.default_rng(4)
    reference = rng.normal(size=300)
    result = paired_comparison(as_items(reference + 0.25), as_items(reference), n_boot=1000)
    assert result.diff == pytest.approx(0.25)
    assert result.ci_low == pytest.approx(0.25) and result.ci_high == pytest.approx(0.25)
    assert result.mean_a - result.mean_b == pytest.approx(0.25)
    assert result.p_ttest == 0.0  # the zero-spread limit, whatever float noise the subtraction left
    assert result.p_bootstrap == pytest.approx(2 / 1001)  # the smallest p 1000 resamples can give
    assert result.significant
    assert result.n_a_better == 300 and result.n_b_better == 0


def test_a_single_pair_is_never_significant():
    result = paired_comparison({"x": 0.9}, {"x": 0.1}, n_boot=500)
    assert result.diff == pytest.approx(0.8)
    assert result.p_value == 1.0 and result.p_ttest == 1.0
    assert not result.significant
    assert math.isinf(result.mdd)


# --- McNemar ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n11", "n10", "n01", "n00"),
    [(40, 12, 3, 45), (10, 0, 0, 5), (0, 7, 1, 0), (100, 25, 25, 50), (500, 61, 40, 399), (3, 1, 0, 2)],
)
def test_mcnemar_matches_statsmodels_exact(n11, n10, n01, n00):
    expected = statsmodels_mcnemar([[n11, n10], [n01, n00]], exact=True).pvalue
    assert mcnemar_exact(n10, n01) == pytest.approx(expected, rel=1e-12, abs=1e-15)

    a, b = binary_pairs(n11, n10, n01, n00)
    result = paired_comparison(a, b, n_boot=500)
    assert result.binary and result.test_used == "mcnemar"
    assert (result.n_a_better, result.n_b_better) == (n10, n01)
    assert result.p_mcnemar == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert result.p_value == result.p_mcnemar
    assert result.diff == pytest.approx((n10 - n01) / (n11 + n10 + n01 + n00))


def test_mcnemar_is_the_binomial_test_on_discordant_pairs():
    assert mcnemar_exact(30, 14) == pytest.approx(scipy_stats.binomtest(30, 44, 0.5).pvalue)
    assert mcnemar_exact(14, 30) == mcnemar_exact(30, 14)
    with pytest.raises(UserError):
        mcnemar_exact(-1, 3)


def test_binary_detection_and_its_override():
    a, b = binary_pairs(40, 12, 3, 45)
    assert paired_comparison(a, b, binary=False, n_boot=500).test_used == "bootstrap"
    assert paired_comparison(a, b, binary=False, n_boot=500).p_mcnemar is None
    graded = {key: value * 0.5 for key, value in a.items()}  # scores in {0, 0.5}: not a 0/1 metric
    assert not paired_comparison(graded, b, n_boot=500).binary
    with pytest.raises(UserError, match="not all 0 or 1"):
        paired_comparison(graded, b, binary=True)


# --- paired t-test ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ttest_matches_scipy_ttest_rel(seed):
    rng = np.random.default_rng(seed)
    b = rng.normal(size=80)
    a = b + rng.normal(0.1, 0.5, size=80)
    expected = scipy_stats.ttest_rel(a, b).pvalue
    assert paired_ttest(a, b) == pytest.approx(expected, rel=1e-12)
    assert paired_comparison(as_items(a), as_items(b), n_boot=200).p_ttest == pytest.approx(expected)


def test_ttest_zero_variance_differences_are_decided_not_nan():
    assert paired_ttest([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0  # scipy: NaN
    assert paired_ttest([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]) == 0.0
    assert paired_ttest([2.0], [1.0]) == 1.0  # scipy: NaN (0 degrees of freedom)


# --- Holm ------------------------------------------------------------------------------------------


def test_holm_hand_worked_example():
    # Sorted: 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; 0.04 * 1 = 0.04 -> raised to 0.06 to stay monotone.
    assert holm({"arc": 0.01, "mmlu": 0.04, "gsm8k": 0.03}) == pytest.approx(
        {"arc": 0.03, "mmlu": 0.06, "gsm8k": 0.06}
    )
    assert holm({"only": 0.2}) == {"only": 0.2}
    assert holm({"a": 0.6, "b": 0.7}) == {"a": 1.0, "b": 1.0}
    assert holm({}) == {}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_holm_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    raw = np.concatenate([rng.uniform(0, 0.05, 4), rng.uniform(0, 1, 8), [0.02, 0.02]])  # with a tie
    names = [f"task{i}" for i in range(len(raw))]
    expected = multipletests(raw, method="holm")[1]
    adjusted = holm(dict(zip(names, raw)))
    assert [adjusted[name] for name in names] == pytest.approx(list(expected), rel=1e-12)


def test_holm_rejects_invalid_p_values():
    with pytest.raises(UserError, match="hellaswag"):
        holm({"arc": 0.5, "hellaswag": float("nan")})


# --- stratification --------------------------------------------------------------------------------


def test_stratified_macro_mean_is_the_mean_of_per_stratum_means():
    rng = np.random.default_rng(5)
    sizes = {"algebra": 20, "anatomy": 150, "virology": 60}  # unequal, so macro != micro
    a, b, strata = {}, {}, {}
    for subject, size in sizes.items():
        for i in range(size):
            item = f"{subject}-{i}"
            a[item] = float(rng.random() < 0.8)
            b[item] = float(rng.random() < 0.5)
            strata[item] = subject

    def subject_means(scores):
        return [np.mean([s for item, s in scores.items() if strata[item] == subj]) for subj in sizes]

    macro = paired_comparison(a, b, strata=strata, n_boot=1000)
    assert macro.mean_a == pytest.approx(np.mean(subject_means(a)))
    assert macro.mean_b == pytest.approx(np.mean(subject_means(b)))
    assert macro.diff == pytest.approx(macro.mean_a - macro.mean_b)
    assert macro.stratified_mean == "macro" and macro.n_strata == 3
    assert macro.test_used == "bootstrap" and macro.p_mcnemar is not None  # stratified: bootstrap decides

    micro = paired_comparison(a, b, strata=strata, stratified_mean="micro", n_boot=1000)
    assert micro.mean_a == pytest.approx(np.mean(list(a.values())))
    assert micro.diff == pytest.approx(np.mean(list(a.values())) - np.mean(list(b.values())))
    assert abs(macro.diff - micro.diff) > 1e-6


def test_stratified_bootstrap_resamples_within_strata():
    # Each stratum has a constant difference (1 in one, 0 in the other): resampling inside the strata
    # can never change the macro mean (0.5), while resampling across strata would.
    a = np.array([1.0] * 30 + [0.0] * 70)
    b = np.zeros(100)
    labels = ["hard"] * 30 + ["easy"] * 70
    stratified = paired_bootstrap(a, b, strata=labels, n_boot=2000)
    assert stratified.estimate == 0.5
    assert stratified.ci_low == pytest.approx(0.5) and stratified.ci_high == pytest.approx(0.5)
    micro = paired_bootstrap(a, b, strata=labels, stratified_mean="micro", n_boot=2000)
    assert micro.ci_low == pytest.approx(0.3) and micro.ci_high == pytest.approx(0.3)
    pooled = paired_bootstrap(a, b, n_boot=2000)
    assert pooled.estimate == pytest.approx(0.3)
    assert pooled.ci_low < 0.25 and pooled.ci_high > 0.35


def test_strata_must_label_every_compared_item():
    with pytest.raises(UserError, match="no stratum label"):
        paired_comparison({"x": 1.0, "y": 0.0}, {"x": 0.0, "y": 0.0}, strata={"x": "math"})
    with pytest.raises(UserError, match="macro"):
        paired_comparison({"x": 1.0, "y": 0.0}, {"x": 0.0, "y": 0.0}, stratified_mean="weighted")


# --- bootstrap calibration -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_bootstrap_ci_agrees_with_scipy_bootstrap(kind):
    # 0/1 data takes the multinomial shortcut, continuous data the index sampling; both must give the
    # same interval as scipy's own percentile bootstrap up to Monte Carlo error.
    rng = np.random.default_rng(6)
    if kind == "binary":
        b = rng.integers(0, 2, 2000).astype(float)
        a = np.where(rng.random(2000) < 0.15, 1 - b, b)
    else:
        b = rng.normal(size=2000)
        a = b + rng.standard_t(3, size=2000) * 0.5 + 0.03
    ours = paired_bootstrap(a, b, n_boot=10_000, seed=1)
    theirs = scipy_stats.bootstrap(
        (a - b,), np.mean, n_resamples=10_000, method="percentile", rng=np.random.default_rng(2)
    ).confidence_interval
    width = theirs.high - theirs.low
    assert ours.estimate == pytest.approx(np.mean(a - b))
    assert ours.ci_low == pytest.approx(theirs.low, abs=0.03 * width)
    assert ours.ci_high == pytest.approx(theirs.high, abs=0.03 * width)


def test_bootstrap_ci_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    true_diff = 0.08  # a: accuracy 0.68, b: 0.60, with correlated items
    covered = rejected = 0
    n_simulations = 200
    for i in range(n_simulations):
        difficulty = rng.random(300)
        b = (difficulty < 0.60).astype(float)
        a = np.where(rng.random(300) < 0.5, b, (rng.random(300) < 0.60 + true_diff).astype(float))
        # a agrees with b on half the items and is an independent 0.68-accurate model on the rest, so
        # E[a] = 0.5 * 0.60 + 0.5 * 0.68 and the true difference is half of true_diff.
        result = paired_bootstrap(a, b, n_boot=1000, seed=i)
        covered += result.ci_low <= true_diff / 2 <= result.ci_high
        rejected += result.p_value < 0.05
    assert 0.90 <= covered / n_simulations <= 0.99
    assert rejected > 0  # a real difference is found some of the time (power ~ 0.3 at this n)


def test_bootstrap_p_value_is_consistent_with_the_ci_and_the_ttest():
    rng = np.random.default_rng(8)
    b = rng.normal(size=400)
    for shift, expect_significant in [(0.0, False), (0.2, True)]:
        a = b + shift + rng.normal(0, 1, size=400)
        result = paired_comparison(as_items(a), as_items(b), n_boot=4000, seed=3)
        assert (result.ci_low > 0 or result.ci_high < 0) == (result.p_bootstrap < 0.05)
        assert result.significant == expect_significant
        # for ~normal differences at n = 400 the bootstrap p is close to the t-test's
        assert result.p_bootstrap == pytest.approx(result.p_ttest, abs=0.03)


def test_same_seed_same_result_and_the_seed_matters():
    rng = np.random.default_rng(9)
    a, b = as_items(rng.normal(size=200)), as_items(rng.normal(size=200))
    first = paired_comparison(a, b, n_boot=500, seed=11)
    again = paired_comparison(dict(reversed(list(a.items()))), b, n_boot=500, seed=11)  # order-independent
    other = paired_comparison(a, b, n_boot=500, seed=12)
    assert first == again
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)


# --- minimum detectable difference -----------------------------------------------------------------


def test_mdd_formula():
    factor = scipy_stats.norm.ppf(0.975) + scipy_stats.norm.ppf(0.8)
    assert factor == pytest.approx(2.8016, abs=1e-4)
    assert minimum_detectable_difference(0.5, 100) == pytest.approx(factor * 0.5 / 10)
    assert minimum_detectable_difference(1.0, 400, alpha=0.01, power=0.9) == pytest.approx(
        (scipy_stats.norm.ppf(0.995) + scipy_stats.norm.ppf(0.9)) / 20
    )
    assert math.isinf(minimum_detectable_difference(1.0, 1))

    rng = np.random.default_rng(10)
    b = rng.normal(size=250)
    a = b + rng.normal(0.05, 0.7, size=250)
    continuous = paired_comparison(as_items(a), as_items(b), n_boot=200)
    assert continuous.mdd == pytest.approx(factor * np.std(a - b, ddof=1) / math.sqrt(250))

    a01, b01 = binary_pairs(300, 60, 40, 100)  # discordance rate 100 / 500
    binary = paired_comparison(a01, b01, n_boot=200)
    assert binary.mdd == pytest.approx(factor * math.sqrt(100 / 500) / math.sqrt(500))


def test_mdd_is_detected_with_about_80_percent_power():
    # Simulate paired differences whose true mean is exactly the MDD: the t-test should reject ~80%.
    n, sd = 100, 1.0
    mdd = minimum_detectable_difference(sd, n)
    rng = np.random.default_rng(11)
    rejections = sum(paired_ttest(rng.normal(mdd, sd, n), np.zeros(n)) < 0.05 for _ in range(600))
    assert 0.74 <= rejections / 600 <= 0.86


def test_mdd_of_a_macro_mean_adds_per_stratum_variances():
    a = np.array([1.0, 0.0, 1.0, 1.0] * 10 + [0.3, 0.9] * 50)
    b = np.zeros(140)
    labels = ["small"] * 40 + ["large"] * 100
    items = [f"i{i}" for i in range(140)]
    result = paired_comparison(
        dict(zip(items, a)), dict(zip(items, b)), strata=dict(zip(items, labels)), n_boot=200
    )
    d = a - b
    se = math.sqrt(np.var(d[:40], ddof=1) / 40 + np.var(d[40:], ddof=1) / 100) / 2
    assert result.mdd == pytest.approx((scipy_stats.norm.ppf(0.975) + scipy_stats.norm.ppf(0.8)) * se)


# --- many tasks ------------------------------------------------------------------------------------


def test_compare_many_applies_holm_across_tasks():
    rng = np.random.default_rng(12)
    a_tasks, b_tasks = {}, {}
    for task, shift in [("arc", 0.3), ("hellaswag", 0.0), ("winogrande", 0.12), ("gsm8k", 0.0)]:
        b = rng.normal(size=150)
        a_tasks[task] = as_items(b + shift + rng.normal(0, 0.6, 150))
        b_tasks[task] = as_items(b)
    results = compare_many(a_tasks, b_tasks, n_boot=2000)
    assert list(results) == ["arc", "hellaswag", "winogrande", "gsm8k"]
    expected = holm({task: r.p_value for task, r in results.items()})
    for task, result in results.items():
        assert result.p_adjusted == pytest.approx(expected[task])
        assert result.p_adjusted >= result.p_value
        assert result.significant == (result.p_adjusted < 0.05)
        alone = paired_comparison(a_tasks[task], b_tasks[task], n_boot=2000)
        assert result.p_value == alone.p_value  # same seed per task: the family does not change a task
    assert results["arc"].significant
    assert not results["hellaswag"].significant


def test_compare_many_with_strata_and_mismatched_tasks():
    a, b = binary_pairs(50, 30, 5, 15)
    strata = {item: ("stem" if int(item[1:]) % 2 else "humanities") for item in a}
    results = compare_many({"mmlu": a, "arc": a}, {"mmlu": b, "arc": b}, strata={"mmlu": strata}, n_boot=500)
    assert results["mmlu"].n_strata == 2 and results["mmlu"].test_used == "bootstrap"
    assert results["arc"].n_strata == 1 and results["arc"].test_used == "mcnemar"
    with pytest.raises(UserError, match="only the reference has gsm8k"):
        compare_many({"arc": a}, {"arc": b, "gsm8k": b})


# --- one model's score -----------------------------------------------------------------------------


def test_mean_ci_and_stderr_of_one_model():
    rng = np.random.default_rng(13)
    values = rng.normal(0.6, 0.2, size=500)
    assert stderr(values) == pytest.approx(scipy_stats.sem(values))
    assert math.isnan(stderr([1.0]))

    ci = mean_ci_bootstrap(values, n_boot=10_000, seed=0)
    theirs = scipy_stats.bootstrap(
        (values,), np.mean, n_resamples=10_000, method="percentile", rng=np.random.default_rng(1)
    ).confidence_interval
    assert ci.mean == pytest.approx(np.mean(values)) and ci.n == 500
    assert ci.stderr == pytest.approx(scipy_stats.sem(values))
    assert ci.ci_low < ci.mean < ci.ci_high
    width = theirs.high - theirs.low
    assert ci.ci_low == pytest.approx(theirs.low, abs=0.03 * width)
    assert ci.ci_high == pytest.approx(theirs.high, abs=0.03 * width)


def test_mean_ci_with_strata_by_item_id():
    scores = {"m1": 1.0, "m2": 0.0, "m3": 1.0, "m4": 1.0, "h1": 0.0, "h2": 1.0}
    strata = {"m1": "math", "m2": "math", "m3": "math", "m4": "math", "h1": "history", "h2": "history"}
    macro = mean_ci_bootstrap(scores, strata=strata, n_boot=2000)
    assert macro.mean == pytest.approx((0.75 + 0.5) / 2)
    assert macro.ci_low <= macro.mean <= macro.ci_high
    micro = mean_ci_bootstrap(scores, strata=strata, stratified_mean="micro", n_boot=2000)
    assert micro.mean == pytest.approx(4 / 6)
    with pytest.raises(UserError, match="strata must map item id"):
        mean_ci_bootstrap(scores, strata=["math"] * 6)
