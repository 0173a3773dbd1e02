"""Anytime-valid confidence sequences for adaptive evaluation: stop early, keep the guarantee.

A benchmark is a finite population of N items. The full evaluation computes a (weighted) mean over all N
items; adaptive evaluation scores the items in a seeded random order, round by round, and after each round
updates a *confidence sequence* (CS): intervals [L_n, U_n] that contain the full-evaluation value at every
n simultaneously with probability >= 1 - alpha. Because the guarantee is uniform over n, it survives looking
after every round and stopping as soon as a rule is decided (a fixed-n confidence interval or t-test does not).

What is implemented (see docs/methodology.md, "Adaptive evaluation", for the derivation and the citations):

* Sampling without replacement (WoR) from the finite population, in a random order drawn *before* any score
  is seen: uniformly at random, or, for a weighted mean such as MMLU's macro average over 57 subjects,
  successively with probability proportional to the item's weight among the items not yet drawn
  (Efraimidis & Spirakis keys). Given the first t-1 draws, the t-th observation then has conditional mean
  mu_t(m) = (m - A_{t-1}) / P_t, where m is the population's (weighted) mean, A_{t-1} is the weighted sum of
  the values seen so far and P_t the weight not yet drawn (both normalised by the total weight). For uniform
  weights this is (N m - S_{t-1}) / (N - t + 1), the WoR centring of Waudby-Smith & Ramdas (2020).
* ``method="betting"`` (default): the hedged capital process of Waudby-Smith & Ramdas (2024, JRSS-B,
  "Estimating means of bounded random variables by betting"), with the WoR centring above (their extension
  of betting CSs to sampling without replacement): K+_t(m) = prod_i (1 + l+_i (X_i - mu_i(m))) and
  K-_t(m) = prod_i (1 - l-_i (X_i - mu_i(m))), bets l >= 0 from the aGRAPA strategy (l = g / (s2 + g^2), g the
  gap between the estimated and the hypothesised conditional mean, s2 a regularised running variance;
  ``lambda_aKelly`` in the authors' confseq package), truncated at c / mu_i(m) and c / (1 - mu_i(m)) with
  c = 1/2. At the true mean each is a nonnegative martingale with initial value 1, so by Ville's inequality
  P(K+ or K- ever reaches 2 / alpha) <= alpha; the CS is every m whose K+ and K- never reached 2 / alpha.
  Computed on cells of a grid: within a cell the bets are held constant, so the + side's factors are smallest
  at the cell's right end and the - side's at its left end, and a cell is excluded only when the capital
  there (a lower bound for every m of the cell) reaches 2 / alpha. Cells start 1/128 wide and are split in
  two (children inherit the parent's capital, again a lower bound) while fewer than 64 remain, down to
  1/2048 of the range. The CS is intersected with the logical bounds [A_t, A_t + P_{t+1}] (the unseen items
  are in [0, 1]), so at n = N it is exactly the full evaluation's value.
* ``method="eb"``: the closed-form predictable-plug-in empirical-Bernstein CS for sampling WoR
  (Waudby-Smith & Ramdas 2020, NeurIPS, "Confidence sequences for sampling without replacement"), with the
  predictable-mixture bets of WSR 2024 truncated at 1/2 and the same (weighted) WoR centring; O(1) per item,
  a little wider (about 30% more items to a decision in bench/bench_adaptive.py's settings).

Everything is in numpy; no scipy at import time. States are plain JSON-able dicts (``to_dict``/
``from_dict``), so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mergeval.errors import UserError

__all__ = [
    "ConfidenceSequence",
    "Decision",
    "Race",
    "RaceResult",
    "Rule",
    "RuleMonitor",
    "combine_decisions",
    "compare_rule",
    "decide",
    "decide_rule",
    "race",
    "random_order",
    "sampling_order",
    "split_alpha",
    "threshold_rule",
]

STATE_VERSION = 1
DEFAULT_GRID = 2048  # finest grid: cells of 1/2048 of the unit interval, ~0.1 point on a [-1, 1] difference
START_CELLS = 128  # betting starts on 128 cells and splits them while fewer than 64 remain in the CS
TRUNCATION = 0.5  # c in the bet truncation c / mu and c / (1 - mu) (WSR 2024 use c in [1/2, 3/4])
EPS = 1e-9  # a decision needs the bound beyond the boundary by more than float noise
_METHODS = ("betting", "eb")


# --------------------------------------------------------------------------------------------- orders


def _unit_key(seed: int, item_id: str) -> float:
    digest = hashlib.sha256(f"mergeval-adaptive-order\0{seed}\0{item_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") + 0.5) / 2.0**64  # in (0, 1)


def _check_weights(weights: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise UserError(f"got {w.size} item weights for {n} items; give one weight per item.")
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise UserError(
            "item weights must be finite and > 0; use the item's share of the score (e.g. 1/N_subject)."
        )
    return w


def sampling_order(item_ids: Sequence[str], seed: int, weights: Sequence[float] | None = None) -> list[int]:
    """The evaluation order of `item_ids`, as indices into it: a seeded random permutation.

    Each item gets a pseudo-random u in (0, 1) from SHA-256(seed, item id), so the order depends only on
    the seed and the items' ids (not on their order in the input, not on numpy's RNG). Without weights the
    items are sorted by u (a uniformly random permutation); with weights by log(u) / w descending, which
    draws the items one after the other with probability proportional to their weight among those left
    (Efraimidis & Spirakis 2006). Use weights exactly when the score is a weighted mean, with the same
    weights the confidence sequence gets (e.g. 1/N_subject for MMLU's mean over subjects). The seed must
    be fixed before any score is seen.
    """
    ids = [str(i) for i in item_ids]
    if len(set(ids)) != len(ids):
        raise UserError("item ids must be unique to build an evaluation order; two items share an id.")
    u = np.array([_unit_key(seed, i) for i in ids])
    if weights is None:
        keys = -u
    else:
        w = _check_weights(weights, len(ids))
        keys = -(np.log(u) / w)
    # ties (astronomically unlikely) are broken by the id, never by input order
    order = sorted(range(len(ids)), key=lambda k: (keys[k], ids[k]))
    return order


def random_order(
    n: int, rng: np.random.Generator, weights: Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
    """Like `sampling_order` but from a numpy Generator (for simulations and replays)."""
    if weights is None:
        return rng.permutation(n)
    w = _check_weights(weights, n)
    u = rng.random(n)
    u = np.where(u <= 0.0, np.finfo(float).tiny, u)
    return np.argsort(-(np.log(u) / w), kind="stable")


def split_alpha(alpha: float, n_rules: int) -> float:
    """Bonferroni: each of the K monitored rules gets alpha / K (valid under optional stopping)."""
    _check_alpha(alpha)
    if int(n_rules) != n_rules or n_rules < 1:
        raise UserError(f"the number of monitored rules must be a positive integer, got {n_rules}.")
    return alpha / int(n_rules)


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, (int, float)) and 0.0 < float(alpha) < 1.0):
        raise UserError(f"alpha must be in (0, 1), got {alpha!r}; 0.05 is the usual choice.")


# ------------------------------------------------------------------------------- confidence sequence


class ConfidenceSequence:
    """Anytime-valid CS for the (weighted) mean of a finite population observed without replacement.

    population_size: N, the number of items; the target is the mean over all N items (weighted by
        `weights` / `total_weight` when given), i.e. what the full evaluation computes.
    alpha: the CS covers the target at all n simultaneously with probability >= 1 - alpha (two-sided,
        alpha / 2 per side).
    bounds: (lo, hi), the range every item's value lies in (e.g. (-1, 1) for a difference of two [0, 1]
        scores). Values are mapped to [0, 1] internally.
    total_weight: the sum of the weights of all N items, when the target is a weighted mean; then every
        `update` passes each observed item's weight, and the items must be drawn in the order
        `sampling_order(..., weights=...)` gives (probability proportional to weight).
    method: "betting" (hedged betting CS, default) or "eb" (closed-form empirical Bernstein).

    Items must arrive in a random order fixed in advance (see `sampling_order`); the guarantee is about
    that randomness and holds whatever the stopping rule.
    """

    def __init__(
        self,
        population_size: int,
        alpha: float = 0.05,
        *,
        bounds: tuple[float, float] = (0.0, 1.0),
        total_weight: float | None = None,
        method: str = "betting",
        grid_size: int = DEFAULT_GRID,
    ) -> None:
        _check_alpha(alpha)
        if int(population_size) != population_size or population_size < 1:
            raise UserError(f"population size must be a positive integer, got {population_size!r}.")
        lo, hi = (float(bounds[0]), float(bounds[1]))
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise UserError(f"value bounds must be finite with lo < hi, got {bounds!r}.")
        if method not in _METHODS:
            raise UserError(
                f"unknown confidence sequence method {method!r}; use one of {', '.join(_METHODS)}."
            )
        if total_weight is not None and not (math.isfinite(total_weight) and total_weight > 0):
            raise UserError(f"total weight must be finite and > 0, got {total_weight!r}.")
        if int(grid_size) != grid_size or grid_size < 2 or int(grid_size) & (int(grid_size) - 1):
            raise UserError(f"grid size must be a power of two, got {grid_size!r}; 2048 is the default.")
        self.N = int(population_size)
        self.alpha = float(alpha)
        self.lo, self.hi = lo, hi
        self.weighted = total_weight is not None
        self.total_weight = float(total_weight) if total_weight is not None else float(self.N)
        self.method = method
        self.grid_size = int(grid_size)
        # progress
        self.n = 0
        self.w_seen = 0.0  # sum of observed weights (unnormalised)
        self.wy = 0.0  # sum of weight * y over observed items (y = value mapped to [0, 1])
        self.wx = 0.0  # sum of weight * value (the full-evaluation value is wx / total_weight at n = N)
        self.sum_y = 0.0  # plain sum of y (uniform-weight point estimate)
        self.mart_sum = 0.0  # sum of A_{t-1} + P_t y_t (unbiased point estimate for weighted designs)
        # predictable-mixture state: running sums for the regularised mean / variance
        self.pred_sx = 0.0
        self.pred_sv = 0.0
        # running bounds on the unit scale
        self.lower_y = 0.0
        self.upper_y = 1.0
        self.crossed = False  # the two sides excluded each other (probability <= alpha)
        # betting: grid cells [i/G, (i+1)/G], i in 0..G-1; active cells [lo_i, hi_i], their log capitals
        # (lower side at the right end, upper side at the left end) and which are excluded
        self.cells = min(START_CELLS, self.grid_size)  # current number of cells (a power of two)
        self.lo_i = 0
        self.hi_i = self.cells - 1
        self.log_kp = np.zeros(self.cells)
        self.log_km = np.zeros(self.cells)
        self.rejected = np.zeros(self.cells, dtype=bool)
        # eb: running sums (lower side on y, upper side on 1 - y)
        self.eb = {"p_lo": 0.0, "q": 0.0, "p_up": 0.0, "r": 0.0}

    # ----------------------------------------------------------------------------------- properties
    @property
    def remaining_weight(self) -> float:
        """P_{n+1}: the normalised weight of the items not yet observed (0 after all N)."""
        if self.n >= self.N:
            return 0.0
        return max(0.0, (self.total_weight - self.w_seen) / self.total_weight)

    @property
    def _a(self) -> float:
        return self.wy / self.total_weight

    def _to_scale(self, y: float) -> float:
        return self.lo + (self.hi - self.lo) * y

    @property
    def exact_value(self) -> float | None:
        """The target itself once all N items are in (the full evaluation's number), else None."""
        return self.wx / self.total_weight if self.n >= self.N else None

    @property
    def lower(self) -> float:
        return self.exact_value if self.n >= self.N else self._to_scale(self.lower_y)

    @property
    def upper(self) -> float:
        return self.exact_value if self.n >= self.N else self._to_scale(self.upper_y)

    @property
    def interval(self) -> tuple[float, float]:
        return (self.lower, self.upper)

    @property
    def complete(self) -> bool:
        return self.n >= self.N

    @property
    def estimate(self) -> float | None:
        """Point estimate of the target (None before any item): exact after all N items.

        Uniform weights: the plain mean of the observed values. Weighted designs: the mean of the
        per-step unbiased estimates A_{t-1} + P_t X_t. Both are unbiased at a fixed n; stopping when a
        rule is decided biases them slightly (away from the decision boundary).
        """
        if self.n == 0:
            return None
        if self.n >= self.N:
            return self.exact_value
        y = self.mart_sum / self.n if self.weighted else self.sum_y / self.n
        return self._to_scale(min(1.0, max(0.0, y)))

    # ------------------------------------------------------------------------------------ updating
    def update(
        self, values: Sequence[float] | np.ndarray, weights: Sequence[float] | np.ndarray | None = None
    ):
        """Add a round of observations (in evaluation order); returns self."""
        x = np.asarray(values, dtype=float).reshape(-1)
        k = x.size
        if k == 0:
            return self
        if self.n + k > self.N:
            raise UserError(
                f"{self.n + k} items observed for a population of {self.N}; each item is observed once."
            )
        if not np.all(np.isfinite(x)):
            raise UserError("an item's score is NaN or infinite; every observed item needs a finite score.")
        tol = 1e-9 * (self.hi - self.lo)
        if np.any(x < self.lo - tol) or np.any(x > self.hi + tol):
            bad = x[(x < self.lo - tol) | (x > self.hi + tol)][0]
            raise UserError(
                f"an item's value {bad!r} is outside [{self.lo}, {self.hi}]; scores must be on a 0-1 scale "
                "(divide percentages by 100)."
            )
        y = np.clip((x - self.lo) / (self.hi - self.lo), 0.0, 1.0)
        if self.weighted:
            if weights is None:
                raise UserError("this confidence sequence is for a weighted mean; pass each item's weight.")
            w = _check_weights(weights, k)
        else:
            if weights is not None:
                raise UserError(
                    "this confidence sequence is for a plain mean; give total_weight to use weights."
                )
            w = np.ones(k)
        W = self.total_weight
        # P_t (remaining normalised weight before item t) and A_{t-1}, for each item of the round
        w_before = self.w_seen + np.concatenate(([0.0], np.cumsum(w)[:-1]))
        p_t = (W - w_before) / W
        a_prev = (self.wy + np.concatenate(([0.0], np.cumsum(w * y)[:-1]))) / W
        w_after = self.w_seen + float(np.sum(w))
        if np.any(p_t <= 0) or (self.n + k < self.N and w_after >= W):
            raise UserError("the item weights add up to more than total_weight; check the weights.")
        if self.n + k == self.N and abs(w_after - W) > 1e-9 * W:
            raise UserError(
                f"the weights of all {self.N} items add up to {w_after!r}, not the total weight {W!r}."
            )
        lam = self._lambdas(y)  # (nothing is changed before this point: a bad round leaves the state intact)

        if not self.crossed:
            if self.method == "betting":
                self._betting_round(y, lam, a_prev, p_t)
            else:
                self._eb_round(y, lam, a_prev, p_t)

        # bookkeeping
        self.mart_sum += float(np.sum(a_prev + p_t * y))
        self.sum_y += float(np.sum(y))
        self.w_seen += float(np.sum(w))
        self.wy += float(np.sum(w * y))
        self.wx += float(np.sum(w * x))
        self.n += k
        self._apply_logical()
        return self

    def _lambdas(self, y: np.ndarray) -> np.ndarray:
        """Predictable-mixture empirical-Bernstein bets (WSR 2024), from the past only.

        Also keeps, per item, the regularised running mean and variance of the items before it (prior
        1/2 and 1/4 worth one observation), which the betting strategy uses.
        """
        k = y.size
        t = self.n + 1 + np.arange(k, dtype=float)
        csum = self.pred_sx + np.cumsum(y)
        mu_t = np.minimum((0.5 + csum) / (t + 1.0), 1.0)
        cv = self.pred_sv + np.cumsum((y - mu_t) ** 2)
        sig_t = (0.25 + cv) / (t + 1.0)
        sig_prev = np.concatenate(([(0.25 + self.pred_sv) / (self.n + 1.0)], sig_t[:-1]))
        self._mu_prev = np.concatenate(([min((0.5 + self.pred_sx) / (self.n + 1.0), 1.0)], mu_t[:-1]))
        self._sig_prev = sig_prev
        self.pred_sx = float(csum[-1])
        self.pred_sv = float(cv[-1])
        return np.sqrt(2.0 * math.log(2.0 / self.alpha) / (sig_prev * t * np.log1p(t)))

    def _betting_round(self, y, lam, a_prev, p_t) -> None:
        """Hedged betting on every cell [i/G, (i+1)/G] of the grid still in the CS.

        Within a cell the bets are constant (they depend on the past and on the cell, never on the current
        item), so the + side's factor 1 + l (X - mu_t(m)) is smallest at the cell's right end and the - side's
        1 - l (X - mu_t(m)) at its left end: the capital evaluated there is a lower bound on the capital of
        every m in the cell, and a cell is excluded only when that bound reaches 2 / alpha (or the cell is
        logically impossible). Bets: aGRAPA (WSR 2024), l = g / (s2 + g^2) with g the gap between
        the estimated and the hypothesised conditional mean of the next item, truncated at c / mu and
        c / (1 - mu).
        """
        G = self.cells
        lo_c, hi_c = self.lo_i, self.hi_i
        if lo_c > hi_c:
            return
        cells = np.arange(lo_c, hi_c + 1, dtype=float)
        inv_p = 1.0 / p_t[:, None]
        mu_l = (cells[None, :] / G - a_prev[:, None]) * inv_p  # hypothesised conditional mean, left end
        mu_r = ((cells[None, :] + 1.0) / G - a_prev[:, None]) * inv_p  # right end
        # estimated conditional mean of the next item: the remaining mean if the population mean were mu_hat
        mh = np.clip((self._mu_prev - a_prev) / p_t, 0.0, 1.0)[:, None]
        s2 = self._sig_prev[:, None]
        imp_p = mu_r < 0.0  # the whole cell is below what has been seen for sure
        imp_m = mu_l > 1.0  # the whole cell is above it
        with np.errstate(divide="ignore", invalid="ignore"):
            gp = mh - mu_r
            lp = np.minimum(np.maximum(gp / (s2 + gp * gp), 0.0), TRUNCATION / np.maximum(mu_r, 0.0))
            gm = mu_l - mh
            lm = np.minimum(np.maximum(gm / (s2 + gm * gm), 0.0), TRUNCATION / np.maximum(1.0 - mu_l, 0.0))
            fp = np.where(imp_p, 0.0, np.log1p(lp * (y[:, None] - mu_r)))
            fm = np.where(imp_m, 0.0, np.log1p(-lm * (y[:, None] - mu_l)))
        cp = self.log_kp[lo_c : hi_c + 1][None, :] + np.cumsum(fp, axis=0)
        cm = self.log_km[lo_c : hi_c + 1][None, :] + np.cumsum(fm, axis=0)
        thr = math.log(2.0 / self.alpha)
        rej = (
            (np.max(cp, axis=0) >= thr) | (np.max(cm, axis=0) >= thr) | imp_p.any(axis=0) | imp_m.any(axis=0)
        )
        self.log_kp[lo_c : hi_c + 1] = cp[-1]
        self.log_km[lo_c : hi_c + 1] = cm[-1]
        self.rejected[lo_c : hi_c + 1] |= rej
        self._shrink_active()

    def _shrink_active(self) -> None:
        """Active cells: from the first to the last cell not excluded; the CS is their hull."""
        lo_c, hi_c = self.lo_i, self.hi_i
        keep = np.nonzero(~self.rejected[lo_c : hi_c + 1])[0] if lo_c <= hi_c else np.array([], dtype=int)
        if keep.size == 0:
            self.crossed = True  # every value excluded: the CS failed (probability <= alpha)
            self.lo_i, self.hi_i = 1, 0
            return
        self.lo_i, self.hi_i = lo_c + int(keep[0]), lo_c + int(keep[-1])
        self.lower_y = max(self.lower_y, self.lo_i / self.cells)
        self.upper_y = min(self.upper_y, (self.hi_i + 1) / self.cells)

    def _refine(self) -> None:
        """Split every cell in two while fewer than START_CELLS / 2 cells are active.

        A child keeps its parent's log capitals: the parent's lower side was evaluated at its right end and
        its upper side at its left end, and within the parent the factors are monotone, so the parent's
        values lower-bound the capital of every point of each child (exact for one child, conservative for
        the other). From then on each child bets on its own.
        """
        while (
            self.lo_i <= self.hi_i
            and self.hi_i - self.lo_i + 1 < START_CELLS // 2
            and self.cells < self.grid_size
        ):
            self.log_kp = np.repeat(self.log_kp, 2)
            self.log_km = np.repeat(self.log_km, 2)
            self.rejected = np.repeat(self.rejected, 2)
            self.cells *= 2
            self.lo_i, self.hi_i = 2 * self.lo_i, 2 * self.hi_i + 1

    def _eb_round(self, y, lam, a_prev, p_t) -> None:
        lam = np.minimum(lam, TRUNCATION)
        psi = -np.log1p(-lam) - lam
        v = (y - self._mu_prev) ** 2  # the same for 1 - y against 1 - mu_prev
        e = self.eb
        r = e["r"] + np.cumsum(v * psi)
        q = e["q"] + np.cumsum(lam / p_t)
        p_lo = e["p_lo"] + np.cumsum(lam * (y + a_prev / p_t))
        a_prev_up = (1.0 - p_t) - a_prev  # weighted sum of (1 - y) seen so far
        p_up = e["p_up"] + np.cumsum(lam * ((1.0 - y) + a_prev_up / p_t))
        thr = math.log(2.0 / self.alpha)
        low = (p_lo - thr - r) / q
        up = 1.0 - (p_up - thr - r) / q
        e.update(p_lo=float(p_lo[-1]), q=float(q[-1]), p_up=float(p_up[-1]), r=float(r[-1]))
        self.lower_y = max(self.lower_y, float(np.max(low)))
        self.upper_y = min(self.upper_y, float(np.min(up)))
        if self.lower_y > self.upper_y:
            self.crossed = True

    def _apply_logical(self) -> None:
        """Intersect with what is known for sure: the unseen items are in [0, 1]."""
        a = self._a
        rem = self.remaining_weight
        log_lo, log_hi = a, a + rem
        if self.n >= self.N:
            self.lower_y = self.upper_y = min(1.0, max(0.0, a))
            self.lo_i, self.hi_i = 1, 0
            return
        if self.crossed:  # the CS failed (probability <= alpha): fall back to the logical bounds
            self.lower_y, self.upper_y = log_lo, min(1.0, log_hi)
            return
        self.lower_y = max(self.lower_y, log_lo)
        self.upper_y = min(self.upper_y, log_hi)
        if self.method == "betting" and self.lo_i <= self.hi_i:
            self._refine()
            G = self.cells
            # cells wholly below log_lo or above log_hi are impossible (tolerance keeps this conservative)
            self.lo_i = max(self.lo_i, math.ceil(log_lo * G - 1e-6) - 1)
            self.hi_i = min(self.hi_i, math.floor(log_hi * G + 1e-6))
            self._shrink_active()
            if self.crossed:
                self.lower_y, self.upper_y = log_lo, min(1.0, log_hi)
                return
            self.lower_y = max(self.lower_y, log_lo)
            self.upper_y = min(self.upper_y, log_hi)

    # ------------------------------------------------------------------------------------ state
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able state; `from_dict` continues exactly (floats round-trip through JSON)."""
        state: dict[str, Any] = {
            "kind": "mergeval.confidence_sequence",
            "version": STATE_VERSION,
            "method": self.method,
            "alpha": self.alpha,
            "population_size": self.N,
            "bounds": [self.lo, self.hi],
            "total_weight": self.total_weight if self.weighted else None,
            "grid_size": self.grid_size,
            "n": self.n,
            "w_seen": self.w_seen,
            "wy": self.wy,
            "wx": self.wx,
            "sum_y": self.sum_y,
            "mart_sum": self.mart_sum,
            "pred_sx": self.pred_sx,
            "pred_sv": self.pred_sv,
            "lower_y": self.lower_y,
            "upper_y": self.upper_y,
            "crossed": self.crossed,
        }
        if self.method == "betting":
            lo_i, hi_i = self.lo_i, self.hi_i
            active = lo_i <= hi_i
            state["betting"] = {
                "cells": self.cells,
                "lo_i": lo_i,
                "hi_i": hi_i,
                "log_k_plus": [float(v) for v in self.log_kp[lo_i : hi_i + 1]] if active else [],
                "log_k_minus": [float(v) for v in self.log_km[lo_i : hi_i + 1]] if active else [],
                "excluded": [lo_i + int(i) for i in np.nonzero(self.rejected[lo_i : hi_i + 1])[0]]
                if active
                else [],
            }
        else:
            state["eb"] = dict(self.eb)
        return state

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> ConfidenceSequence:
        if not isinstance(state, Mapping) or state.get("kind") != "mergeval.confidence_sequence":
            raise UserError(
                "the stored adaptive state is not a confidence sequence; rerun with --full to rebuild it."
            )
        if state.get("version") != STATE_VERSION:
            raise UserError(
                f"the stored adaptive state has version {state.get('version')!r}, this mergeval reads "
                f"{STATE_VERSION}; rerun with --full to rebuild it."
            )
        try:
            cs = cls(
                state["population_size"],
                state["alpha"],
                bounds=tuple(state["bounds"]),
                total_weight=state["total_weight"],
                method=state["method"],
                grid_size=state["grid_size"],
            )
            cs.n = int(state["n"])
            for key in (
                "w_seen",
                "wy",
                "wx",
                "sum_y",
                "mart_sum",
                "pred_sx",
                "pred_sv",
                "lower_y",
                "upper_y",
            ):
                setattr(cs, key, float(state[key]))
            cs.crossed = bool(state["crossed"])
            if cs.method == "betting":
                b = state["betting"]
                cs.cells = int(b["cells"])
                if cs.cells < 1 or cs.cells > cs.grid_size or cs.cells & (cs.cells - 1):
                    raise ValueError("cells")
                cs.log_kp, cs.log_km = np.zeros(cs.cells), np.zeros(cs.cells)
                cs.rejected = np.zeros(cs.cells, dtype=bool)
                cs.lo_i, cs.hi_i = int(b["lo_i"]), int(b["hi_i"])
                if cs.lo_i <= cs.hi_i:
                    width = cs.hi_i - cs.lo_i + 1
                    if len(b["log_k_plus"]) != width or len(b["log_k_minus"]) != width:
                        raise ValueError("grid state length")
                    cs.log_kp[cs.lo_i : cs.hi_i + 1] = np.asarray(b["log_k_plus"], dtype=float)
                    cs.log_km[cs.lo_i : cs.hi_i + 1] = np.asarray(b["log_k_minus"], dtype=float)
                    cs.rejected[:] = True
                    cs.rejected[cs.lo_i : cs.hi_i + 1] = False
                    cs.rejected[[int(i) for i in b["excluded"]]] = True
                else:
                    cs.rejected[:] = True
            else:
                cs.eb = {k: float(state["eb"][k]) for k in ("p_lo", "q", "p_up", "r")}
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UserError(
                f"the stored adaptive state is damaged ({exc.__class__.__name__}); rerun with --full to rebuild it."
            ) from None
        return cs


# ---------------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """A statement about mean over items of sum_k coefficients[k] * x_k, x_k = model k's item score in [0, 1].

    kind "compare": a paired difference (e.g. coefficients (1, -1): candidate - reference) classified as
        better / worse / within the margin (see `decide`).
    kind "threshold": a gate mean(sum a_k x_k) >= threshold, decided as pass / fail. E.g. "candidate >= 0.95
        x reference" is coefficients (1, -0.95), threshold 0.
    """

    name: str
    coefficients: tuple[float, ...]
    kind: str = "compare"
    margin: float = 0.0
    threshold: float = 0.0
    mode: str = "margin"

    def __post_init__(self) -> None:
        if self.kind not in ("compare", "threshold"):
            raise UserError(f"rule {self.name!r}: kind must be 'compare' or 'threshold', not {self.kind!r}.")
        if self.mode not in ("margin", "sign"):
            raise UserError(f"rule {self.name!r}: mode must be 'margin' or 'sign', not {self.mode!r}.")
        coef = tuple(float(c) for c in self.coefficients)
        if not coef or not all(math.isfinite(c) for c in coef) or all(c == 0 for c in coef):
            raise UserError(f"rule {self.name!r}: coefficients must be finite and not all zero.")
        object.__setattr__(self, "coefficients", coef)
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise UserError(
                f"rule {self.name!r}: the margin must be >= 0 (score units, 0-1), got {self.margin!r}."
            )
        if not math.isfinite(self.threshold):
            raise UserError(f"rule {self.name!r}: the threshold must be a finite number.")

    @property
    def bounds(self) -> tuple[float, float]:
        """The range of sum_k a_k x_k for x_k in [0, 1]."""
        lo = sum(min(0.0, a) for a in self.coefficients)
        hi = sum(max(0.0, a) for a in self.coefficients)
        return (lo, hi)

    def values(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=float)
        if s.ndim != 2 or s.shape[1] != len(self.coefficients):
            raise UserError(
                f"rule {self.name!r} combines {len(self.coefficients)} models, but the scores have "
                f"{s.shape[1] if s.ndim == 2 else '?'} columns; pass one column per model."
            )
        return s @ np.asarray(self.coefficients)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "coefficients": list(self.coefficients),
            "kind": self.kind,
            "margin": self.margin,
            "threshold": self.threshold,
            "mode": self.mode,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Rule:
        return cls(
            name=d["name"],
            coefficients=tuple(d["coefficients"]),
            kind=d["kind"],
            margin=d["margin"],
            threshold=d["threshold"],
            mode=d["mode"],
        )


def compare_rule(
    name: str, candidate: int, reference: int, n_models: int, *, margin: float = 0.0, mode: str = "margin"
) -> Rule:
    """candidate - reference (model columns `candidate`, `reference` of `n_models`), better/worse/within."""
    if candidate == reference or not (0 <= candidate < n_models and 0 <= reference < n_models):
        raise UserError(f"rule {name!r}: candidate and reference must be two different model columns.")
    coef = [0.0] * n_models
    coef[candidate], coef[reference] = 1.0, -1.0
    return Rule(name, tuple(coef), kind="compare", margin=margin, mode=mode)


def threshold_rule(name: str, coefficients: Sequence[float], threshold: float = 0.0) -> Rule:
    """mean(sum_k a_k x_k) >= threshold, e.g. (1, -0.95), 0 for "candidate >= 0.95 x reference"."""
    return Rule(name, tuple(coefficients), kind="threshold", threshold=threshold)


@dataclass(frozen=True)
class Decision:
    rule: str
    verdict: str  # better | worse | within | pass | fail | undecided
    direction: int  # +1 better/pass, -1 worse/fail, 0 within/undecided
    lower: float
    upper: float
    estimate: float | None
    n: int
    population_size: int
    exact: bool  # all items observed: the interval is the full-evaluation value

    @property
    def decided(self) -> bool:
        return self.verdict != "undecided"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "verdict": self.verdict,
            "direction": self.direction,
            "lower": self.lower,
            "upper": self.upper,
            "estimate": self.estimate,
            "n": self.n,
            "population_size": self.population_size,
            "exact": self.exact,
        }


def decide(rule: Rule, lower: float, upper: float) -> tuple[str, int]:
    """The verdict an interval [lower, upper] that covers the rule's value supports (verdict, direction).

    compare, mode "margin" (default; three zones that never overlap, so a verdict is the full evaluation's
        verdict whenever the interval covers): better if lower > m, worse if upper < -m, within if
        -m <= lower and upper <= m.
    compare, mode "sign": better if lower > 0, worse if upper < 0, else within if the interval is inside
        [-m, m] (the sign is unresolved but the difference is below the margin).
    threshold: pass if lower >= threshold, fail if upper < threshold.
    Otherwise "undecided". Bounds must clear a boundary by more than 1e-9 (float noise) to decide.
    """
    if rule.kind == "threshold":
        c = rule.threshold
        if lower >= c - EPS:
            return "pass", 1
        if upper < c - EPS:
            return "fail", -1
        return "undecided", 0
    m = rule.margin
    if rule.mode == "margin":
        if lower > m + EPS:
            return "better", 1
        if upper < -m - EPS:
            return "worse", -1
        if lower >= -m - EPS and upper <= m + EPS:
            return "within", 0
        return "undecided", 0
    if lower > EPS:
        return "better", 1
    if upper < -EPS:
        return "worse", -1
    if lower >= -m - EPS and upper <= m + EPS:
        return "within", 0
    return "undecided", 0


def _decision(rule: Rule, cs: ConfidenceSequence) -> Decision:
    verdict, direction = decide(rule, cs.lower, cs.upper)
    return Decision(
        rule=rule.name,
        verdict=verdict,
        direction=direction,
        lower=cs.lower,
        upper=cs.upper,
        estimate=cs.estimate,
        n=cs.n,
        population_size=cs.N,
        exact=cs.complete,
    )


def decide_rule(
    rule: Rule,
    scores: np.ndarray,
    *,
    population_size: int,
    alpha: float = 0.05,
    weights: Sequence[float] | None = None,
    total_weight: float | None = None,
    method: str = "betting",
) -> Decision:
    """One-shot: the decision after the paired item scores `scores` (n x models, in evaluation order)."""
    cs = ConfidenceSequence(
        population_size, alpha, bounds=rule.bounds, total_weight=total_weight, method=method
    )
    cs.update(rule.values(scores), weights)
    return _decision(rule, cs)


def combine_decisions(decisions: Sequence[Decision], how: str) -> str:
    """ "pass"/"fail"/"undecided" of several threshold decisions combined.

    how="any": passes when any passes, fails when all fail ("candidate >= 0.95 x min(parents)" is "any of
    candidate >= 0.95 x parent_j"). how="all": passes when all pass, fails when any fails. Each component
    counts as one rule in the alpha split.
    """
    verdicts = [d.verdict for d in decisions]
    if how == "any":
        if "pass" in verdicts:
            return "pass"
        return "fail" if verdicts and all(v == "fail" for v in verdicts) else "undecided"
    if how == "all":
        if "fail" in verdicts:
            return "fail"
        return "pass" if verdicts and all(v == "pass" for v in verdicts) else "undecided"
    raise UserError(f"combine how must be 'any' or 'all', not {how!r}.")


class RuleMonitor:
    """The rules that depend on one benchmark, watched together on its items, paired across models.

    rules: each rule's coefficients have one entry per model column of the scores passed to `update`.
    alpha_per_rule: each rule's CS level (alpha / K for K rules monitored in all, see `split_alpha`).
    total_weight: for a weighted score (MMLU's mean over subjects): the sum of all N item weights; then
        `update` takes the round's item weights and the items must follow `sampling_order(weights=...)`.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        population_size: int,
        alpha_per_rule: float,
        *,
        total_weight: float | None = None,
        method: str = "betting",
        grid_size: int = DEFAULT_GRID,
    ) -> None:
        if not rules:
            raise UserError("an adaptive monitor needs at least one rule.")
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise UserError("rule names must be unique within a benchmark.")
        widths = {len(r.coefficients) for r in rules}
        if len(widths) != 1:
            raise UserError("every rule of a benchmark must have one coefficient per model column.")
        self.rules = list(rules)
        self.n_models = widths.pop()
        self.alpha_per_rule = float(alpha_per_rule)
        self.sequences = [
            ConfidenceSequence(
                population_size,
                alpha_per_rule,
                bounds=r.bounds,
                total_weight=total_weight,
                method=method,
                grid_size=grid_size,
            )
            for r in self.rules
        ]

    @property
    def n(self) -> int:
        return self.sequences[0].n

    @property
    def population_size(self) -> int:
        return self.sequences[0].N

    def update(self, scores: np.ndarray, weights: Sequence[float] | None = None) -> list[Decision]:
        s = np.asarray(scores, dtype=float)
        if s.ndim == 1 and self.n_models == 1:
            s = s[:, None]
        if s.ndim != 2 or s.shape[1] != self.n_models:
            raise UserError(f"expected item scores with {self.n_models} model columns, got shape {s.shape}.")
        if s.size and (np.any(s < -1e-9) or np.any(s > 1 + 1e-9)):
            raise UserError("item scores must be in [0, 1]; divide percentages by 100.")
        for rule, cs in zip(self.rules, self.sequences):
            cs.update(rule.values(s), weights)
        return self.decisions()

    def decisions(self) -> list[Decision]:
        return [_decision(r, cs) for r, cs in zip(self.rules, self.sequences)]

    @property
    def done(self) -> bool:
        """Every rule decided (or every item observed)."""
        return all(d.decided for d in self.decisions())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "mergeval.rule_monitor",
            "version": STATE_VERSION,
            "alpha_per_rule": self.alpha_per_rule,
            "rules": [r.to_dict() for r in self.rules],
            "sequences": [cs.to_dict() for cs in self.sequences],
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> RuleMonitor:
        if not isinstance(state, Mapping) or state.get("kind") != "mergeval.rule_monitor":
            raise UserError(
                "the stored adaptive state is not a rule monitor; rerun with --full to rebuild it."
            )
        if state.get("version") != STATE_VERSION:
            raise UserError(
                f"the stored adaptive state has version {state.get('version')!r}, this mergeval reads "
                f"{STATE_VERSION}; rerun with --full to rebuild it."
            )
        try:
            rules = [Rule.from_dict(r) for r in state["rules"]]
            seqs = [ConfidenceSequence.from_dict(s) for s in state["sequences"]]
            if len(rules) != len(seqs):
                raise ValueError("rules and sequences differ in number")
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(
                f"the stored adaptive state is damaged ({exc.__class__.__name__}); rerun with --full to rebuild it."
            ) from None
        mon = cls.__new__(cls)
        mon.rules = rules
        mon.n_models = len(rules[0].coefficients)
        mon.alpha_per_rule = float(state["alpha_per_rule"])
        mon.sequences = seqs
        return mon


# --------------------------------------------------------------------------------------- racing


@dataclass
class RaceResult:
    winner: int  # index of the chosen candidate
    reason: str  # "one left" | "within margin" | "all items"
    survivors_per_round: list[list[int]]  # survivors after each round
    items_per_round: list[int]  # items in each round
    items_used: int  # distinct items scored
    evaluations: int  # item scores computed, summed over candidates
    full_evaluations: int  # what scoring every candidate on every item would take
    estimates: list[float | None]  # each candidate's estimate of its objective when it left the race

    @property
    def evaluations_fraction(self) -> float:
        return self.evaluations / self.full_evaluations if self.full_evaluations else 1.0


class Race:
    """Successive elimination over candidates scored on a shared random order of items.

    scores per item in [0, 1] (the objective's item scores; weighted when the objective is a mean of
    benchmark means: pass `total_weight` and item weights). After each block:
      paired=True (default): for every pair of survivors a CS on the paired mean difference at level
        alpha / (C - 1); candidate j is dropped when some i has lower(i - j) > 0. Valid because only the
        C - 1 pairs that involve the best candidate matter for the guarantee.
      paired=False: a CS on each candidate's mean at alpha / C; j is dropped when upper_j < max_i lower_i.
    The race stops when one candidate is left, or when a survivor i is within the margin of every other
    survivor (lower(i - j) > -margin for all j; unpaired: lower_i > upper_j - margin), or when every item
    is scored (then the exact objective decides). With probability >= 1 - alpha the winner's objective
    (over all N items) is >= the best candidate's minus the margin.
    """

    def __init__(
        self,
        n_candidates: int,
        population_size: int,
        alpha: float = 0.05,
        *,
        margin: float = 0.0,
        paired: bool = True,
        total_weight: float | None = None,
        method: str = "betting",
        grid_size: int = DEFAULT_GRID,
    ) -> None:
        _check_alpha(alpha)
        if int(n_candidates) != n_candidates or n_candidates < 2:
            raise UserError(f"a race needs at least 2 candidates, got {n_candidates!r}.")
        if not (math.isfinite(margin) and margin >= 0):
            raise UserError(f"the race margin must be >= 0 (score units, 0-1), got {margin!r}.")
        self.C = int(n_candidates)
        self.alpha = float(alpha)
        self.margin = float(margin)
        self.paired = bool(paired)
        self.survivors = list(range(self.C))
        self.winner: int | None = None
        self.reason: str | None = None
        self.rounds: list[list[int]] = []
        self.items_per_round: list[int] = []
        self.evaluations = 0
        self.final_estimates: dict[int, float | None] = {}
        kw = {"total_weight": total_weight, "method": method, "grid_size": grid_size}
        # paired races decide on the pairs; the per-candidate sequences then only give estimates (cheap "eb")
        mean_kw = dict(kw, method="eb") if self.paired else kw
        self.means = [
            ConfidenceSequence(population_size, alpha / self.C, bounds=(0.0, 1.0), **mean_kw)
            for _ in range(self.C)
        ]
        self.pairs: dict[tuple[int, int], ConfidenceSequence] = {}
        if self.paired:
            a_pair = alpha / (self.C - 1)
            for i in range(self.C):
                for j in range(i + 1, self.C):
                    self.pairs[(i, j)] = ConfidenceSequence(population_size, a_pair, bounds=(-1.0, 1.0), **kw)

    @property
    def n(self) -> int:
        return self.means[0].n

    @property
    def population_size(self) -> int:
        return self.means[0].N

    @property
    def finished(self) -> bool:
        return self.winner is not None

    def _diff_lower(self, i: int, j: int) -> float:
        """Lower confidence bound on objective_i - objective_j."""
        if self.paired:
            if i < j:
                return self.pairs[(i, j)].lower
            return -self.pairs[(j, i)].upper
        return self.means[i].lower - self.means[j].upper

    def update(self, scores: np.ndarray, weights: Sequence[float] | None = None) -> list[int]:
        """Add a block: `scores` is (items x candidates); columns of dropped candidates are ignored."""
        if self.finished:
            raise UserError("the race is already decided; no more items are needed.")
        s = np.asarray(scores, dtype=float)
        if s.ndim != 2 or s.shape[1] != self.C:
            raise UserError(f"expected block scores with {self.C} candidate columns, got shape {s.shape}.")
        k = s.shape[0]
        if k == 0:
            return list(self.survivors)
        alive = self.survivors
        sub = s[:, alive]
        if not np.all(np.isfinite(sub)) or np.any(sub < -1e-9) or np.any(sub > 1 + 1e-9):
            raise UserError(
                "every surviving candidate needs a finite score in [0, 1] for every item of the block."
            )
        for c in alive:
            self.means[c].update(s[:, c], weights)
        if self.paired:
            for a_idx, i in enumerate(alive):
                for j in alive[a_idx + 1 :]:
                    self.pairs[(i, j)].update(s[:, i] - s[:, j], weights)
        self.evaluations += k * len(alive)
        self.items_per_round.append(k)
        # eliminate every candidate some survivor beats (unpaired: upper_j < lower_i, i.e. < the best lower)
        drop = set()
        for j in alive:
            if any(self._diff_lower(i, j) > EPS for i in alive if i != j):
                drop.add(j)
        if len(drop) == len(alive):  # cannot happen with coherent bounds; keep the best estimate
            drop.discard(max(alive, key=lambda c: self.means[c].estimate or 0.0))
        for j in sorted(drop):
            self.final_estimates[j] = self.means[j].estimate
        self.survivors = [c for c in alive if c not in drop]
        self.rounds.append(list(self.survivors))
        self._check_stop()
        return list(self.survivors)

    def _check_stop(self) -> None:
        alive = self.survivors
        if len(alive) == 1:
            self.winner, self.reason = alive[0], "one left"
        elif self.means[alive[0]].complete:
            self.winner = max(alive, key=lambda c: (self.means[c].estimate, -c))
            self.reason = "all items"
        else:
            tied = [
                i for i in alive if all(self._diff_lower(i, j) > -self.margin + EPS for j in alive if j != i)
            ]
            if tied:
                self.winner = max(tied, key=lambda c: (self.means[c].estimate, -c))
                self.reason = "within margin"
        if self.winner is not None:
            for c in alive:
                self.final_estimates[c] = self.means[c].estimate

    def result(self) -> RaceResult:
        if self.winner is None:
            raise UserError("the race is not decided yet; score more items.")
        return RaceResult(
            winner=self.winner,
            reason=self.reason or "",
            survivors_per_round=[list(r) for r in self.rounds],
            items_per_round=list(self.items_per_round),
            items_used=self.n,
            evaluations=self.evaluations,
            full_evaluations=self.C * self.population_size,
            estimates=[self.final_estimates.get(c) for c in range(self.C)],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "mergeval.race",
            "version": STATE_VERSION,
            "alpha": self.alpha,
            "margin": self.margin,
            "paired": self.paired,
            "survivors": list(self.survivors),
            "winner": self.winner,
            "reason": self.reason,
            "rounds": [list(r) for r in self.rounds],
            "items_per_round": list(self.items_per_round),
            "evaluations": self.evaluations,
            "final_estimates": {str(k): v for k, v in self.final_estimates.items()},
            "means": [cs.to_dict() for cs in self.means],
            # pairs that still matter (both ends alive); others are frozen and never read again
            "pairs": {
                f"{i},{j}": cs.to_dict()
                for (i, j), cs in self.pairs.items()
                if i in self.survivors and j in self.survivors
            },
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> Race:
        if not isinstance(state, Mapping) or state.get("kind") != "mergeval.race":
            raise UserError(
                "the stored adaptive state is not a race; rerun the sweep with --full to rebuild it."
            )
        if state.get("version") != STATE_VERSION:
            raise UserError(
                f"the stored race state has version {state.get('version')!r}, this mergeval reads "
                f"{STATE_VERSION}; rerun the sweep with --full to rebuild it."
            )
        try:
            r = cls.__new__(cls)
            r.alpha = float(state["alpha"])
            r.margin = float(state["margin"])
            r.paired = bool(state["paired"])
            r.survivors = [int(c) for c in state["survivors"]]
            r.winner = None if state["winner"] is None else int(state["winner"])
            r.reason = state["reason"]
            r.rounds = [[int(c) for c in rnd] for rnd in state["rounds"]]
            r.items_per_round = [int(k) for k in state["items_per_round"]]
            r.evaluations = int(state["evaluations"])
            r.final_estimates = {int(k): v for k, v in state["final_estimates"].items()}
            r.means = [ConfidenceSequence.from_dict(s) for s in state["means"]]
            r.C = len(r.means)
            r.pairs = {}
            for key, s in state["pairs"].items():
                i, j = (int(v) for v in key.split(","))
                r.pairs[(i, j)] = ConfidenceSequence.from_dict(s)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(
                f"the stored race state is damaged ({exc.__class__.__name__}); rerun the sweep with --full."
            ) from None
        return r


def race(
    scores: np.ndarray,
    *,
    alpha: float = 0.05,
    margin: float = 0.0,
    block: int = 64,
    order: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
    weights: Sequence[float] | np.ndarray | None = None,
    paired: bool = True,
    method: str = "betting",
    first_block: int | None = None,
) -> RaceResult:
    """Race candidates over the items of `scores` (candidates x items, all known; for replays/simulations).

    Items are taken in `order` (default: `random_order` with `seed`, weighted when `weights` are given)
    in blocks of `block` items (the first block `first_block`, default `block`); returns the winner, the
    survivors after each round and the items and evaluations used.
    """
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2 or s.shape[0] < 2:
        raise UserError("race needs a (candidates x items) score matrix with at least 2 candidates.")
    C, N = s.shape
    if int(block) != block or block < 1:
        raise UserError(f"the race block size must be a positive integer, got {block!r}.")
    w = None if weights is None else _check_weights(weights, N)
    if order is None:
        order = random_order(N, np.random.default_rng(seed), w)
    order = np.asarray(order, dtype=int)
    if order.shape != (N,) or not np.array_equal(np.sort(order), np.arange(N)):
        raise UserError("the race order must be a permutation of the items.")
    rc = Race(
        C,
        N,
        alpha,
        margin=margin,
        paired=paired,
        total_weight=None if w is None else float(math.fsum(w)),
        method=method,
    )
    start = 0
    size = first_block or block
    while not rc.finished:
        idx = order[start : start + size]
        rc.update(s[:, idx].T, None if w is None else w[idx])
        start += size
        size = block
    return rc.result()
