"""Gates: the deployment checklist, evaluated per candidate.

Each gate ends as "pass", "fail" or "not evaluated". A gate whose numbers are not all available (a suite
not run or incomplete, a check type the plan does not have, a sign-off not recorded) is "not evaluated",
never "pass". `verdict` turns the list into the exit code of `mergeval gate`:

    0  every gate passed
    1  at least one gate failed
    2  user error (bad plan, missing model, ...: raised as UserError before any gate is evaluated)
    3  no gate failed but at least one is not evaluated
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from statistics import fmean
from typing import Any

from mergeval.compare.bands import leaderboard_band, mtbench_band
from mergeval.compare.collected import Collected
from mergeval.plan import (
    NoRegressionGate,
    Plan,
    RetentionGate,
    SanityGate,
    ScoreGate,
    SignOffGate,
    apply_reference_arithmetic,
    parse_number,
    plan_vocabulary,
    split_reference,
)

PASS, FAIL, NOT_EVALUATED = "pass", "fail", "not evaluated"
EXIT_PASS, EXIT_FAIL, EXIT_USER_ERROR, EXIT_NOT_EVALUATED = 0, 1, 2, 3
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def _row(
    gate: Any, candidate: str, multi: bool, status: str, value: Any, threshold: Any, detail: str
) -> dict[str, Any]:
    label = gate.label
    return {
        "name": f"{candidate}: {label}" if multi else label,
        "description": gate.description or _DESCRIPTIONS.get(gate.type, ""),
        "status": status,
        "value": value,
        "threshold": threshold,
        "detail": detail,
        "candidate": candidate,
    }


_DESCRIPTIONS = {
    "score": "a measured number against a threshold",
    "no-regression": "no critical benchmark below min(parents) x (1 - tolerance)",
    "retention": "merged score / parents' score (capability retention)",
    "sanity": "generation and weight sanity checks all pass",
    "sign-off": "manual testing on diverse prompts, signed off by a person",
}


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}" if abs(x) >= 1 or x == 0 else f"{x:.3f}"


def _reference_value(data: Collected, ref: str, metric: str) -> tuple[float | None, str, str]:
    """(threshold, why unavailable, how it was computed) for a reference expression or number, with an
    optional `* NUMBER`, `+ NUMBER` or `- NUMBER` (e.g. `mean(parents) * 1.02`)."""
    number = parse_number(ref)
    if number is not None:
        return number, "", ""
    base, op, operand = split_reference(ref)
    if op is not None:
        value, why, how = _reference_value(data, base, metric)
        if value is None:
            return None, why, how
        return apply_reference_arithmetic(value, op, operand), "", f"{how}; {base} {op} {operand:g}"
    for fn_name, fn in (("min", min), ("max", max), ("mean", fmean)):
        for group, role in (("parents", "parent"), ("baselines", "baseline")):
            if ref == f"{fn_name}({group})":
                models = data.by_role(role)
                return _aggregate(data, [m.name for m in models], metric, fn, ref)
    names = [m.name for m in data.by_role("base")] if ref == "base" else [ref]
    return _aggregate(data, names, metric, lambda values: values[0], ref)


def _aggregate(
    data: Collected, names: Sequence[str], metric: str, fn, ref: str
) -> tuple[float | None, str, str]:
    values = {}
    for name in names:
        value, why = data.metric(name, metric)
        if value is None:
            return None, why, ""
        values[name] = value
    if not values:
        return None, f"no model for {ref}", ""
    shown = ", ".join(f"{n} {_fmt(v)}" for n, v in values.items())
    return fn(list(values.values())), "", shown


def _not_measured(plan: Plan, metric: str) -> str:
    from mergeval.compare.registry import check_types, known_metrics

    vocab = plan_vocabulary(plan)
    if metric in vocab.benchmarks or metric in vocab.facts or metric == "average":
        return "run `mergeval run` to evaluate it"
    provider = known_metrics().get(metric)
    if provider and provider not in check_types():
        return f"no check in the plan measures {metric} (check type '{provider}' is not in this install)"
    if provider:
        return f"no check in the plan measures {metric}; add `- type: {provider}` to `checks:`"
    return f"no check in the plan measures {metric}"


def score_gate(gate: ScoreGate, candidate: str, data: Collected, multi: bool) -> dict[str, Any]:
    threshold_ref = str(gate.than)
    value, why = data.metric(candidate, gate.metric)
    if value is None:
        hint = _not_measured(data.plan, gate.metric)
        return _row(gate, candidate, multi, NOT_EVALUATED, None, threshold_ref, f"{why}; {hint}")
    threshold, why_ref, how = _reference_value(data, threshold_ref, gate.metric)
    if threshold is None:
        return _row(
            gate,
            candidate,
            multi,
            NOT_EVALUATED,
            value,
            threshold_ref,
            f"{threshold_ref} unavailable: {why_ref}; {_not_measured(data.plan, gate.metric)}",
        )
    ok = _OPS[gate.op](value, threshold)
    detail = f"{candidate} {_fmt(value)} {gate.op} {_fmt(threshold)}"
    if how:
        detail += f" ({threshold_ref}: {how})"
    detail += f": {'yes' if ok else 'no'}"
    band = _band(data, gate.metric, value)
    if band:
        detail += f" [{band}]"
    return _row(gate, candidate, multi, PASS if ok else FAIL, value, threshold, detail)


def _band(data: Collected, metric: str, value: float) -> str:
    if (
        metric == "average"
        and data.suite
        and data.suite.get("name") == "leaderboard-v1"
        and len(data.average_benchmarks) == 6
    ):
        label = leaderboard_band(value)
        return f"leaderboard band: {label}" + (f", on a limit={data.limit} subset" if data.limit else "")
    if metric == "mtbench":
        return f"MT-Bench band: {mtbench_band(value)}"
    return ""


def no_regression_gate(
    gate: NoRegressionGate, candidate: str, data: Collected, regressions: Sequence[Mapping], multi: bool
) -> dict[str, Any]:
    tasks = gate.tasks or [b.name for b in data.benchmarks]
    rows = {r["benchmark"]: r for r in regressions if r["candidate"] == candidate}
    failed, possible, unavailable = [], [], []
    for task in tasks:
        row = rows.get(task)
        if row is None:
            _, why = data.metric(candidate, task)
            if not why:
                why = next(
                    (w for p in data.by_role("parent") for w in [data.metric(p.name, task)[1]] if w),
                    f"{task} not evaluated",
                )
            unavailable.append(why)
            continue
        line = (
            f"{task}: {_fmt(row['merged'])} vs threshold {_fmt(row['threshold'])} "
            f"(parents {', '.join(f'{n} {_fmt(v)}' for n, v in row['parents'].items())})"
        )
        if row["point_rule"] and (gate.rule == "point" or row["significant"]):
            failed.append(line + (" [significant]" if row["significant"] else " [not significant]"))
        elif row["point_rule"]:
            possible.append(line + " [not significant]")
    threshold = gate.tolerance if gate.tolerance is not None else data.plan.settings.tolerance
    if failed:
        return _row(gate, candidate, multi, FAIL, len(failed), 0, "regressions: " + "; ".join(failed))
    if unavailable:
        return _row(gate, candidate, multi, NOT_EVALUATED, None, 0, "; ".join(dict.fromkeys(unavailable)))
    detail = (
        f"no benchmark below min(parents) x {1 - threshold:.2f} ({len(tasks)} checked, rule: {gate.rule})"
    )
    if possible:
        detail += "; possible regressions the paired test does not confirm: " + "; ".join(possible)
    return _row(gate, candidate, multi, PASS, 0, 0, detail)


def retention_gate(
    gate: RetentionGate, candidate: str, data: Collected, retention: Sequence[Mapping], multi: bool
) -> dict[str, Any]:
    key = "vs_mean_parents" if gate.vs == "mean-parents" else "vs_best_parent"
    tasks = gate.tasks or ["average"]
    rows = {r["benchmark"]: r for r in retention if r["candidate"] == candidate}
    ratios, missing = {}, []
    for task in tasks:
        row = rows.get(task)
        if row is None or row.get(key) is None:
            _, why = data.metric(candidate, task)
            parent_why = [data.metric(p.name, task)[1] for p in data.by_role("parent")]
            missing.append(why or next((w for w in parent_why if w), f"no retention for {task}"))
            continue
        ratios[task] = row[key]
    at_least = float(gate.at_least)
    if missing:
        return _row(gate, candidate, multi, NOT_EVALUATED, None, at_least, "; ".join(dict.fromkeys(missing)))
    worst = min(ratios, key=ratios.get)
    low = [f"{t} {r:.1%}" for t, r in ratios.items() if r < at_least]
    detail = ", ".join(f"{t} {r:.1%}" for t, r in ratios.items())
    if low:
        return _row(
            gate, candidate, multi, FAIL, ratios[worst], at_least, f"below {at_least:.0%}: {', '.join(low)}"
        )
    return _row(gate, candidate, multi, PASS, ratios[worst], at_least, detail)


def sanity_gate(gate: SanityGate, candidate: str, data: Collected, multi: bool) -> dict[str, Any]:
    rows = [r for r in data.sanity if r["model"] == candidate]
    if not rows:
        has_check = any(c.type == "sanity" for c in data.plan.checks)
        why = (
            "sanity checks not run yet; `mergeval run` runs them"
            if has_check
            else "no sanity check in the plan; add `- type: sanity` to `checks:`"
        )
        return _row(gate, candidate, multi, NOT_EVALUATED, None, None, why)
    failed = [r for r in rows if r["status"] != "pass"]
    value = f"{len(rows) - len(failed)}/{len(rows)} passed"
    if failed:
        return _row(
            gate,
            candidate,
            multi,
            FAIL,
            value,
            f"{len(rows)}/{len(rows)}",
            "; ".join(f"{r['check']}: {r['detail']}" for r in failed),
        )
    return _row(
        gate, candidate, multi, PASS, value, f"{len(rows)}/{len(rows)}", ", ".join(r["check"] for r in rows)
    )


def sign_off_gate(
    gate: SignOffGate, candidate: str, fingerprint: str, plan: Plan, multi: bool
) -> dict[str, Any]:
    sign = plan.sign_off
    if sign is None:
        return _row(
            gate,
            candidate,
            multi,
            NOT_EVALUATED,
            None,
            None,
            "no sign-off recorded: after testing the merge by hand on diverse prompts, add "
            "`sign_off: {by: NAME, date: YYYY-MM-DD, fingerprint: " + fingerprint[:12] + "}` to the plan",
        )
    if sign.candidate and sign.candidate != candidate:
        return _row(
            gate,
            candidate,
            multi,
            NOT_EVALUATED,
            None,
            None,
            f"the sign-off is for {sign.candidate}, not {candidate}",
        )
    if sign.fingerprint and not fingerprint.startswith(sign.fingerprint):
        return _row(
            gate,
            candidate,
            multi,
            FAIL,
            fingerprint[:12],
            sign.fingerprint,
            f"signed off by {sign.by} for weights {sign.fingerprint}, but {candidate} is now "
            f"{fingerprint[:12]}: the model changed since; test it again and update the sign-off",
        )
    when = f" on {sign.date}" if sign.date else ""
    notes = f": {sign.notes}" if sign.notes else ""
    pinned = "" if sign.fingerprint else " (not pinned to a fingerprint)"
    return _row(gate, candidate, multi, PASS, sign.by, None, f"signed off by {sign.by}{when}{pinned}{notes}")


def evaluate_gates(
    data: Collected, *, retention: Sequence[Mapping], regressions: Sequence[Mapping]
) -> list[dict[str, Any]]:
    """Every gate of the plan for every candidate, in plan order."""
    plan = data.plan
    candidates = data.by_role("candidate")
    multi = len(candidates) > 1
    rows = []
    for gate in plan.gates:
        for cand in candidates:
            if isinstance(gate, ScoreGate):
                rows.append(score_gate(gate, cand.name, data, multi))
            elif isinstance(gate, NoRegressionGate):
                rows.append(no_regression_gate(gate, cand.name, data, regressions, multi))
            elif isinstance(gate, RetentionGate):
                rows.append(retention_gate(gate, cand.name, data, retention, multi))
            elif isinstance(gate, SanityGate):
                rows.append(sanity_gate(gate, cand.name, data, multi))
            elif isinstance(gate, SignOffGate):
                rows.append(sign_off_gate(gate, cand.name, cand.fingerprint, plan, multi))
    return rows


def verdict(gates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """{status, exit_code, summary} from the gate rows."""
    failed = [g for g in gates if g["status"] == FAIL]
    open_ = [g for g in gates if g["status"] == NOT_EVALUATED]
    passed = [g for g in gates if g["status"] == PASS]
    counts = f"{len(passed)} passed, {len(failed)} failed, {len(open_)} not evaluated"
    if failed:
        return {
            "status": "fail",
            "exit_code": EXIT_FAIL,
            "summary": f"FAIL ({counts}): " + "; ".join(g["name"] for g in failed),
        }
    if open_:
        return {
            "status": "incomplete",
            "exit_code": EXIT_NOT_EVALUATED,
            "summary": f"INCOMPLETE ({counts}): not evaluated: " + "; ".join(g["name"] for g in open_),
        }
    if not gates:
        return {"status": "pass", "exit_code": EXIT_PASS, "summary": "no gates in the plan (nothing to fail)"}
    return {"status": "pass", "exit_code": EXIT_PASS, "summary": f"PASS ({counts})"}
