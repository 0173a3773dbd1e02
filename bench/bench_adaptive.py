"""Adaptive evaluation: is the early verdict right, and how many items does it save?

Simulations (no model, no data; the six Open LLM Leaderboard v1 benchmarks at their real sizes):

  (a) validity under optional stopping: paired comparisons whose finite-population difference is exactly 0,
      monitored after every round with the anytime-valid confidence sequence (mergeval.analysis.sequential)
      and, beside it, with a paired t-test that looks after every round; the rate of "better"/"worse"
      verdicts (all of them wrong) with its Monte Carlo 95% interval.
  (b) savings: a candidate vs a reference on the six benchmarks (one comparison rule each, Bonferroni
      alpha / 6), true differences of 0, 1, 2, 5 and 10 points; items evaluated (fraction of the full
      evaluation) and agreement of the verdict with the full evaluation's verdict.
  (c) racing a 16-candidate sweep on the selection half of the six benchmarks (objective: mean of the six
      benchmark scores, MMLU = mean of its 57 subjects): same winner as the full sweep (or one within the
      margin of it) and the fraction of item evaluations.

Item model (IRT-like): item difficulty b_i ~ N(0, 1.5^2) (plus a subject offset for MMLU), a model with ability
theta answers item i correctly when theta - b_i + e > 0, e ~ N(0, 1.7^2) (the normal approximation of a
logistic link); the two models' e on the same item have correlation rho (default 0.5), so their answers are
correlated through the shared difficulty and through rho. TruthfulQA mc2 is a continuous score
sigmoid(theta - b_i + e) in (0, 1). Abilities are set so the expected accuracy is the benchmark's reference
accuracy and the candidate's is that plus the true difference.

Verdicts (margin m, default 1 point): "better" if the difference > m, "worse" if < -m, "within" otherwise;
the full evaluation's verdict is that of the exact finite-population difference d* over all N items (what
`mergeval run` without --adaptive computes), the adaptive verdict is the first one the confidence sequence
supports (three zones that never overlap), or d*'s when the benchmark runs to its end.

Usage:
  python bench/bench_adaptive.py                     # about 2 minutes on 2 cores
  python bench/bench_adaptive.py --quick             # smaller Monte Carlo, about 1 minute
  python bench/bench_adaptive.py --rho 0             # correlation through difficulty only
The last line of output is one JSON object with the headline numbers.

`replay_adaptive` replays real per-item scores (all items evaluated once and stored) adaptively over many
seeded orders; it is what the real-data part (SmolLM2 vs noised variants) calls.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mergeval.analysis.sequential import (
    ConfidenceSequence,
    compare_rule,
    decide,
    race,
    random_order,
    split_alpha,
)

# the 57 MMLU subjects' test sizes (cais/mmlu), alphabetical
MMLU_SUBJECT_SIZES = [
    100, 135, 152, 100, 265, 144, 100, 100, 100, 173, 102, 100, 235, 114, 145, 378, 126, 100, 310, 203, 100,
    165, 198, 193, 390, 270, 238, 151, 545, 216, 204, 237, 223, 131, 121, 108, 163, 112, 103, 234, 100, 783,
    346, 895, 306, 311, 324, 282, 1534, 272, 612, 110, 245, 201, 100, 166, 171,
]  # fmt: skip
assert len(MMLU_SUBJECT_SIZES) == 57 and sum(MMLU_SUBJECT_SIZES) == 14042

# name, items, reference accuracy (a 7B-class model), continuous score?
BENCHMARKS = [
    ("arc_challenge", 1172, 0.55, False),
    ("hellaswag", 10042, 0.78, False),
    ("mmlu", 14042, 0.60, False),
    ("truthfulqa_mc2", 817, 0.45, True),
    ("winogrande", 1267, 0.74, False),
    ("gsm8k", 1319, 0.35, False),
]
B_SD = 1.5  # item difficulty sd
E_SD = 1.7  # per-answer noise sd (normal approximation of the logistic)
SUBJECT_SD = 0.5  # MMLU: subject offsets, part of the difficulty
TAU = math.sqrt(B_SD**2 + E_SD**2)


# ------------------------------------------------------------------------------------ item model


def _norm_ppf(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


_CONT_CACHE: dict[float, float] = {}


def ability(p: float, continuous: bool) -> float:
    """The theta whose expected item score is p."""
    if not continuous:
        return TAU * _norm_ppf(p)
    key = round(p, 6)
    if key not in _CONT_CACHE:
        z = np.random.default_rng(12345).normal(0.0, TAU, 400_000)
        lo, hi = -10.0, 10.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if np.mean(1.0 / (1.0 + np.exp(-(mid + z)))) < p:
                lo = mid
            else:
                hi = mid
        _CONT_CACHE[key] = (lo + hi) / 2
    return _CONT_CACHE[key]


def strata_of(name: str, n: int) -> np.ndarray | None:
    if name != "mmlu":
        return None
    return np.repeat(np.arange(57), MMLU_SUBJECT_SIZES)[:n]


def item_weights(name: str, n: int) -> np.ndarray | None:
    """MMLU's score is the mean of its subjects: item weight 1 / subject size; others: plain mean."""
    st = strata_of(name, n)
    if st is None:
        return None
    sizes = np.bincount(st)
    return 1.0 / sizes[st]


def simulate_models(
    rng: np.random.Generator,
    n: int,
    thetas: list[float],
    rho: float,
    continuous: bool,
    strata: np.ndarray | None = None,
) -> np.ndarray:
    """Item scores (n x models) of models with abilities `thetas`, answer noise equicorrelated by rho."""
    b = rng.normal(0.0, B_SD, n)
    if strata is not None:
        offs = rng.normal(0.0, SUBJECT_SD, strata.max() + 1)
        b = math.sqrt(max(B_SD**2 - SUBJECT_SD**2, 0.0)) / B_SD * b + offs[strata]
    shared = rng.normal(0.0, 1.0, n)
    out = np.empty((n, len(thetas)))
    for k, th in enumerate(thetas):
        e = E_SD * (math.sqrt(rho) * shared + math.sqrt(1.0 - rho) * rng.normal(0.0, 1.0, n))
        z = th - b + e
        out[:, k] = 1.0 / (1.0 + np.exp(-z)) if continuous else (z > 0).astype(float)
    return out


def balance_to_zero(rng: np.random.Generator, pair: np.ndarray) -> np.ndarray:
    """Make the finite-population difference exactly 0 (0/1 scores) by swapping excess discordant items."""
    d = pair[:, 0] - pair[:, 1]
    plus, minus = np.nonzero(d > 0)[0], np.nonzero(d < 0)[0]
    excess = len(plus) - len(minus)
    src = plus if excess > 0 else minus
    k = abs(excess)
    pick = rng.choice(src, size=k, replace=False)
    swap, tie = pick[: k // 2], pick[k // 2 : k // 2 + (k % 2)]
    pair = pair.copy()
    pair[swap] = pair[swap][:, ::-1]
    pair[tie, 0] = pair[tie, 1]
    assert (pair[:, 0] - pair[:, 1]).sum() == 0
    return pair


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, c - h), min(1.0, c + h))


def zone(d: float, margin: float) -> str:
    return "better" if d > margin + 1e-9 else "worse" if d < -margin - 1e-9 else "within"


# ----------------------------------------------------------------------------- one adaptive run


def adaptive_comparison(
    pair: np.ndarray,
    order: np.ndarray,
    *,
    alpha: float,
    margin: float,
    round_size: int,
    weights: np.ndarray | None = None,
    method: str = "betting",
    mode: str = "margin",
) -> tuple[str, int, float, float]:
    """Monitor candidate - reference (columns 0, 1 of `pair`) in rounds; (verdict, items used, lower, upper)."""
    n = pair.shape[0]
    rule = compare_rule("diff", 0, 1, 2, margin=margin, mode=mode)
    tw = None if weights is None else float(math.fsum(weights))
    cs = ConfidenceSequence(n, alpha, bounds=rule.bounds, total_weight=tw, method=method)
    for start in range(0, n, round_size):
        idx = order[start : start + round_size]
        cs.update(rule.values(pair[idx]), None if weights is None else weights[idx])
        verdict, _ = decide(rule, cs.lower, cs.upper)
        if verdict != "undecided":
            return verdict, cs.n, cs.lower, cs.upper
    raise AssertionError("the confidence sequence must decide once every item is in")


def peeking_ttest(d_ordered: np.ndarray, round_size: int, alpha: float = 0.05) -> bool:
    """A paired t-test after every round (fixed-n test used sequentially): True when it ever rejects."""
    from scipy.stats import t as student_t

    n_all = d_ordered.size
    cs1 = np.cumsum(d_ordered)
    cs2 = np.cumsum(d_ordered**2)
    for end in range(round_size, n_all + 1, round_size):
        n = end
        mean = cs1[end - 1] / n
        var = (cs2[end - 1] - n * mean * mean) / (n - 1)
        if var <= 1e-15:
            continue
        t = mean / math.sqrt(var / n)
        if 2 * student_t.sf(abs(t), n - 1) < alpha:
            return True
    return False


# ----------------------------------------------------------------------------------- (a) validity


def validity(runs: int, rho: float, alpha: float, round_size: int, seed: int, method: str) -> dict:
    name, n, p, _ = BENCHMARKS[0]  # ARC-Challenge size and accuracy, 0/1 scores
    rng = np.random.default_rng(seed)
    th = ability(p, False)
    cs_err = tt_err = 0
    items = 0
    for _ in range(runs):
        pair = balance_to_zero(rng, simulate_models(rng, n, [th, th], rho, False))
        order = rng.permutation(n)
        verdict, used, _, _ = adaptive_comparison(
            pair, order, alpha=alpha, margin=0.0, round_size=round_size, method=method
        )
        cs_err += verdict in ("better", "worse")
        items += used
        d = pair[order, 0] - pair[order, 1]
        tt_err += peeking_ttest(d, round_size, alpha)
    return {
        "benchmark": name,
        "items": n,
        "runs": runs,
        "cs_error": cs_err / runs,
        "cs_error_ci": wilson(cs_err, runs),
        "ttest_error": tt_err / runs,
        "ttest_error_ci": wilson(tt_err, runs),
        "looks": math.ceil(n / round_size),
    }


# ------------------------------------------------------------------------------------ (b) savings


def savings(
    diffs: list[float],
    reps: int,
    rho: float,
    alpha: float,
    margin: float,
    round_size: int,
    seed: int,
    method: str,
) -> dict:
    a_rule = split_alpha(alpha, len(BENCHMARKS))
    out: dict = {}
    for diff in diffs:
        rng = np.random.default_rng([seed, round(diff * 100)])
        per: dict = {}
        for name, n, p, cont in BENCHMARKS:
            th_ref, th_cand = ability(p, cont), ability(p + diff / 100.0, cont)
            st = strata_of(name, n)
            w = item_weights(name, n)
            used_sum = agree = 0
            disc = 0.0
            for _ in range(reps):
                pair = simulate_models(rng, n, [th_cand, th_ref], rho, cont, st)
                d_item = pair[:, 0] - pair[:, 1]
                d_star = float(np.sum(w * d_item) / np.sum(w)) if w is not None else float(d_item.mean())
                order = random_order(n, rng, w)
                verdict, used, _, _ = adaptive_comparison(
                    pair, order, alpha=a_rule, margin=margin, round_size=round_size, weights=w, method=method
                )
                used_sum += used
                agree += verdict == zone(d_star, margin)
                disc += float(np.mean(np.abs(d_item) > 0.5)) if not cont else float(np.mean(np.abs(d_item)))
            per[name] = {
                "items": n,
                "fraction": used_sum / (reps * n),
                "agreement": agree / reps,
                "discordance": disc / reps,
            }
        total_items = sum(n for _, n, _, _ in BENCHMARKS)
        summed = sum(per[b]["fraction"] * per[b]["items"] for b in per) / total_items
        agreement = float(np.mean([per[b]["agreement"] for b in per]))
        out[f"{diff:g}"] = {"per_benchmark": per, "summed_fraction": summed, "agreement": agreement}
    return out


# -------------------------------------------------------------------------------------- (c) sweep

SWEEP_OFFSETS = [
    0.0,
    -0.4,
    -0.8,
    -1.3,
    -1.8,
    -2.5,
    -3.0,
    -4.0,
    -5.0,
    -6.5,
    -8.0,
    -10.0,
    -13.0,
    -17.0,
    -22.0,
    -30.0,
]


def sweep(
    reps: int, rho: float, alpha: float, margin: float, block: int, seed: int, method: str, paired: bool
) -> dict:
    """16 merges of the same parents (answers equicorrelated by rho), objective = mean of six benchmarks."""
    rng = np.random.default_rng([seed, 7])
    same = fractions = tied = 0.0
    rounds = []
    parts = []
    for _ in range(reps):
        cols, ws = [], []
        for name, n_full, p, cont in BENCHMARKS:
            n = n_full // 2  # the selection half
            st = strata_of(name, n_full)
            st = None if st is None else st[rng.permutation(n_full)[:n]]
            thetas = [ability(min(0.97, max(0.03, p + off / 100.0)), cont) for off in SWEEP_OFFSETS]
            scores = simulate_models(rng, n, thetas, rho, cont, st)
            if st is None:
                w = np.full(n, 1.0 / n)
            else:
                sizes = np.bincount(st, minlength=57)
                w = 1.0 / (np.count_nonzero(sizes) * sizes[st])
            cols.append(scores)
            ws.append(w / len(BENCHMARKS))
        scores = np.vstack(cols).T  # candidates x items
        w = np.concatenate(ws)
        full = scores @ w / w.sum()
        best = int(np.argmax(full))
        res = race(
            scores,
            alpha=alpha,
            margin=margin,
            block=block,
            weights=w,
            seed=int(rng.integers(2**31)),
            paired=paired,
            method=method,
        )
        same += res.winner == best
        tied += full[res.winner] >= full[best] - margin - 1e-12
        fractions += res.evaluations_fraction
        rounds.append(len(res.items_per_round))
        parts.append(res.reason)
    return {
        "candidates": len(SWEEP_OFFSETS),
        "items": int(sum(n // 2 for _, n, _, _ in BENCHMARKS)),
        "reps": reps,
        "same_winner": same / reps,
        "same_or_within_margin": tied / reps,
        "evaluations_fraction": fractions / reps,
        "mean_rounds": float(np.mean(rounds)),
        "stop_reasons": {r: parts.count(r) for r in sorted(set(parts))},
    }


# ---------------------------------------------------------------------------------- real-data replay


def replay_adaptive(
    per_benchmark: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    *,
    alpha: float = 0.05,
    margin: float = 0.01,
    round_size: int = 64,
    orders: int = 100,
    seed: int = 0,
    method: str = "betting",
) -> dict:
    """Replay stored per-item scores adaptively over `orders` seeded random orders.

    per_benchmark: name -> (candidate scores, reference scores, item weights or None), scores in [0, 1]
    over the same items in the same order (all items evaluated once); weights for a weighted score (MMLU:
    1 / subject size). One comparison rule per benchmark, alpha split over them (Bonferroni). Returns per
    benchmark the full evaluation's verdict and difference, the adaptive verdicts' agreement with it and
    the mean fraction of items used, plus the sums over benchmarks.
    """
    a_rule = split_alpha(alpha, len(per_benchmark))
    rng = np.random.default_rng(seed)
    out: dict = {}
    used_total = items_total = 0
    agree_all = []
    for name, (cand, ref, weights) in per_benchmark.items():
        pair = np.column_stack([np.asarray(cand, float), np.asarray(ref, float)])
        n = pair.shape[0]
        w = None if weights is None else np.asarray(weights, float)
        d_item = pair[:, 0] - pair[:, 1]
        d_star = float(np.sum(w * d_item) / np.sum(w)) if w is not None else float(d_item.mean())
        full_verdict = zone(d_star, margin)
        used = agree = 0
        for _ in range(orders):
            order = random_order(n, rng, w)
            verdict, k, _, _ = adaptive_comparison(
                pair, order, alpha=a_rule, margin=margin, round_size=round_size, weights=w, method=method
            )
            used += k
            agree += verdict == full_verdict
        out[name] = {
            "items": n,
            "difference": d_star,
            "full_verdict": full_verdict,
            "agreement": agree / orders,
            "fraction": used / (orders * n),
        }
        used_total += used / orders
        items_total += n
        agree_all.append(agree / orders)
    out["_summed"] = {"fraction": used_total / items_total, "agreement": float(np.mean(agree_all))}
    return out


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument(
        "--margin", type=float, default=0.01, help="equivalence margin, score units (0.01 = 1 pt)"
    )
    ap.add_argument("--rho", type=float, default=0.5, help="answer-noise correlation between models")
    ap.add_argument("--round", type=int, default=64, help="paired items per round and benchmark")
    ap.add_argument("--validity-runs", type=int, default=2000)
    ap.add_argument("--savings-reps", type=int, default=60)
    ap.add_argument("--sweep-reps", type=int, default=20)
    ap.add_argument("--sweep-block", type=int, default=128)
    ap.add_argument("--method", default="betting", choices=["betting", "eb"])
    ap.add_argument("--unpaired-race", action="store_true", help="race on per-candidate CSs, not pairs")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--quick", action="store_true", help="small Monte Carlo (about a minute)")
    ap.add_argument("--parts", default="abc", help="which parts to run (a validity, b savings, c racing)")
    args = ap.parse_args(argv)
    if args.quick:
        args.validity_runs, args.savings_reps, args.sweep_reps = 300, 10, 4
    t0 = time.time()
    print(
        f"# adaptive evaluation bench: method={args.method} alpha={args.alpha} margin={args.margin} "
        f"rho={args.rho} round={args.round}",
        flush=True,
    )

    summary: dict = {"method": args.method, "alpha": args.alpha, "margin": args.margin, "rho": args.rho}
    if "a" in args.parts:
        va = validity(args.validity_runs, args.rho, args.alpha, args.round, args.seed, args.method)
        summary.update(
            type1_error=round(va["cs_error"], 4),
            type1_error_mc95=[round(v, 4) for v in va["cs_error_ci"]],
            type1_error_peeking_ttest=round(va["ttest_error"], 4),
            type1_error_peeking_ttest_mc95=[round(v, 4) for v in va["ttest_error_ci"]],
        )
        print(
            f"\n(a) validity, {va['runs']} comparisons with a finite-population difference of exactly 0 "
            f"({va['benchmark']} size, {va['items']} items, {va['looks']} looks):\n"
            f"  confidence sequence: better/worse declared in {va['cs_error']:.4f} "
            f"(95% MC interval {va['cs_error_ci'][0]:.4f}-{va['cs_error_ci'][1]:.4f}), alpha = {args.alpha}\n"
            f"  paired t-test after every round: {va['ttest_error']:.4f} "
            f"({va['ttest_error_ci'][0]:.4f}-{va['ttest_error_ci'][1]:.4f})   [{time.time() - t0:.0f} s]",
            flush=True,
        )

    if "b" in args.parts:
        diffs = [0.0, 1.0, 2.0, 5.0, 10.0]
        sv = savings(
            diffs, args.savings_reps, args.rho, args.alpha, args.margin, args.round, args.seed, args.method
        )
        names = [b[0] for b in BENCHMARKS]
        print(
            f"\n(b) savings, {args.savings_reps} runs per difference, six rules at alpha/6, margin "
            f"{args.margin * 100:g} pt: fraction of items evaluated (agreement with the full evaluation)"
        )
        print("| true diff (pt) | " + " | ".join(names) + " | summed | agreement |")
        print("|---" * (len(names) + 3) + "|")
        for d in diffs:
            r = sv[f"{d:g}"]
            cells = [
                f"{r['per_benchmark'][b]['fraction']:.3f} ({r['per_benchmark'][b]['agreement']:.2f})"
                for b in names
            ]
            print(
                f"| {d:g} | "
                + " | ".join(cells)
                + f" | **{r['summed_fraction']:.3f}** | {r['agreement']:.3f} |"
            )
        disc = {b: round(sv["5"]["per_benchmark"][b]["discordance"], 3) for b in names}
        print(
            f"  discordant items at 5 pt (0/1: fraction of items the models disagree on; mc2: mean |d|): {disc}"
            f"   [{time.time() - t0:.0f} s]",
            flush=True,
        )
        summary.update(
            items_fraction={d: round(sv[d]["summed_fraction"], 4) for d in sv},
            agreement={d: round(sv[d]["agreement"], 4) for d in sv},
            items_fraction_at_5pt=round(sv["5"]["summed_fraction"], 4),
            agreement_at_5pt=round(sv["5"]["agreement"], 4),
        )

    if "c" in args.parts:
        sw = sweep(
            args.sweep_reps,
            max(args.rho, 0.7),
            args.alpha,
            args.margin,
            args.sweep_block,
            args.seed,
            args.method,
            not args.unpaired_race,
        )
        print(
            f"\n(c) racing, {sw['candidates']} candidates on {sw['items']} selection items, {sw['reps']} sweeps, "
            f"blocks of {args.sweep_block}, margin {args.margin * 100:g} pt:\n"
            f"  same winner as the full sweep: {sw['same_winner']:.2f}; same or within the margin: "
            f"{sw['same_or_within_margin']:.2f}; item evaluations: {sw['evaluations_fraction']:.3f} of the full "
            f"sweep; rounds: {sw['mean_rounds']:.1f}; stops: {sw['stop_reasons']}   [{time.time() - t0:.0f} s]",
            flush=True,
        )
        summary.update(
            sweep_items_fraction=round(sw["evaluations_fraction"], 4),
            sweep_same_winner=round(sw["same_or_within_margin"], 4),
            sweep_exact_same_winner=round(sw["same_winner"], 4),
        )
    summary["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
