"""Gates: the deployment checklist of a plan, as data and as rules.

A gate is a mapping with a `type` (score, no-regression, retention, sanity, sign-off) or a one-line shorthand
(`average >= min(parents)`, `gsm8k >= mean(parents) * 1.02`, `retention >= 95%`, `no regressions on gsm8k`,
`sanity`, `sign-off`). Each gate class knows how to evaluate itself for a candidate (`evaluate`), from the
comparison's numbers (`GateData`, which `mergeval.analysis.Collected` provides).

Each gate ends as "pass", "fail" or "not evaluated". A gate whose numbers are not all available (a suite not
run or incomplete, a check type the plan does not have, a sign-off not recorded) is "not evaluated", never
"pass". `verdict` turns the results into the exit code of `mergeval gate`:

    0  every gate passed
    1  at least one gate failed
    2  user error (bad plan, missing model, ...: raised as UserError before any gate is evaluated)
    3  no gate failed but at least one is not evaluated
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import Field, field_validator, model_validator

from mergeval.plan.yaml_errors import Strict
from mergeval.report import (
    EXIT_FAIL,
    EXIT_NOT_EVALUATED,
    EXIT_PASS,
    EXIT_USER_ERROR,
    FAIL,
    NOT_EVALUATED,
    PASS,
    GateResult,
    RegressionRow,
    RetentionRow,
    Verdict,
)

# Reference expressions a score gate compares against (besides numbers and model names).
GATE_REFERENCES = (
    "min(parents)",
    "max(parents)",
    "mean(parents)",
    "base",
    "min(baselines)",
    "max(baselines)",
    "mean(baselines)",
)
GATE_OPERATORS = (">=", "<=", ">", "<")
# Metrics computed from the other numbers rather than measured by one check.
DERIVED_METRICS = ("average",)
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


# -- numbers and reference expressions ----------------------------------------------------------------------

# `REFERENCE OP NUMBER` with spaces around OP (so `model-2` stays a model name): `mean(parents) * 1.02`,
# `max(parents) + 1`, `base - 2`, `mean(parents) * 102%`.
_REFERENCE_ARITHMETIC = re.compile(r"^(.+?)\s+([*+-])\s+(\S+)$")


def parse_number(value: Any) -> float | None:
    """`0.95`, `95%` (= 0.95) or `70` -> float; anything else -> None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        return None


def split_reference(ref: str) -> tuple[str, str | None, float | None]:
    """`mean(parents) * 1.02` -> ("mean(parents)", "*", 1.02); a plain reference -> (ref, None, None).
    ValueError for an operand that is not a number, or a percentage added or subtracted (ambiguous:
    points or a fraction?)."""
    match = _REFERENCE_ARITHMETIC.match(ref.strip())
    if match is None:
        return ref.strip(), None, None
    base, op, operand_text = match.groups()
    operand = parse_number(operand_text)
    if operand is None:
        raise ValueError(f"'{operand_text}' after '{op}' in '{ref}' is not a number")
    if operand_text.endswith("%") and op != "*":
        raise ValueError(
            f"'{ref}': a percentage can only multiply (`* 102%` = 2% more); add or subtract points as a "
            f"plain number (`{op} 2`)"
        )
    return base.strip(), op, operand


def apply_reference_arithmetic(value: float, op: str | None, number: float | None) -> float:
    if op is None or number is None:
        return value
    return value * number if op == "*" else value + number if op == "+" else value - number


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}" if abs(x) >= 1 or x == 0 else f"{x:.3f}"


# -- what gates read ----------------------------------------------------------------------------------------


class GateModel(Protocol):
    """A plan model as gates see it."""

    @property
    def name(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...


class GateData(Protocol):
    """The comparison's numbers, as gates read them (mergeval.analysis.Collected implements this)."""

    def metric(self, model: str, metric: str) -> tuple[float | None, str]:
        """(value, "") or (None, why it is not available)."""

    def by_role(self, role: str) -> Sequence[GateModel]: ...

    def sanity_rows(self, model: str) -> list[Mapping[str, Any]]:
        """The model's sanity results: {check, status, detail}."""

    def has_check(self, check_type: str) -> bool: ...

    def benchmark_names(self) -> list[str]: ...

    def band_note(self, metric: str, value: float) -> str:
        """The quality band of a value ("MT-Bench band: good"), or ""."""

    def not_measured(self, metric: str) -> str:
        """What to do about a metric no result exists for."""

    @property
    def tolerance(self) -> float: ...

    @property
    def sign_off(self) -> Any: ...


@dataclass(frozen=True)
class GateInputs:
    """Everything a gate evaluation reads: the numbers and the retention and regression rows."""

    data: GateData
    retention: Sequence[RetentionRow] = ()
    regressions: Sequence[RegressionRow] = ()
    multi: bool = False  # several candidates: result names say which one

    def result(
        self, gate: GateBase, candidate: str, status: str, value: Any, threshold: Any, detail: str
    ) -> GateResult:
        label = gate.label
        return GateResult(
            name=f"{candidate}: {label}" if self.multi else label,
            description=gate.description or gate.summary,
            status=status,
            value=value,
            threshold=threshold,
            detail=detail,
            candidate=candidate,
        )

    def first_reason(self, candidate: str, benchmark: str, fallback: str) -> str:
        """Why a benchmark has no row: the candidate's reason, else the first parent's, else `fallback`."""
        _, why = self.data.metric(candidate, benchmark)
        if why:
            return why
        parents = [self.data.metric(p.name, benchmark)[1] for p in self.data.by_role("parent")]
        return next((w for w in parents if w), fallback)


# -- the gates ----------------------------------------------------------------------------------------------


class GateBase(Strict):
    name: str | None = Field(None, description="what the checklist calls this gate")
    description: str | None = None

    summary: ClassVar[str] = ""  # what the gate checks, in one line (the report's description)

    @property
    def label(self) -> str:
        return self.name or self.type  # type: ignore[attr-defined]

    def evaluate(self, candidate: GateModel, inputs: GateInputs) -> GateResult:
        raise NotImplementedError


class ScoreGate(GateBase):
    """A number compared with a threshold: `{metric: average, at_least: min(parents)}`."""

    yaml_hidden_keys: ClassVar[tuple[str, ...]] = ("op", "than")  # the shorthand's form
    summary: ClassVar[str] = "a measured number against a threshold"

    type: Literal["score"] = "score"
    metric: str = Field(
        description="average, a benchmark (arc, gsm8k, mmlu, ...) or a measured fact "
        "(mtbench, win_rate, size_gb, tokens_per_second, ...)"
    )
    op: Literal[">=", "<=", ">", "<"] | None = None
    at_least: float | str | None = None
    at_most: float | str | None = None
    than: float | str | None = None  # with `op` (the shorthand form)

    @model_validator(mode="after")
    def _one_bound(self) -> ScoreGate:
        bounds = [(">=", self.at_least), ("<=", self.at_most)] + ([(self.op, self.than)] if self.op else [])
        given = [(op, ref) for op, ref in bounds if ref is not None]
        if len(given) != 1:
            raise ValueError(
                f"a score gate needs exactly one bound: `at_least: X` or `at_most: X` "
                f"(X a number or one of {', '.join(GATE_REFERENCES)} or a model name)"
            )
        self.op, self.than = given[0]
        self.at_least = self.at_most = None
        return self

    @property
    def label(self) -> str:
        return self.name or f"{self.metric} {self.op} {self.than}"

    def evaluate(self, candidate: GateModel, inputs: GateInputs) -> GateResult:
        data, name, ref = inputs.data, candidate.name, str(self.than)
        value, why = data.metric(name, self.metric)
        if value is None:
            return inputs.result(
                self, name, NOT_EVALUATED, None, ref, f"{why}; {data.not_measured(self.metric)}"
            )
        threshold, why_ref, how = _reference_value(data, ref, self.metric)
        if threshold is None:
            detail = f"{ref} unavailable: {why_ref}; {data.not_measured(self.metric)}"
            return inputs.result(self, name, NOT_EVALUATED, value, ref, detail)
        ok = _OPS[str(self.op)](value, threshold)
        detail = f"{name} {_fmt(value)} {self.op} {_fmt(threshold)}"
        if how:
            detail += f" ({ref}: {how})"
        detail += f": {'yes' if ok else 'no'}"
        band = data.band_note(self.metric, value)
        if band:
            detail += f" [{band}]"
        return inputs.result(self, name, PASS if ok else FAIL, value, threshold, detail)


class NoRegressionGate(GateBase):
    """No benchmark regresses below min(parents) x (1 - tolerance) (the methodology's regression test)."""

    summary: ClassVar[str] = "no critical benchmark below min(parents) x (1 - tolerance)"

    type: Literal["no-regression"] = "no-regression"
    tasks: list[str] | None = Field(None, description="the critical benchmarks (default: all)")
    tolerance: float | None = Field(None, ge=0, lt=1, description="default: settings.tolerance")
    rule: Literal["point", "significant"] = Field(
        "point", description="point: the methodology's rule; significant: also needs the paired test"
    )

    @property
    def label(self) -> str:
        where = f" on {', '.join(self.tasks)}" if self.tasks else ""
        return self.name or f"no regressions{where}"

    def evaluate(self, candidate: GateModel, inputs: GateInputs) -> GateResult:
        data, name = inputs.data, candidate.name
        tasks = self.tasks or data.benchmark_names()
        rows = {r.benchmark: r for r in inputs.regressions if r.candidate == name}
        failed, possible, unavailable = [], [], []
        for task in tasks:
            row = rows.get(task)
            if row is None:
                unavailable.append(inputs.first_reason(name, task, f"{task} not evaluated"))
                continue
            parents = ", ".join(f"{n} {_fmt(v)}" for n, v in row.parents.items())
            line = f"{task}: {_fmt(row.merged)} vs threshold {_fmt(row.threshold)} (parents {parents})"
            if row.point_rule and (self.rule == "point" or row.significant):
                failed.append(line + (" [significant]" if row.significant else " [not significant]"))
            elif row.point_rule:
                possible.append(line + " [not significant]")
        if failed:
            return inputs.result(self, name, FAIL, len(failed), 0, "regressions: " + "; ".join(failed))
        if unavailable:
            return inputs.result(self, name, NOT_EVALUATED, None, 0, "; ".join(dict.fromkeys(unavailable)))
        tolerance = self.tolerance if self.tolerance is not None else data.tolerance
        detail = (
            f"no benchmark below min(parents) x {1 - tolerance:.2f} ({len(tasks)} checked, rule: {self.rule})"
        )
        if possible:
            detail += "; possible regressions the paired test does not confirm: " + "; ".join(possible)
        return inputs.result(self, name, PASS, 0, 0, detail)


class RetentionGate(GateBase):
    """Capability retention: merged / mean(parents) (or / best parent) at least `at_least`."""

    summary: ClassVar[str] = "merged score / parents' score (capability retention)"

    type: Literal["retention"] = "retention"
    at_least: float | str = Field(0.95, description="ratio: 0.95 or 95%")
    vs: Literal["mean-parents", "best-parent"] = "mean-parents"
    tasks: list[str] | None = Field(None, description="benchmarks to check (default: the suite average)")

    @field_validator("at_least")
    @classmethod
    def _ratio(cls, value: Any) -> float:
        number = parse_number(value)
        if number is None or number <= 0:
            raise ValueError(f"at_least must be a ratio like 0.95 or 95%, not {value!r}")
        return number

    @property
    def label(self) -> str:
        what = ", ".join(self.tasks) if self.tasks else "average"
        vs = "mean of parents" if self.vs == "mean-parents" else "best parent"
        return self.name or f"retention of {what} >= {float(self.at_least):.0%} of the {vs}"

    def evaluate(self, candidate: GateModel, inputs: GateInputs) -> GateResult:
        name = candidate.name
        key = "vs_mean_parents" if self.vs == "mean-parents" else "vs_best_parent"
        rows = {r.benchmark: r for r in inputs.retention if r.candidate == name}
        ratios: dict[str, float] = {}
        missing = []
        for task in self.tasks or ["average"]:
            ratio = getattr(rows[task], key) if task in rows else None
            if ratio is None:
                missing.append(inputs.first_reason(name, task, f"no retention for {task}"))
            else:
                ratios[task] = ratio
        at_least = float(self.at_least)
        if missing:
            return inputs.result(self, name, NOT_EVALUATED, None, at_least, "; ".join(dict.fromkeys(missing)))
        worst = min(ratios, key=lambda t: ratios[t])
        low = [f"{t} {r:.1%}" for t, r in ratios.items() if r < at_least]
        if low:
            return inputs.result(
                self, name, FAIL, ratios[worst], at_least, f"below {at_least:.0%}: {', '.join(low)}"
            )
        detail = ", ".join(f"{t} {r:.1%}" for t, r in ratios.items())
        return inputs.result(self, name, PASS, ratios[worst], at_least, detail)


class SanityGate(GateBase):
    """Every sanity check of every candidate passes."""

    summary: ClassVar[str] = "generation and weight sanity checks all pass"

    type: Literal["sanity"] = "sanity"

    @property
    def label(self) -> str:
        return self.name or "sanity checks pass"

    def evaluate(self, candidate: GateModel, inputs: GateInputs) -> GateResult:
        name = candidate.name
        rows = inputs.data.sanity_rows(name)
        if not rows:
            why = (
                "sanity checks not run yet; `mergeval run` runs them"
                if inputs.data.has_check("sanity")
                else "no sanity check in the plan; add `- type: sanity` to `checks:`"
            )
            return inputs.result(self, name, NOT_EVALUATED, None, None, why)
        failed = [r for r in rows if r["status"] != PASS]
        value, everything = f"{len(rows) - len(failed)}/{len(rows)} passed", f"{len(rows)}/{len(rows)}"
        if failed:
            detail = "; ".join(f"{r['check']}: {r['detail']}" for r in failed)
            return inputs.result(self, name, FAIL, value, everything, detail)
        return inputs.result(self, name, PASS, value, everything, ", ".join(r["check"] for r in rows))


class SignOffGate(GateBase):
    """Manual testing on diverse prompts, signed off by a person in the plan's `sign_off:`."""

    summary: ClassVar[str] = "manual testing on diverse prompts, signed off by a person"

    type: Literal["sign-off"] = "sign-off"

    @property
    def label(self) -> str:
        return self.name or "manual testing signed off"

    def evaluate(self, candidate: GateModel, inputs: GateInputs) -> GateResult:
        name, fingerprint, sign = candidate.name, candidate.fingerprint, inputs.data.sign_off
        if sign is None:
            detail = (
                "no sign-off recorded: after testing the merge by hand on diverse prompts, add "
                "`sign_off: {by: NAME, date: YYYY-MM-DD, fingerprint: " + fingerprint[:12] + "}` to the plan"
            )
            return inputs.result(self, name, NOT_EVALUATED, None, None, detail)
        if sign.candidate and sign.candidate != name:
            detail = f"the sign-off is for {sign.candidate}, not {name}"
            return inputs.result(self, name, NOT_EVALUATED, None, None, detail)
        if sign.fingerprint and not fingerprint.startswith(sign.fingerprint):
            detail = (
                f"signed off by {sign.by} for weights {sign.fingerprint}, but {name} is now "
                f"{fingerprint[:12]}: the model changed since; test it again and update the sign-off"
            )
            return inputs.result(self, name, FAIL, fingerprint[:12], sign.fingerprint, detail)
        when = f" on {sign.date}" if sign.date else ""
        notes = f": {sign.notes}" if sign.notes else ""
        pinned = "" if sign.fingerprint else " (not pinned to a fingerprint)"
        return inputs.result(self, name, PASS, sign.by, None, f"signed off by {sign.by}{when}{pinned}{notes}")


GATE_TYPES: dict[str, type[GateBase]] = {
    "score": ScoreGate,
    "no-regression": NoRegressionGate,
    "retention": RetentionGate,
    "sanity": SanityGate,
    "sign-off": SignOffGate,
}


# -- reference values ---------------------------------------------------------------------------------------


def _reference_value(data: GateData, ref: str, metric: str) -> tuple[float | None, str, str]:
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
                return _aggregate(data, [m.name for m in data.by_role(role)], metric, fn, ref)
    names = [m.name for m in data.by_role("base")] if ref == "base" else [ref]
    return _aggregate(data, names, metric, lambda values: values[0], ref)


def _aggregate(
    data: GateData, names: Sequence[str], metric: str, fn: Callable[[list[float]], float], ref: str
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


# -- evaluation -----------------------------------------------------------------------------------------------


def evaluate_gates(
    gates: Sequence[GateBase],
    data: GateData,
    *,
    retention: Sequence[RetentionRow] = (),
    regressions: Sequence[RegressionRow] = (),
) -> list[GateResult]:
    """Every gate for every candidate, in plan order."""
    candidates = data.by_role("candidate")
    inputs = GateInputs(data, retention, regressions, multi=len(candidates) > 1)
    return [gate.evaluate(cand, inputs) for gate in gates for cand in candidates]


def verdict(gates: Sequence[GateResult]) -> Verdict:
    """{status, exit_code, summary} from the gate results."""
    return Verdict.of(list(gates))


# -- the shorthand ------------------------------------------------------------------------------------------

_SHORTHAND_SCORE = re.compile(r"^\s*([A-Za-z_][\w./-]*)\s*(>=|<=|>|<)\s*(.+?)\s*$")
_SHORTHAND_NO_REGRESSION = re.compile(r"^\s*no[ -]regressions?(?:\s+(?:on|in)\s+(.+?))?\s*$", re.IGNORECASE)
SHORTHAND_HELP = (
    "write a gate as `METRIC >= REFERENCE` (e.g. `average >= min(parents)`, `gsm8k >= mean(parents) * 1.02`, "
    "`win_rate >= 45%`, `size_gb <= 16`), `retention >= 95%`, `no regressions [on gsm8k, mmlu]`, `sanity` or "
    "`sign-off`, or as a mapping with a `type` (" + ", ".join(GATE_TYPES) + ")"
)


def gate_from_shorthand(text: str) -> dict[str, Any]:
    """A one-line gate -> the mapping form; ValueError with the accepted forms otherwise."""
    lowered = text.strip().lower()
    if lowered in ("sanity", "sanity checks", "sanity checks pass"):
        return {"type": "sanity"}
    if lowered in ("sign-off", "signoff", "signed off", "sign off", "manual sign-off"):
        return {"type": "sign-off"}
    match = _SHORTHAND_NO_REGRESSION.match(text)
    if match:
        tasks = [t.strip() for t in re.split(r"[,\s]+", match.group(1) or "") if t.strip()]
        return {"type": "no-regression", "tasks": tasks or None, "name": text.strip()}
    match = _SHORTHAND_SCORE.match(text)
    if match is None:
        raise ValueError(f"cannot read the gate {text!r}: {SHORTHAND_HELP}")
    metric, op, ref = match.groups()
    if metric == "retention":
        if op not in (">=", ">"):
            raise ValueError(f"{text!r}: retention gates are `retention >= RATIO` (e.g. 95%)")
        return {"type": "retention", "at_least": ref, "name": text.strip()}
    number = parse_number(ref)
    return {
        "type": "score",
        "metric": metric,
        "op": op,
        "than": number if number is not None else ref,
        "name": text.strip(),
    }


def gate_mapping(item: Any) -> Any:
    """A plan's gate entry in mapping form: shorthand read, the type of `{metric: ...}` inferred."""
    if isinstance(item, str):
        return gate_from_shorthand(item)
    if isinstance(item, Mapping) and "type" not in item and "metric" in item:
        return {**item, "type": "score"}
    return item


# A gate of the plan, validated by its `type` (the plan reads shorthand strings with `gate_mapping` first).
Gate = Annotated[
    ScoreGate | NoRegressionGate | RetentionGate | SanityGate | SignOffGate, Field(discriminator="type")
]

__all__ = [
    "DERIVED_METRICS",
    "EXIT_FAIL",
    "EXIT_NOT_EVALUATED",
    "EXIT_PASS",
    "EXIT_USER_ERROR",
    "FAIL",
    "GATE_OPERATORS",
    "GATE_REFERENCES",
    "GATE_TYPES",
    "NOT_EVALUATED",
    "PASS",
    "SHORTHAND_HELP",
    "Gate",
    "GateBase",
    "GateData",
    "GateInputs",
    "GateModel",
    "NoRegressionGate",
    "RetentionGate",
    "SanityGate",
    "ScoreGate",
    "SignOffGate",
    "apply_reference_arithmetic",
    "evaluate_gates",
    "gate_from_shorthand",
    "gate_mapping",
    "parse_number",
    "split_reference",
    "verdict",
]
