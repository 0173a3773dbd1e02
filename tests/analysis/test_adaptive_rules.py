"""How an adaptive run reads a plan's gates as sequential rules (mergeval.analysis.adaptive), checked by what
the rules decide on exact values: a rule set must pass exactly when the gate's own point rule passes on the
full evaluation's numbers, for every reference form."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mergeval.analysis.adaptive import _ratio_rules, _score_gate_rules, checkpoints
from mergeval.analysis.sequential import combine_decisions, decide
from mergeval.plan import ScoreGate, gate_from_shorthand

COLS = ["cand", "p1", "p2", "base"]
ROLES = {"cand": "candidate", "p1": "parent", "p2": "parent", "base": "base"}


def _verdict(rules, how, scores):
    """The rules' verdict when the interval is the exact value (all items seen)."""
    decisions = []
    for rule in rules:
        value = float(np.dot(rule.coefficients, scores))
        verdict, _ = decide(rule, value, value)
        decisions.append(type("D", (), {"verdict": verdict})())
    return combine_decisions(decisions, how)


def _point(gate: ScoreGate, values: dict[str, float]) -> bool:
    """The gate's own rule on report-scale values (what mergeval.plan.gates computes)."""
    ref = str(gate.than)
    base, _, rest = ref.partition(" ")
    refs = {"min(parents)": min(values["p1"], values["p2"]), "max(parents)": max(values["p1"], values["p2"]),
            "mean(parents)": (values["p1"] + values["p2"]) / 2, "base": values["base"], "p2": values["p2"]}
    try:
        threshold = float(ref)
    except ValueError:
        threshold = refs[base]
        if rest:
            op, number = rest.split()
            threshold = threshold * float(number) if op == "*" else threshold + float(number) * (1 if op == "+" else -1)
    v = values["cand"]
    return {">=": v >= threshold, "<=": v <= threshold, ">": v > threshold, "<": v < threshold}[gate.op]


@pytest.mark.parametrize("text", [
    "pick >= min(parents)", "pick >= max(parents)", "pick >= mean(parents)", "pick >= base", "pick >= p2",
    "pick <= min(parents)", "pick <= max(parents)", "pick >= mean(parents) * 1.02", "pick >= max(parents) + 2",
    "pick <= base - 3", "pick >= 40", "pick <= 55",
])
def test_score_gates_become_rules_that_decide_as_the_gate_does(text):
    gate = ScoreGate.model_validate(gate_from_shorthand(text))
    rules, how = _score_gate_rules(gate, "cand", COLS, ROLES, 100.0, "g")
    rng = np.random.default_rng(7)
    for _ in range(300):
        scores = rng.uniform(0.2, 0.8, size=4)  # mean item scores of cand, p1, p2, base (continuous: no ties)
        values = dict(zip(COLS, scores * 100, strict=True))
        expected = _point(gate, values)
        got = _verdict(rules, how, scores)
        if got == "undecided":  # exactly on a boundary: never with these numbers
            pytest.fail(f"{text}: undecided at exact values {values}")
        assert (got == "pass") == expected, (text, values)


def test_ratio_rules_for_no_regression_and_retention():
    for ratio, mean in itertools.product((0.95, 1.0), (True, False)):
        rules = _ratio_rules("cand", ["p1", "p2"], COLS, ratio, mean, "g")
        for cand, p1, p2 in itertools.product((0.3, 0.5, 0.7), repeat=3):
            scores = np.array([cand, p1, p2, 0.5])
            expected = cand >= ratio * ((p1 + p2) / 2 if mean else max(p1, p2)) - 1e-12
            assert (_verdict(rules, "all", scores) == "pass") == expected


def test_rounds_grow_by_a_quarter_and_end_at_n():
    assert checkpoints(200) == [32, 64, 96, 128, 160, 200]
    points = checkpoints(14_042)
    assert points[-1] == 14_042 and len(points) < 30
    steps = np.diff([0, *points])
    assert all(s >= 32 for s in steps[:-1])
    assert all(b - a == max(32, math.ceil(a / 4)) for a, b in itertools.pairwise(points[:-1]))
