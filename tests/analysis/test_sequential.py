"""Anytime-valid confidence sequences, rule decisions and racing (mergeval.analysis.sequential).

Monte Carlo checks use fixed seeds and loose tolerances: they are deterministic and cannot flake, and each
can fail (a CS that misses too often, is not exact at n = N, is trivially wide, or a race that drops the best).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mergeval.analysis.sequential import (
    ConfidenceSequence,
    Decision,
    Race,
    Rule,
    RuleMonitor,
    combine_decisions,
    compare_rule,
    decide,
    decide_rule,
    race,
    random_order,
    sampling_order,
    split_alpha,
    threshold_rule,
)
from mergeval.errors import UserError


def _run(pop, order, cs, round_size, weights=None):
    """Feed `pop` in `order` round by round; yield (n, lower, upper) after each round."""
    for start in range(0, len(order), round_size):
        idx = order[start : start + round_size]
        cs.update(pop[idx], None if weights is None else weights[idx])
        yield cs.n, cs.lower, cs.upper


def _miss_rate(pop, *, alpha, method, runs, round_size, seed, weights=None, bounds=(0.0, 1.0)):
    rng = np.random.default_rng(seed)
    n = len(pop)
    tw = None if weights is None else float(np.sum(weights))
    truth = float(np.mean(pop)) if weights is None else float(np.sum(weights * pop) / np.sum(weights))
    misses, half_widths = 0, []
    for _ in range(runs):
        order = random_order(n, rng, weights)
        cs = ConfidenceSequence(n, alpha, bounds=bounds, method=method, total_weight=tw)
        missed = False
        for k, lo, hi in _run(pop, order, cs, round_size, weights):
            if not lo - 1e-12 <= truth <= hi + 1e-12:
                missed = True
            if k == (n // 2 // round_size) * round_size:
                half_widths.append(hi - lo)
        misses += missed
        assert cs.lower == pytest.approx(truth, abs=1e-12) and cs.upper == pytest.approx(truth, abs=1e-12)
    return misses / runs, float(np.mean(half_widths))


@pytest.mark.parametrize("method", ["betting", "eb"])
def test_covers_the_finite_population_mean_uniformly_over_time(method):
    rng = np.random.default_rng(11)
    pop = (rng.random(240) < 0.45).astype(float)
    miss, width = _miss_rate(pop, alpha=0.1, method=method, runs=250, round_size=12, seed=1)
    assert miss <= 0.1 + 0.04
    # and it is informative: at half the population, far narrower than the trivial [0, 1]
    assert width < 0.4


def test_covers_paired_differences_in_minus_one_one():
    rng = np.random.default_rng(12)
    u = rng.random(300)
    pop = np.where(u < 0.12, 1.0, np.where(u < 0.22, -1.0, 0.0))  # sparse discordant pairs
    miss, width = _miss_rate(
        pop, alpha=0.1, method="betting", runs=250, round_size=15, seed=2, bounds=(-1, 1)
    )
    assert miss <= 0.14
    assert width < 0.35


def test_covers_a_weighted_mean_with_the_weighted_order():
    # MMLU-like: the score is the mean of the strata (item weight 1 / stratum size), strata of unequal
    # size and accuracy; the order draws items with probability proportional to weight
    sizes = np.array([6, 10, 30, 80, 120])
    strata = np.repeat(np.arange(5), sizes)
    rng = np.random.default_rng(13)
    pop = (rng.random(strata.size) < np.array([0.95, 0.8, 0.5, 0.3, 0.15])[strata]).astype(float)
    w = 1.0 / sizes[strata]
    miss, _ = _miss_rate(pop, alpha=0.1, method="betting", runs=200, round_size=12, seed=3, weights=w)
    assert miss <= 0.14
    # the macro mean differs from the item mean, so covering it is not an accident of the plain mean
    assert abs(np.sum(w * pop) / np.sum(w) - pop.mean()) > 0.1


def test_exact_at_the_end_and_tight_just_before():
    rng = np.random.default_rng(4)
    pop = rng.random(101)
    for method in ("betting", "eb"):
        cs = ConfidenceSequence(101, 0.05, method=method)
        cs.update(pop[:100])
        assert cs.lower <= pop.mean() <= cs.upper
        assert cs.upper - cs.lower <= 1 / 101 + 1e-12  # one unseen item in [0, 1]
        cs.update(pop[100:])
        assert cs.complete
        assert cs.lower == cs.upper == pytest.approx(pop.mean(), abs=1e-12)
        assert cs.estimate == pytest.approx(pop.mean(), abs=1e-12)


def _continue_identically(make, rounds, split_at):
    """Run `rounds` on one object; on a second, serialise after `split_at` rounds and continue."""
    a, b = make(), make()
    trace_a, trace_b = [], []
    for i, r in enumerate(rounds):
        a.update(*r)
        trace_a.append(json.dumps(a.to_dict(), sort_keys=True))
        if i == split_at:
            b.update(*r)
            b = type(b).from_dict(json.loads(json.dumps(b.to_dict())))
        else:
            b.update(*r)
        trace_b.append(json.dumps(b.to_dict(), sort_keys=True))
    assert trace_a == trace_b
    return a, b


@pytest.mark.parametrize("method", ["betting", "eb"])
def test_json_round_trip_continues_identically(method):
    rng = np.random.default_rng(5)
    d = rng.choice([-1.0, 0.0, 0.0, 0.0, 1.0, 1.0], size=500)
    rounds = [(d[i : i + 50],) for i in range(0, 500, 50)]
    a, b = _continue_identically(
        lambda: ConfidenceSequence(500, 0.05, bounds=(-1, 1), method=method), rounds, split_at=3
    )
    assert (a.lower, a.upper, a.n) == (b.lower, b.upper, b.n) == (d.mean(), d.mean(), 500)


def test_json_round_trip_weighted_monitor_and_race():
    rng = np.random.default_rng(6)
    sizes = np.array([20, 60, 120])
    w_all = 1.0 / sizes[np.repeat(np.arange(3), sizes)]
    scores = (rng.random((200, 3)) < [0.7, 0.6, 0.5]).astype(float)
    order = random_order(200, rng, w_all)
    rules = [
        compare_rule("vs_a", 0, 1, 3, margin=0.02),
        threshold_rule("retention", [1.0, -0.475, -0.475], 0.0),
    ]
    rounds = [(scores[order[i : i + 25]], w_all[order[i : i + 25]]) for i in range(0, 200, 25)]
    _continue_identically(lambda: RuleMonitor(rules, 200, 0.025, total_weight=3.0), rounds, split_at=2)

    cand = (rng.random((300, 5)) < [0.8, 0.78, 0.6, 0.5, 0.3]).astype(float)
    race_rounds = [(cand[i : i + 30],) for i in range(0, 90, 30)]
    _continue_identically(lambda: Race(5, 300, 0.05, margin=0.02), race_rounds, split_at=0)


def test_a_bad_round_leaves_the_state_untouched():
    cs = ConfidenceSequence(10, 0.05)
    cs.update([0.0, 1.0, 1.0])
    before = json.dumps(cs.to_dict(), sort_keys=True)
    with pytest.raises(UserError, match="outside"):
        cs.update([0.5, 70.0])  # a percentage, not a 0-1 score
    with pytest.raises(UserError, match="observed once"):
        cs.update(np.zeros(8))
    with pytest.raises(UserError, match="NaN"):
        cs.update([float("nan")])
    with pytest.raises(UserError, match="plain mean"):
        cs.update([1.0], weights=[1.0])
    assert json.dumps(cs.to_dict(), sort_keys=True) == before
    weighted = ConfidenceSequence(3, 0.05, total_weight=3.0)
    with pytest.raises(UserError, match="weight"):
        weighted.update([1.0, 0.0])
    with pytest.raises(UserError, match="add up"):
        weighted.update([1.0, 0.0, 1.0], weights=[1.0, 1.0, 2.0])
    assert weighted.n == 0


def test_damaged_or_foreign_state_is_one_clear_error():
    good = ConfidenceSequence(10, 0.05).update([1.0, 0.0]).to_dict()
    with pytest.raises(UserError, match="rerun with --full"):
        ConfidenceSequence.from_dict({**good, "version": 99})
    broken = json.loads(json.dumps(good))
    broken["betting"]["log_k_plus"] = broken["betting"]["log_k_plus"][:-1]
    with pytest.raises(UserError, match="damaged"):
        ConfidenceSequence.from_dict(broken)
    with pytest.raises(UserError, match="not a confidence sequence"):
        ConfidenceSequence.from_dict({"kind": "something else"})


def test_parameters_are_checked():
    with pytest.raises(UserError, match="alpha"):
        ConfidenceSequence(10, 1.5)
    with pytest.raises(UserError, match="method"):
        ConfidenceSequence(10, 0.05, method="bayes")
    with pytest.raises(UserError, match="power of two"):
        ConfidenceSequence(10, 0.05, grid_size=1000)
    with pytest.raises(UserError, match="margin"):
        compare_rule("x", 0, 1, 2, margin=-0.01)
    with pytest.raises(UserError, match="two different"):
        compare_rule("x", 1, 1, 2)
    assert split_alpha(0.05, 4) == 0.0125
    with pytest.raises(UserError):
        split_alpha(0.05, 0)


# ------------------------------------------------------------------------------------------- rules


def test_decisions_on_hand_built_intervals():
    diff = compare_rule("d", 0, 1, 2, margin=0.01)
    assert decide(diff, 0.02, 0.05) == ("better", 1)
    assert decide(diff, 0.005, 0.05) == ("undecided", 0)  # above 0 but not surely above the margin
    assert decide(diff, -0.05, -0.02) == ("worse", -1)
    assert decide(diff, -0.008, 0.009) == ("within", 0)
    assert decide(diff, -0.008, 0.02) == ("undecided", 0)
    assert decide(diff, 0.01, 0.01) == ("within", 0)  # exactly on the margin: within

    sign = compare_rule("d", 0, 1, 2, margin=0.01, mode="sign")
    assert decide(sign, 0.001, 0.2) == ("better", 1)
    assert decide(sign, -0.2, -0.001) == ("worse", -1)
    assert decide(sign, -0.004, 0.006) == ("within", 0)
    assert decide(sign, -0.004, 0.03) == ("undecided", 0)
    assert decide(compare_rule("d", 0, 1, 2), 0.0, 0.0) == ("within", 0)  # no margin: a tie

    gate = threshold_rule("keep 95%", [1.0, -0.95], 0.0)
    assert gate.bounds == (-0.95, 1.0)
    assert decide(gate, 0.001, 0.1) == ("pass", 1)
    assert decide(gate, 0.0, 0.0) == ("pass", 1)  # >= threshold
    assert decide(gate, -0.1, -0.001) == ("fail", -1)
    assert decide(gate, -0.01, 0.01) == ("undecided", 0)


def test_rules_on_paired_observations():
    rng = np.random.default_rng(7)
    n = 2000
    ref = (rng.random(n) < 0.55).astype(float)
    cand = ref.copy()
    flip_up = rng.choice(np.nonzero(ref == 0)[0], 220, replace=False)  # cand right where ref wrong
    cand[flip_up] = 1.0
    scores = np.column_stack([cand, ref])[:600]  # the first 600 of a random order (items are iid here)
    better = decide_rule(compare_rule("d", 0, 1, 2, margin=0.01), scores, population_size=n, alpha=0.05)
    assert better.verdict == "better" and better.direction == 1 and better.lower > 0.01
    assert better.n == 600 and not better.exact
    worse = decide_rule(compare_rule("d", 1, 0, 2, margin=0.01), scores, population_size=n, alpha=0.05)
    assert worse.verdict == "worse" and worse.upper < -0.01
    # merged >= 0.95 x reference: passes; merged >= 1.5 x reference: fails
    keep = decide_rule(threshold_rule("keep", [1.0, -0.95]), scores, population_size=n, alpha=0.05)
    assert keep.verdict == "pass"
    lofty = decide_rule(threshold_rule("lofty", [1.0, -1.5]), scores, population_size=n, alpha=0.05)
    assert lofty.verdict == "fail"
    # with all items the verdict is the full evaluation's, even exactly on the boundary
    ref2 = np.array([1.0] * 20 + [0.0] * 80)
    cand2 = np.array([1.0] * 19 + [0.0] * 81)  # 0.19 = 0.95 x 0.20 exactly
    exact = decide_rule(
        threshold_rule("keep", [1.0, -0.95]), np.column_stack([cand2, ref2]), population_size=100
    )
    assert exact.exact and exact.verdict == "pass"
    tie = decide_rule(compare_rule("d", 0, 1, 2), np.column_stack([ref2[::-1], ref2]), population_size=100)
    assert tie.verdict == "within" and tie.lower == tie.upper == 0.0


def test_no_regression_against_the_weaker_parent_combines_rules():
    def d(verdict):
        return Decision(verdict, verdict, 0, 0.0, 0.0, None, 1, 10, False)

    assert combine_decisions([d("pass"), d("undecided")], "any") == "pass"
    assert combine_decisions([d("fail"), d("fail")], "any") == "fail"
    assert combine_decisions([d("fail"), d("undecided")], "any") == "undecided"
    assert combine_decisions([d("pass"), d("undecided")], "all") == "undecided"
    assert combine_decisions([d("pass"), d("fail")], "all") == "fail"


def test_monitor_stops_when_every_rule_is_decided():
    rng = np.random.default_rng(8)
    n = 3000
    ref_a = (rng.random(n) < 0.5).astype(float)
    ref_b = (rng.random(n) < 0.5).astype(float)
    cand = np.maximum(ref_a, (rng.random(n) < 0.3).astype(float))  # clearly better than both
    scores = np.column_stack([cand, ref_a, ref_b])
    rules = [compare_rule("vs_a", 0, 1, 3, margin=0.01), compare_rule("vs_b", 0, 2, 3, margin=0.01)]
    mon = RuleMonitor(rules, n, split_alpha(0.05, 2))
    for start in range(0, n, 100):
        mon.update(scores[start : start + 100])
        if mon.done:
            break
    assert mon.done and mon.n < n / 2
    assert [dec.verdict for dec in mon.decisions()] == ["better", "better"]
    # a rule that needs every item (a "difference of exactly 0" with no margin) runs to the end
    tied = RuleMonitor([compare_rule("self", 0, 1, 2)], n, 0.05)
    for start in range(0, n, 500):
        tied.update(np.column_stack([ref_a, ref_a])[start : start + 500])
        assert tied.done == (tied.n == n)
    assert tied.decisions()[0].verdict == "within" and tied.decisions()[0].exact


# ------------------------------------------------------------------------------------------ orders


def test_sampling_order_is_seeded_and_content_based():
    ids = [f"q{i}" for i in range(300)]
    order = sampling_order(ids, seed=3)
    assert sorted(order) == list(range(300))
    assert order == sampling_order(ids, seed=3)
    assert order != sampling_order(ids, seed=4)
    # the same items listed in another order come out in the same item order
    shuffled = ids[::-1]
    assert [ids[i] for i in order] == [shuffled[i] for i in sampling_order(shuffled, seed=3)]
    with pytest.raises(UserError, match="unique"):
        sampling_order(["a", "a"], seed=0)


def test_weighted_order_draws_heavy_items_first():
    ids = [f"q{i}" for i in range(400)]
    w = np.where(np.arange(400) < 40, 10.0, 1.0)  # 40 items with 10x the weight: half the total weight
    first_100 = sampling_order(ids, seed=1, weights=w)[:100]
    heavy = sum(1 for i in first_100 if i < 40)
    assert heavy > 30  # about half of the early draws, not 10% as in a uniform order
    with pytest.raises(UserError, match="weights"):
        sampling_order(ids, seed=1, weights=np.zeros(400))


def test_importing_needs_no_scipy():
    code = "import sys, mergeval.analysis.sequential; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------- racing


def _candidates(rng, means, n, shared=0.6):
    """Correlated 0/1 item scores (candidates x items) with the given expected means."""
    from statistics import NormalDist

    z_item = rng.normal(size=n)
    rows = []
    for m in means:
        z = np.sqrt(shared) * z_item + np.sqrt(1 - shared) * rng.normal(size=n)
        rows.append((z < NormalDist().inv_cdf(m)).astype(float))
    return np.array(rows)


def test_racing_keeps_the_best_and_saves_evaluations():
    rng = np.random.default_rng(9)
    means = [0.70, 0.66, 0.62, 0.55, 0.50, 0.45, 0.40, 0.30]
    lost, fractions = 0, []
    for rep in range(12):
        scores = _candidates(rng, means, 2000)
        full = scores.mean(axis=1)
        best = int(np.argmax(full))
        res = race(scores, alpha=0.05, margin=0.0, block=50, seed=rep)
        lost += res.winner != best
        fractions.append(res.evaluations_fraction)
        assert all(best in r or res.winner == best for r in res.survivors_per_round)
        assert res.survivors_per_round[-1] == [res.winner] or res.reason == "all items"
        assert sum(res.items_per_round) == res.items_used
    assert lost <= 1
    assert np.mean(fractions) < 0.6


def test_racing_with_a_margin_stops_on_near_ties():
    rng = np.random.default_rng(10)
    scores = _candidates(rng, [0.60, 0.598, 0.40, 0.35], 4000, shared=0.8)
    full = scores.mean(axis=1)
    res = race(scores, alpha=0.05, margin=0.02, block=100, seed=0)
    assert full[res.winner] >= full.max() - 0.02
    assert res.reason == "within margin" and res.items_used < 4000
    unpaired = race(scores, alpha=0.05, margin=0.02, block=100, seed=0, paired=False)
    assert full[unpaired.winner] >= full.max() - 0.02
    # pairing uses the correlation between candidates: fewer items than per-candidate intervals
    assert res.items_used < unpaired.items_used


def test_race_input_errors():
    with pytest.raises(UserError, match="at least 2"):
        race(np.zeros((1, 10)))
    rc = Race(3, 10)
    with pytest.raises(UserError, match="3 candidate columns"):
        rc.update(np.zeros((2, 2)))
    with pytest.raises(UserError, match="finite score"):
        rc.update(np.array([[0.0, 2.0, 1.0]]))
    with pytest.raises(UserError, match="not decided"):
        rc.result()


def test_rule_round_trips_through_dict():
    r = Rule("x", (1, -0.5, -0.5), kind="threshold", threshold=0.01)
    assert Rule.from_dict(json.loads(json.dumps(r.to_dict()))) == r
