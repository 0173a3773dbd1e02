"""The comparison report as a typed, versioned document: what `mergeval run` / `compare` produce, what every
renderer (terminal, Markdown, HTML, JSON) takes, and what `report.json` holds.

    report = mergeval.compare("mergeval.yaml")      # a Report
    report.verdict.status, report.gates[0].detail   # typed access
    report.to_json()                                # the report.json document (schema "mergeval.report/1")
    Report.from_json(text)                          # back (older files and partial reports validate too)

The JSON schema of the document is generated from these models (`json_schema()`, written to
docs/report.schema.json by `write_json_schema()`; a test keeps the file current).

Reading rules, so a report written by an older mergeval, or a hand-made partial one, still renders: every
key but the identifying ones may be missing, and `null` where a list, mapping or text is expected means
"absent" (the default). Some keys are written only when they were set (`raw` beside a normalised score,
`normalized` on a normalised benchmark, a suite's `average_note`, ...), so a document read and written again
is the same document.

Beyond the JSON document, a Report built by mergeval carries the MetricSpec of every benchmark and fact
(`metrics`: scale, unit, range, direction, bands), which renderers read instead of special-casing check
types. They are not part of report.json (schema /1 is unchanged); a report read from JSON gets plain
defaults from its benchmark entries (`Report.metric`).

For code written against the plain dict this replaces, `report["scores"]` (and `.get(...)`, `in`) on a
Report or any part of it gives that key's JSON value; new code reads attributes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from mergeval.core.check import MetricSpec
from mergeval.errors import UserError

SCHEMA = "mergeval.report/1"
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "report.schema.json"

Number = int | float  # values as the check measured them (an int stays an int in the JSON)
GateValue = bool | int | float | str | None

PASS, FAIL, NOT_EVALUATED = "pass", "fail", "not evaluated"
# The key of the Average's quality band in `bands` (schema /1 names it after the leaderboard, whose Average the
# methodology's bands were made for); every other key is the name of a metric with bands.
AVERAGE_BAND = "leaderboard"
EXIT_PASS, EXIT_FAIL, EXIT_USER_ERROR, EXIT_NOT_EVALUATED = 0, 1, 2, 3


class ReportPart(BaseModel):
    """Base of every part of the report: lenient on reading, exact on writing."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    # Keys written only when they were set (read from a document, or given when the part was built).
    written_when_set: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        """`null` for a key whose default is not null (a list, a mapping, a text) means "not there"."""
        if not isinstance(data, Mapping):
            return data
        out = _finite(data)  # NaN and infinities: nothing to say -> null (report.json is strict JSON)
        for key, value in list(out.items()):
            info = cls.model_fields.get(key)
            if value is None and info is not None and not info.is_required() and _default(info) is not None:
                del out[key]
        return out

    @model_serializer(mode="wrap")
    def _drop_unset_optional_keys(self, handler: Any):  # no return annotation: the schema stays the fields
        data = handler(self)
        for key in self.written_when_set:
            if key not in self.model_fields_set:
                data.pop(key, None)
        return data

    # -- read like the dict it replaces --

    def __getitem__(self, key: str) -> Any:
        keys = self._keys()
        if key not in keys:
            raise KeyError(key)
        return self.model_dump(mode="json", by_alias=True, include={keys[key]})[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self._keys() else default

    def __contains__(self, key: object) -> bool:
        return key in self._keys()

    def _keys(self) -> dict[str, str]:
        """JSON key -> attribute name, for the keys this part writes."""
        keys = {
            (info.serialization_alias or name): name
            for name, info in type(self).model_fields.items()
            if not info.exclude and (name not in self.written_when_set or name in self.model_fields_set)
        }
        return keys | {k: k for k in self.__pydantic_extra__ or {}}

    def to_dict(self) -> dict[str, Any]:
        """This part as plain JSON data (the keys as report.json writes them)."""
        return self.model_dump(mode="json", by_alias=True)


def _default(info: Any) -> Any:
    return info.default_factory() if info.default_factory is not None else info.default


class OpenPart(ReportPart):
    """A part whose keys are open (suite info, merge recipes, provenance): unknown keys are kept."""

    model_config = ConfigDict(extra="allow")


# -- who and what -------------------------------------------------------------------------------------------


class SuiteInfo(OpenPart):
    """The primary suite (its benchmarks make the Average)."""

    written_when_set: ClassVar[frozenset[str]] = frozenset({"average_note"})

    name: str = ""
    label: str = ""
    note: str = ""
    average_note: str = ""  # what the Average covers, when not every benchmark (leaderboard v2, gated GPQA)


class MergeInfo(OpenPart):
    """How a candidate was made (mergekit), from the store or the plan's `merge_config`."""

    written_when_set: ClassVar[frozenset[str]] = frozenset({"config_file"})

    method: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    mergekit_version: str | None = None
    parents: list[str] = Field(default_factory=list)
    config_file: str | None = None


class ModelEntry(ReportPart):
    name: str
    fingerprint: str = ""
    role: str = "model"  # candidate | parent | base | baseline
    reference: str = ""
    merge: MergeInfo | None = None


class BenchmarkEntry(ReportPart):
    """A column of the comparison (a metric scored per item)."""

    written_when_set: ClassVar[frozenset[str]] = frozenset({"normalized", "metric_label"})

    name: str
    display: str = ""
    metric_key: str = ""
    higher_is_better: bool = True
    kind: str = ""  # the check type that measures it ("lm-eval" for suites)
    normalized: bool = False  # leaderboard v2: values normalised, each score's `raw` beside them
    metric_label: str = ""  # the metric as the suite names it ("acc_norm"), when it says

    @model_validator(mode="after")
    def _display_defaults_to_name(self) -> BenchmarkEntry:
        if not self.display:
            object.__setattr__(self, "display", self.name)
        return self


class ScoreEntry(ReportPart):
    """One model's score on one benchmark (report scale), with its interval and item counts."""

    written_when_set: ClassVar[frozenset[str]] = frozenset({"raw", "weighted_value", "reason"})

    value: float | None = None
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0  # items behind the value
    n_target: int = 0  # items the check asks for
    raw: float | None = None  # normalised benchmarks: the engine's own score, same scale
    weighted_value: float | None = None  # several sub-tasks: their size-weighted mean (lm-eval's group number)
    reason: str | None = None  # why there is no value, when it is known (a gated dataset): never scored 0

    @property
    def partial(self) -> bool:
        return self.value is not None and self.n < self.n_target


class SubjectRow(ReportPart):
    """One sub-task (an MMLU subject) of a benchmark made of several, every model's value."""

    task: str
    group: str | None = None
    values: dict[str, float | None] = Field(default_factory=dict)


# -- statistics, retention, regressions -----------------------------------------------------------------------


class Comparison(ReportPart):
    """A candidate against one reference on one benchmark, paired per item (one Holm family per pair)."""

    written_when_set: ClassVar[frozenset[str]] = frozenset({"p_ttest", "p_mcnemar"})

    candidate: str
    reference: str
    reference_role: str = ""
    benchmark: str
    candidate_value: float | None = None
    reference_value: float | None = None
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    test: str = ""
    significant: bool | None = None
    n_paired: int | None = None
    n_missing: int = 0
    mdd: float | None = None  # minimum detectable difference (80% power)
    p_ttest: float | None = None  # beyond the headline test: the playbook's t-test and McNemar
    p_mcnemar: float | None = None


class RetentionRow(ReportPart):
    """How much of its parents' score a candidate kept (ratios: 1.0 = 100%)."""

    candidate: str
    benchmark: str  # a benchmark name or "average"
    vs_mean_parents: float | None = None
    vs_best_parent: float | None = None
    per_parent: dict[str, float | None] = Field(default_factory=dict)
    expected_range: list[float] | None = None  # [weakest parent, strongest parent]
    within_range: bool | None = None
    summary: str = ""


class RegressionRow(ReportPart):
    """The methodology's point rule and the paired test, for one candidate and benchmark."""

    candidate: str
    benchmark: str
    parents: dict[str, float] = Field(default_factory=dict)
    merged: float | None = None
    threshold: float | None = None
    drop: float | None = None  # points below the weakest parent (positive = worse than every parent)
    point_rule: bool | None = None
    significant: bool | None = None
    verdict: str = "ok"  # ok | regression | possible regression | improvement | possible improvement
    critical: bool = False


# -- gates and verdict --------------------------------------------------------------------------------------


class GateResult(ReportPart):
    """One gate for one candidate: pass, fail or not evaluated (never pass without numbers)."""

    written_when_set: ClassVar[frozenset[str]] = frozenset({"candidate"})

    name: str = ""
    description: str = ""
    status: str = NOT_EVALUATED
    value: GateValue = None
    threshold: GateValue = None
    detail: str = ""
    candidate: str = ""


class Verdict(ReportPart):
    status: str = "incomplete"  # pass | fail | incomplete
    exit_code: int | None = None  # of `mergeval gate`: 0 pass, 1 a gate failed, 3 a gate not evaluated
    summary: str = ""

    @classmethod
    def of(cls, gates: list[GateResult]) -> Verdict:
        """The verdict of gate results: any failure fails; otherwise anything not evaluated is incomplete."""
        failed = [g for g in gates if g.status == FAIL]
        open_ = [g for g in gates if g.status == NOT_EVALUATED]
        passed = [g for g in gates if g.status == PASS]
        counts = f"{len(passed)} passed, {len(failed)} failed, {len(open_)} not evaluated"
        if failed:
            return cls(
                status="fail",
                exit_code=EXIT_FAIL,
                summary=f"FAIL ({counts}): " + "; ".join(g.name for g in failed),
            )
        if open_:
            return cls(
                status="incomplete",
                exit_code=EXIT_NOT_EVALUATED,
                summary=f"INCOMPLETE ({counts}): not evaluated: " + "; ".join(g.name for g in open_),
            )
        if not gates:
            return cls(status="pass", exit_code=EXIT_PASS, summary="no gates in the plan (nothing to fail)")
        return cls(status="pass", exit_code=EXIT_PASS, summary=f"PASS ({counts})")


# -- the rest -----------------------------------------------------------------------------------------------


class SanityRow(ReportPart):
    model: str
    check: str
    status: str = NOT_EVALUATED
    detail: str = ""


class MissingEntry(ReportPart):
    """An evaluation the comparison needs and the store does not (fully) hold."""

    model: str
    check: str
    benchmark: str | None = None
    detail: str = ""


class AdaptiveRule(ReportPart):
    """One rule an adaptive run monitored on a benchmark: its verdict and anytime-valid interval (report scale)."""

    rule: str
    verdict: str = "undecided"  # better | worse | within | pass | fail | undecided
    lower: float | None = None
    upper: float | None = None
    estimate: float | None = None


class AdaptiveEntry(ReportPart):
    """What an adaptive run did on one benchmark: decided after n of N items, why it stopped, items saved."""

    check: str
    benchmark: str
    display: str = ""
    status: str = ""  # stopped early | ran to the end | completed (the rest evaluated since, --full)
    reason: str = ""
    n: int = 0  # items behind the reported values (per model)
    n_target: int = 0  # items of the full evaluation
    items_saved: int = 0  # item evaluations not made (all models)
    alpha: float | None = None  # the run's level (Bonferroni across its rules)
    alpha_per_rule: float | None = None
    rules: list[AdaptiveRule] = Field(default_factory=list)
    note: str = ""  # the point estimate's bias, when the values rest on the items evaluated


class Provenance(OpenPart):
    """What produced the numbers. Keys are written as they were given (open: checks add their own)."""

    written_when_set: ClassVar[frozenset[str]] = frozenset(
        {
            "lm_eval_version",
            "mergeval_version",
            "plan_hash",
            "store",
            "limit",
            "average_of",
            "settings",
            "statistics",
            "tasks",
            "checks",
            "models",
        }
    )

    lm_eval_version: str | None = None
    mergeval_version: str | None = None
    plan_hash: str | None = None
    store: str | None = None
    limit: Number | None = None
    average_of: list[str] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)  # the plan's settings
    statistics: dict[str, Any] = Field(default_factory=dict)
    tasks: dict[str, Any] = Field(default_factory=dict)
    checks: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, Any] = Field(default_factory=dict)


# -- the report ---------------------------------------------------------------------------------------------


class Report(ReportPart):
    """The comparison of a plan's models (schema "mergeval.report/1")."""

    written_when_set: ClassVar[frozenset[str]] = frozenset({"adaptive"})

    schema_: str = Field(SCHEMA, alias="schema", serialization_alias="schema")
    title: str = "mergeval comparison report"
    generated_at: str | None = None
    mergeval_version: str | None = None
    plan: str | None = None
    suite: SuiteInfo = Field(default_factory=SuiteInfo)
    models: list[ModelEntry] = Field(default_factory=list)
    benchmarks: list[BenchmarkEntry] = Field(default_factory=list)
    scores: dict[str, dict[str, ScoreEntry]] = Field(default_factory=dict)  # model -> benchmark -> score
    averages: dict[str, float | None] = Field(default_factory=dict)
    subjects: dict[str, list[SubjectRow]] = Field(default_factory=dict)  # benchmark -> sub-task rows
    comparisons: list[Comparison] = Field(default_factory=list)
    retention: list[RetentionRow] = Field(default_factory=list)
    regressions: list[RegressionRow] = Field(default_factory=list)
    gates: list[GateResult] = Field(default_factory=list)
    sanity: list[SanityRow] = Field(default_factory=list)
    bands: dict[str, dict[str, str | None]] = Field(default_factory=dict)  # model -> band name -> label
    verdict: Verdict = Field(default_factory=Verdict)
    facts: dict[str, dict[str, Number]] = Field(default_factory=dict)  # model -> fact -> value
    missing: list[MissingEntry] = Field(default_factory=list)
    provenance: Provenance = Field(default_factory=Provenance)
    adaptive: list[AdaptiveEntry] = Field(default_factory=list)  # adaptive runs (written only when there is one)

    # Not in report.json: how to read and show each benchmark and fact (from the checks' MetricSpecs).
    metrics: dict[str, MetricSpec] = Field(default_factory=dict, exclude=True)

    @field_validator("schema_")
    @classmethod
    def _this_schema(cls, value: str) -> str:
        if value != SCHEMA:
            raise ValueError(
                f"This report has schema {value!r}, but this mergeval reads {SCHEMA!r}: re-run `mergeval compare` "
                "with this version, or render it with the mergeval version that wrote it."
            )
        return value

    # -- reading ----------------------------------------------------------------------------------------

    @classmethod
    def from_data(cls, data: Any) -> Report:
        """A Report from a Report, or from report.json data (a UserError, naming the problem, otherwise)."""
        if isinstance(data, Report):
            return data
        if not isinstance(data, Mapping):
            raise UserError(
                f"A report renderer needs a comparison report dict or Report, got {type(data).__name__}: pass "
                "what mergeval.compare(...) returns (or the report.json it wrote, read with Report.from_json)."
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "the report"
            message = str(first["msg"]).removeprefix("Value error, ")
            raise UserError(f"Not a mergeval report: {where}: {message}") from exc

    @classmethod
    def from_json(cls, text: str) -> Report:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"Not a mergeval report: invalid JSON ({exc}).") from exc
        return cls.from_data(data)

    @classmethod
    def read(cls, path: str | Path) -> Report:
        path = Path(path)
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UserError(f"Cannot read the report {path}: {exc.strerror or exc}.") from exc

    def to_json(self, *, indent: int | None = 2) -> str:
        """The report.json document: strictly valid JSON (no NaN), keys in schema order."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False) + "\n"

    # -- lookups renderers share ------------------------------------------------------------------------

    def model_names(self, role: str | None = None) -> list[str]:
        return [m.name for m in self.models if role is None or m.role == role]

    def benchmark(self, name: str) -> BenchmarkEntry | None:
        return next((b for b in self.benchmarks if b.name == name), None)

    def display(self, name: str) -> str:
        if name == "average":
            return "Average"
        bench = self.benchmark(name)
        return bench.display if bench else self.metrics[name].title if name in self.metrics else name

    def score(self, model: str, benchmark: str) -> ScoreEntry | None:
        return self.scores.get(model, {}).get(benchmark)

    def value(self, model: str, benchmark: str) -> float | None:
        """A model's headline number on a benchmark, or its Average for "average"."""
        if benchmark == "average":
            return self.averages.get(model)
        score = self.score(model, benchmark)
        return score.value if score else None

    def comparison(self, candidate: str, reference: str, benchmark: str) -> Comparison | None:
        return next(
            (
                c
                for c in self.comparisons
                if (c.candidate, c.reference, c.benchmark) == (candidate, reference, benchmark)
            ),
            None,
        )

    def metric(self, name: str) -> MetricSpec:
        """How to read and show a benchmark or fact: the check's MetricSpec, else defaults from the entry."""
        if name in self.metrics:
            return self.metrics[name]
        bench = self.benchmark(name)
        if bench is None:
            return MetricSpec(name=name, kind="fact")
        return MetricSpec(
            name=bench.name,
            display=bench.display,
            higher_is_better=bench.higher_is_better,
            metric_key=bench.metric_key,
            range=(0.0, 100.0) if bench.higher_is_better else (0.0, None),
        )

    # -- the plan's settings, read in one place --

    def setting(self, name: str, default: Any) -> Any:
        value = self.provenance.settings.get(name)
        return default if value is None else value

    @property
    def retention_mark(self) -> float:
        """The retention pass mark (merged / mean of parents): the plan's `settings.retention`."""
        return float(self.setting("retention", 0.95))

    @property
    def tolerance(self) -> float:
        """The regression tolerance: merged < min(parents) x (1 - tolerance) is the point rule."""
        return float(self.setting("tolerance", 0.05))

    @property
    def alpha(self) -> float:
        return float(self.provenance.statistics.get("alpha", self.setting("alpha", 0.05)))


def _finite(value: Any) -> Any:
    """NaN and infinities -> None, recursively, so the report is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# -- the JSON schema ----------------------------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """The JSON schema of report.json (what `Report.to_json` writes)."""
    schema = Report.model_json_schema(mode="serialization", by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": f"mergeval comparison report ({SCHEMA})",
        "description": "The report.json document written by `mergeval run` / `mergeval compare`. Generated from "
        "mergeval.report (python -m mergeval.report); do not edit by hand.",
    }


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_json_schema(path: str | Path = SCHEMA_FILE) -> Path:
    """Write the schema (docs/report.schema.json in a source checkout)."""
    path = Path(path)
    path.write_text(json_schema_text(), encoding="utf-8")
    return path


__all__ = [
    "AVERAGE_BAND",
    "FAIL",
    "NOT_EVALUATED",
    "PASS",
    "SCHEMA",
    "AdaptiveEntry",
    "AdaptiveRule",
    "BenchmarkEntry",
    "Comparison",
    "GateResult",
    "MergeInfo",
    "MissingEntry",
    "ModelEntry",
    "Provenance",
    "RegressionRow",
    "Report",
    "ReportPart",
    "RetentionRow",
    "SanityRow",
    "ScoreEntry",
    "SubjectRow",
    "SuiteInfo",
    "Verdict",
    "json_schema",
    "json_schema_text",
    "write_json_schema",
]


if __name__ == "__main__":  # python -m mergeval.report: regenerate docs/report.schema.json
    print(write_json_schema())
