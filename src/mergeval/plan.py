"""The plan file (`mergeval.yaml`): which models, in which roles, which checks, which gates.

A plan is YAML validated by the pydantic models below. Validation errors point at the line and say what to
write instead, e.g.

    mergeval.yaml:7: unknown key 'canditate' in models[1] (did you mean 'candidate'?)

How that works: the YAML is parsed twice, once into plain data and once into a node tree whose start marks
give the line of every key and list item (`_line_map`). Pydantic reports each error at a location such as
`("models", 1, "canditate")`; the longest prefix of that location found in the line map gives the line, and
the pydantic model at that location gives the valid keys to suggest from (difflib).

Checks (`checks:`) are an open list keyed by `type`: each type is registered in
`mergeval.compare.registry` with its own pydantic model, so other packages add check types without
touching this file. Gates (`gates:`) are the deployment checklist as data; each is a mapping with a `type`
or a one-line shorthand string (`average >= min(parents)`). See docs/plan-file.md for the reference.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mergeval.errors import UserError

PLAN_FILE = "mergeval.yaml"
ROLES = ("candidate", "parent", "base", "baseline")
DEFAULT_STORE = "mergeval-results/mergeval.db"
DEFAULT_OUTPUT = "mergeval-results/report"

Location = tuple[str | int, ...]


class PlanError(UserError):
    """A plan file that does not validate; the message has one `file:line: problem` line per problem."""


def _closest(word: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    best = _closest(word, choices)
    return f" (did you mean '{best}'?)" if best else ""


class _Strict(BaseModel):
    """Plan sections reject unknown keys: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid")


# -- models -----------------------------------------------------------------------------------------------


def _default_name(path: str) -> str:
    """A display name from a model reference: folder name, hub id's last part, GGUF stem, endpoint model."""
    if path.startswith("openai:"):
        return path.removeprefix("openai:").rsplit("@", 1)[0]
    base = path.split("@", 1)[0].rstrip("/\\")
    name = os.path.basename(base) or base
    return name.removesuffix(".gguf")


def looks_like_local_path(path: str) -> bool:
    """True when a reference can only be a local file or folder (so it must exist).

    `org/name` and `org/name@rev` may be hub ids, `openai:...` is an endpoint; anything starting with `.`,
    `/` or `~`, with more than one `/`, or ending in `.gguf` is a path."""
    if path.startswith("openai:"):
        return False
    if path.startswith((".", "/", "~")) or path.endswith(".gguf") or "\\" in path:
        return True
    return path.split("@", 1)[0].count("/") != 1


class ModelSpec(_Strict):
    """One model of the plan. Long form `{name, path, role}` or short form `{<role>: <path>}`."""

    name: str = Field("", description="display name, unique in the plan (default: from the path)")
    path: str = Field(
        description="model folder, hub id org/name[@revision], .gguf file or openai:<model>@<url>"
    )
    role: str = Field(description="candidate | parent | base | baseline")
    revision: str | None = None
    dtype: str | None = Field(
        None, description="auto | float32 | bfloat16 | float16 (default: settings.dtype)"
    )
    trust_remote_code: bool = False
    api_key_env: str | None = Field(None, description="name of the env var holding an endpoint's API key")
    merge_config: str | None = Field(None, description="the mergekit YAML that made this model (provenance)")
    notes: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str):
            raise ValueError(  # noqa: TRY004  pydantic reports ValueError (not TypeError) as a validation error
                f"a model is a mapping, not the string {data!r}: write `- candidate: {data}` or "
                f"`- {{name: NAME, path: {data}, role: candidate}}`"
            )
        if not isinstance(data, Mapping):
            return data
        role_keys = [k for k in data if k in ROLES]
        if not role_keys:
            return data
        if len(role_keys) > 1 or "role" in data or "path" in data:
            raise ValueError(
                f"write either `{role_keys[0]}: PATH` (short form) or `path: PATH` with `role: "
                f"{role_keys[0]}`, not both; found keys {', '.join(map(str, data))}"
            )
        out = {k: v for k, v in data.items() if k != role_keys[0]}
        out["role"] = role_keys[0]
        out["path"] = data[role_keys[0]]
        return out

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        if role not in ROLES:
            raise ValueError(
                f"unknown role '{role}'{_did_you_mean(role, ROLES)}; use one of {', '.join(ROLES)}"
            )
        return role

    @field_validator("path")
    @classmethod
    def _non_empty(cls, path: str) -> str:
        if not str(path).strip():
            raise ValueError("path is empty; give a model folder, a hub id or a .gguf file")
        return str(path)

    @model_validator(mode="after")
    def _name_from_path(self) -> ModelSpec:
        if not self.name:
            self.name = _default_name(self.path)
        return self


# -- settings, sign-off --------------------------------------------------------------------------------------


class Settings(_Strict):
    """How models are run and how the comparison decides (all optional)."""

    backend: str | None = Field(None, description="lm-eval backend: mergeval-hf (default) or hf")
    device: str | None = Field(None, description="cpu | cuda | cuda:1 | mps (default: best available)")
    dtype: str = "auto"
    batch_size: int = Field(8, ge=1)
    data_dir: str | None = Field(None, description="local dataset mirror for every suite check")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of the paired tests")
    n_boot: int = Field(10_000, ge=100, description="bootstrap resamples")
    seed: int = 0
    tolerance: float = Field(
        0.05, ge=0, lt=1, description="regression tolerance: 0.05 = 5% below min(parents)"
    )
    retention: float = Field(0.95, gt=0, description="retention pass mark (merged / mean of parents)")
    subjects: bool = Field(False, description="show per-subject (MMLU) tables in reports")


class SignOff(_Strict):
    """The checklist's manual item: who tested the merge by hand, and optionally on which exact weights."""

    by: str
    date: str | None = None
    notes: str | None = None
    candidate: str | None = Field(None, description="the candidate signed off (default: every candidate)")
    fingerprint: str | None = Field(None, description="fingerprint (prefix) of the weights signed off")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"by": data} if isinstance(data, str) else data

    @field_validator("date", mode="before")
    @classmethod
    def _date_as_text(cls, value: Any) -> Any:
        return None if value is None else str(value)  # YAML reads 2024-05-01 as a date


# -- gates -------------------------------------------------------------------------------------------------

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


# `REFERENCE OP NUMBER` with spaces around OP (so `model-2` stays a model name): `mean(parents) * 1.02`,
# `max(parents) + 1`, `base - 2`, `mean(parents) * 102%`.
_REFERENCE_ARITHMETIC = re.compile(r"^(.+?)\s+([*+-])\s+(\S+)$")


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


class _GateBase(_Strict):
    name: str | None = Field(None, description="what the checklist calls this gate")
    description: str | None = None


class ScoreGate(_GateBase):
    """A number compared with a threshold: `{metric: average, at_least: min(parents)}`."""

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


class NoRegressionGate(_GateBase):
    """No benchmark regresses below min(parents) x (1 - tolerance) (the methodology's regression test)."""

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


class RetentionGate(_GateBase):
    """Capability retention: merged / mean(parents) (or / best parent) at least `at_least`."""

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


class SanityGate(_GateBase):
    """Every sanity check of every candidate passes."""

    type: Literal["sanity"] = "sanity"

    @property
    def label(self) -> str:
        return self.name or "sanity checks pass"


class SignOffGate(_GateBase):
    """Manual testing on diverse prompts, signed off by a person in the plan's `sign_off:`."""

    type: Literal["sign-off"] = "sign-off"

    @property
    def label(self) -> str:
        return self.name or "manual testing signed off"


Gate = ScoreGate | NoRegressionGate | RetentionGate | SanityGate | SignOffGate
GATE_TYPES: dict[str, type[_GateBase]] = {
    "score": ScoreGate,
    "no-regression": NoRegressionGate,
    "retention": RetentionGate,
    "sanity": SanityGate,
    "sign-off": SignOffGate,
}

_SHORTHAND_SCORE = re.compile(r"^\s*([A-Za-z_][\w./-]*)\s*(>=|<=|>|<)\s*(.+?)\s*$")
_SHORTHAND_NO_REGRESSION = re.compile(r"^\s*no[ -]regressions?(?:\s+(?:on|in)\s+(.+?))?\s*$", re.IGNORECASE)
_SHORTHAND_HELP = (
    "write a gate as `METRIC >= REFERENCE` (e.g. `average >= min(parents)`, `gsm8k >= mean(parents) * 1.02`, "
    "`win_rate >= 45%`, `size_gb <= 16`), `retention >= 95%`, `no regressions [on gsm8k, mmlu]`, `sanity` or `sign-off`, or "
    "as a "
    "mapping with a `type` (" + ", ".join(GATE_TYPES) + ")"
)


def _gate_from_shorthand(text: str) -> dict[str, Any]:
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
    if match:
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
    raise ValueError(f"cannot read the gate {text!r}: {_SHORTHAND_HELP}")


# -- checks ------------------------------------------------------------------------------------------------


class CheckConfig(_Strict):
    """Base of every check type's configuration (see mergeval.compare.registry)."""

    type: str
    name: str | None = Field(None, description="a label for this check (default: its type or suite)")

    @property
    def label(self) -> str:
        return self.name or self.type


# -- the plan ----------------------------------------------------------------------------------------------


class Plan(_Strict):
    """A validated plan. `source` is the file it came from; relative paths in it resolve next to that file."""

    title: str | None = None
    store: str = Field(DEFAULT_STORE, description="results database, relative to the plan file")
    output: str = Field(DEFAULT_OUTPUT, description="folder for report.md / report.json / report.html")
    models: list[ModelSpec]
    checks: list[Any] = Field(default_factory=list)  # validated per type: list[CheckConfig]
    gates: list[Any] = Field(default_factory=list)  # validated per type: list[Gate]
    settings: Settings = Field(default_factory=Settings)
    sign_off: SignOff | None = None

    source: Path | None = Field(None, exclude=True)
    lines: dict[Location, int] = Field(default_factory=dict, exclude=True)

    # -- lookups --

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    def resolve_path(self, path: str | os.PathLike) -> Path:
        """A path from the plan, relative to the plan file's folder (absolute and ~ paths as they are)."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def by_role(self, role: str) -> list[ModelSpec]:
        return [m for m in self.models if m.role == role]

    @property
    def candidates(self) -> list[ModelSpec]:
        return self.by_role("candidate")

    @property
    def parents(self) -> list[ModelSpec]:
        return self.by_role("parent")

    def line_of(self, loc: Location) -> int | None:
        return _line_for(self.lines, loc)

    def where(self, loc: Location) -> str:
        """`file:line` of a plan location, for messages."""
        return _where(self.source, self.lines, loc)

    def content_hash(self) -> str:
        dumped = self.model_dump(mode="json", exclude={"source", "lines"})
        return hashlib.sha256(json.dumps(dumped, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def dtype_of(self, model: ModelSpec) -> str:
        return model.dtype or self.settings.dtype


# -- YAML with line numbers --------------------------------------------------------------------------------


def _line_map(node: yaml.Node | None, problems: list[tuple[int, str]]) -> dict[Location, int]:
    """Location (keys and list indices from the root) -> 1-based line, for every node of the YAML tree.

    A mapping entry's location maps to its *key's* line. Duplicate keys (which YAML loaders silently
    overwrite) are reported in `problems`."""
    lines: dict[Location, int] = {}

    def walk(n: yaml.Node, loc: Location) -> None:
        lines.setdefault(loc, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in n.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
                line = key_node.start_mark.line + 1
                if key in seen and key != "<<":
                    problems.append((line, f"duplicate key '{key}' (first on line {seen[key]}); keep one"))
                seen.setdefault(key, line)
                lines[loc + (key,)] = line
                walk(value_node, loc + (key,))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                lines[loc + (i,)] = item.start_mark.line + 1
                walk(item, loc + (i,))

    if node is not None:
        walk(node, ())
    return lines


def _line_for(lines: Mapping[Location, int], loc: Location) -> int | None:
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


def _where(source: Path | str | None, lines: Mapping[Location, int], loc: Location) -> str:
    name = str(source) if source is not None else PLAN_FILE
    line = _line_for(lines, loc)
    return f"{name}:{line}" if line else name


def format_loc(loc: Location) -> str:
    """("models", 1, "role") -> "models[1].role"; () -> "the plan"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "the plan"


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation like `list[X]`, `X | None`, `X`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def _model_at(cls: type[BaseModel], loc: Location) -> type[BaseModel] | None:
    """The pydantic model describing the mapping at `loc` (list indices are skipped)."""
    current: type[BaseModel] | None = cls
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _unwrap_model(info.annotation)
    return current


def _valid_keys(cls: type[BaseModel] | None) -> list[str]:
    if cls is None:
        return []
    keys = [k for k in cls.model_fields if k not in ("source", "lines")]
    if cls is ModelSpec:
        keys += list(ROLES)  # the short form `- candidate: PATH`
    if issubclass(cls, ScoreGate):
        keys = [k for k in keys if k not in ("op", "than")]
    return keys


def _messages(
    exc: ValidationError,
    cls: type[BaseModel],
    prefix: Location,
    lines: Mapping[Location, int],
    source: Path | str | None,
) -> list[tuple[int, str]]:
    """Pydantic errors -> (line, 'file:line: message') with the closest valid key suggested for typos."""
    errors = exc.errors(include_url=False)
    extra_in = {tuple(e["loc"][:-1]) for e in errors if e["type"] == "extra_forbidden"}
    out: list[tuple[int, str]] = []
    for err in errors:
        loc: Location = tuple(err["loc"])
        full = prefix + loc
        kind = err["type"]
        parent = loc[:-1]
        if kind == "missing" and parent in extra_in:
            continue  # a misspelt key explains the missing one; report the typo only
        if kind == "extra_forbidden":
            key = str(loc[-1])
            keys = _valid_keys(_model_at(cls, parent))
            where = format_loc(prefix + parent)
            text = f"unknown key '{key}' in {where}{_did_you_mean(key, keys)}"
            if not _closest(key, keys) and keys:
                text += f"; valid keys: {', '.join(keys)}"
        elif kind == "missing":
            field_name = str(loc[-1])
            model = _model_at(cls, parent)
            info = model.model_fields.get(field_name) if model else None
            hint = f" ({info.description})" if info is not None and info.description else ""
            text = f"{format_loc(prefix + parent)} needs '{field_name}'{hint}"
            full = prefix + parent
        elif kind in ("value_error", "assertion_error"):
            message = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
            text = f"{format_loc(full)}: {message}"
        elif kind == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            choices = re.findall(r"'([^']*)'", expected)
            text = (
                f"{format_loc(full)}: {err['input']!r} is not allowed"
                f"{_did_you_mean(str(err['input']), choices)};"
                f" use {expected}"
            )
        else:
            got = err.get("input")
            shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
            text = f"{format_loc(full)}: {err['msg'].lower()}{shown}"
        line = _line_for(lines, full) or 0
        out.append((line, f"{_where(source, lines, full)}: {text}"))
    return out


def _validate_part(
    cls: type[BaseModel],
    data: Any,
    prefix: Location,
    lines: Mapping[Location, int],
    source: Path | str | None,
    problems: list[tuple[int, str]],
    context: dict[str, Any],
) -> Any:
    try:
        return cls.model_validate(data, context=context)
    except ValidationError as exc:
        problems.extend(_messages(exc, cls, prefix, lines, source))
        return None


def _validate_checks(raw: list[Any], lines, source, problems, context) -> list[CheckConfig]:
    from mergeval.compare.registry import check_types

    known = check_types()
    checks: list[CheckConfig] = []
    for i, item in enumerate(raw):
        loc: Location = ("checks", i)
        if isinstance(item, str):  # `- sanity` or `- leaderboard`: a check type with default settings
            item = {"type": item}
        if not isinstance(item, Mapping) or "type" not in item:
            problems.append(
                (
                    _line_for(lines, loc) or 0,
                    (f"{_where(source, lines, loc)}: checks[{i}] needs a 'type' (one of {', '.join(known)})"),
                )
            )
            continue
        check_type = str(item["type"])
        if check_type not in known:
            problems.append(
                (
                    _line_for(lines, loc + ("type",)) or 0,
                    (
                        f"{_where(source, lines, loc + ('type',))}: unknown check type '{check_type}' in "
                        f"checks[{i}]{_did_you_mean(check_type, known)}; available: {', '.join(known)}"
                    ),
                )
            )
            continue
        check = _validate_part(known[check_type].config, dict(item), loc, lines, source, problems, context)
        if check is not None:
            checks.append(check)
    return checks


def _validate_gates(raw: list[Any], lines, source, problems, context) -> list[Gate]:
    gates: list[Gate] = []
    for i, item in enumerate(raw):
        loc: Location = ("gates", i)
        where = _where(source, lines, loc)
        line = _line_for(lines, loc) or 0
        if isinstance(item, str):
            try:
                item = _gate_from_shorthand(item)
            except ValueError as exc:
                problems.append((line, f"{where}: gates[{i}]: {exc}"))
                continue
        if not isinstance(item, Mapping):
            problems.append((line, f"{where}: gates[{i}]: {_SHORTHAND_HELP}"))
            continue
        gate_type = str(item.get("type", "score" if "metric" in item else ""))
        if gate_type not in GATE_TYPES:
            what = (
                f"unknown gate type '{gate_type}'{_did_you_mean(gate_type, GATE_TYPES)}"
                if gate_type
                else "a gate mapping needs a 'type'"
            )
            problems.append(
                (
                    _line_for(lines, loc + ("type",)) or line,
                    (
                        f"{_where(source, lines, loc + ('type',))}: {what} in gates[{i}]; types: "
                        f"{', '.join(GATE_TYPES)}"
                    ),
                )
            )
            continue
        gate = _validate_part(
            GATE_TYPES[gate_type], {**item, "type": gate_type}, loc, lines, source, problems, context
        )
        if gate is not None:
            gates.append(gate)
    return gates


# -- cross-references: what the gates name must exist --------------------------------------------------------


@dataclass
class Vocabulary:
    """The names a plan's gates may use: benchmarks and facts its checks provide."""

    benchmarks: dict[str, str] = field(default_factory=dict)  # name -> check label
    facts: dict[str, str] = field(default_factory=dict)  # name -> check label

    def all(self) -> list[str]:
        return list(DERIVED_METRICS) + list(self.benchmarks) + list(self.facts)


def plan_vocabulary(plan: Plan) -> Vocabulary:
    """Benchmarks and facts the plan's checks will produce (from their configs; nothing is loaded)."""
    from mergeval.compare.registry import check_types

    vocab = Vocabulary()
    for check in plan.checks:
        provided = check_types()[check.type].provides(check, plan)
        for name in provided.benchmarks:
            vocab.benchmarks.setdefault(name, check.label)
        for name in provided.facts:
            vocab.facts.setdefault(name, check.label)
    return vocab


def _cross_check(plan: Plan, problems: list[tuple[int, str]]) -> None:
    from mergeval.compare.registry import known_metrics

    where = plan.where
    names = [m.name for m in plan.models]
    for i, m in enumerate(plan.models):
        if m.name in names[:i]:
            problems.append(
                (
                    plan.line_of(("models", i)) or 0,
                    (
                        f"{where(('models', i))}: two models are named '{m.name}' "
                        f"(models[{names.index(m.name)}] and models[{i}]); give each a unique `name:`"
                    ),
                )
            )
    if plan.models and not plan.candidates:
        problems.append(
            (
                plan.line_of(("models",)) or 0,
                (
                    f"{where(('models',))}: no model has role candidate; mark the merged model(s) with "
                    "`role: candidate` (or write `- candidate: PATH`)"
                ),
            )
        )
    if plan.sign_off and plan.sign_off.candidate and plan.sign_off.candidate not in names:
        problems.append(
            (
                plan.line_of(("sign_off", "candidate")) or 0,
                (
                    f"{where(('sign_off', 'candidate'))}: sign_off.candidate '{plan.sign_off.candidate}' is "
                    f"not a model of the plan{_did_you_mean(plan.sign_off.candidate, names)}"
                ),
            )
        )
    try:
        vocab = plan_vocabulary(plan)
    except UserError as exc:
        problems.append((plan.line_of(("checks",)) or 0, f"{where(('checks',))}: {exc}"))
        return
    metrics = vocab.all() + [m for m in known_metrics() if m not in vocab.all()]
    raw_gates = [g for g in plan.gates]
    for i, gate in enumerate(raw_gates):
        loc: Location = ("gates", i)
        if isinstance(gate, ScoreGate):
            if gate.metric not in metrics:
                problems.append(
                    (
                        plan.line_of(loc + ("metric",)) or 0,
                        (
                            f"{where(loc + ('metric',))}: gate on unknown task '{gate.metric}' in gates[{i}]"
                            f"{_did_you_mean(gate.metric, metrics)}; the plan's checks provide: "
                            f"{', '.join(vocab.all())}"
                        ),
                    )
                )
            ref = gate.than
            if isinstance(ref, str) and parse_number(ref) is None:
                _check_reference(plan, ref, loc, problems)
        elif isinstance(gate, (NoRegressionGate, RetentionGate)):
            for task in gate.tasks or []:
                if task not in vocab.benchmarks:
                    problems.append(
                        (
                            plan.line_of(loc + ("tasks",)) or plan.line_of(loc) or 0,
                            (
                                f"{where(loc + ('tasks',))}: gate on unknown task '{task}' in gates[{i}]"
                                f"{_did_you_mean(task, vocab.benchmarks)}; benchmarks in the plan: "
                                f"{', '.join(vocab.benchmarks) or 'none (add a check)'}"
                            ),
                        )
                    )
            if not plan.parents:
                problems.append(
                    (
                        plan.line_of(loc) or 0,
                        (
                            f"{where(loc)}: gates[{i}] compares with the parents but no model has role "
                            "parent; add the parents to `models:`"
                        ),
                    )
                )


def _check_reference(plan: Plan, ref: str, loc: Location, problems: list[tuple[int, str]]) -> None:
    names = [m.name for m in plan.models]
    at = plan.where(loc)
    line = plan.line_of(loc) or 0
    try:
        base, op, _ = split_reference(ref)
    except ValueError as exc:
        problems.append((line, f"{at}: {exc}"))
        return
    if op is not None:  # `a * 1.1 + 2` chains too: check what the operator applies to
        _check_reference(plan, base, loc, problems)
        return
    if parse_number(ref) is not None:
        return
    if ref in GATE_REFERENCES:
        role = "parent" if "parents" in ref else "baseline" if "baselines" in ref else "base"
        if not plan.by_role(role):
            problems.append((line, f"{at}: the gate compares with {ref} but no model has role {role}"))
        return
    if ref not in names:
        problems.append(
            (
                line,
                (
                    f"{at}: unknown reference '{ref}' in {format_loc(loc)}"
                    f"{_did_you_mean(ref, list(GATE_REFERENCES) + names)}; use a number, "
                    f"{', '.join(GATE_REFERENCES)} or a model name ({', '.join(names)}), optionally with "
                    "` * NUMBER`, ` + NUMBER` or ` - NUMBER` (e.g. `mean(parents) * 1.02`)"
                ),
            )
        )


def _check_paths(plan: Plan, problems: list[tuple[int, str]]) -> None:
    for i, m in enumerate(plan.models):
        if looks_like_local_path(m.path) and not plan.resolve_path(m.path).exists():
            loc: Location = ("models", i, "path")
            key = m.role if plan.lines.get(("models", i, m.role)) else "path"
            loc = ("models", i, key) if key != "path" else loc
            problems.append(
                (
                    plan.line_of(loc) or 0,
                    (
                        f"{plan.where(loc)}: model path {m.path} does not exist (looked in "
                        f"{plan.resolve_path(m.path).resolve()}); fix the path (relative paths start at the "
                        "plan's "
                        "folder) or use a hub id org/name"
                    ),
                )
            )


# -- loading -----------------------------------------------------------------------------------------------


def parse_plan(text: str, *, source: Path | str | None = None, check_paths: bool = True) -> Plan:
    """Validate plan YAML text. `source` names the file in messages and anchors relative paths."""
    name = str(source) if source is not None else PLAN_FILE
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlanError(
            f"{where}: YAML syntax error: {problem}. Check the indentation and quoting there."
        ) from exc
    problems: list[tuple[int, str]] = []
    lines = _line_map(node, problems)
    problems = [(line, f"{name}:{line}: {msg}") for line, msg in problems]
    if data is None:
        raise PlanError(f"{name} is empty. Run `mergeval init` to write an example plan.")
    if not isinstance(data, dict):
        raise PlanError(
            f"{name}:1: a plan is a mapping with `models:`, `checks:` and `gates:`; "
            "run `mergeval init` for an example."
        )
    source_path = Path(source) if source is not None else None
    context = {"base_dir": str(source_path.parent if source_path else Path.cwd())}
    plan = _validate_part(Plan, data, (), lines, name, problems, context)
    # Checks and gates are validated even when another section has errors, so one run lists every problem.
    raw_checks, raw_gates = data.get("checks"), data.get("gates")
    checks = _validate_checks(
        raw_checks if isinstance(raw_checks, list) else [], lines, name, problems, context
    )
    gates = _validate_gates(raw_gates if isinstance(raw_gates, list) else [], lines, name, problems, context)
    if plan is not None:
        plan.source = source_path
        plan.lines = lines
        plan.checks = checks
        plan.gates = gates
        if not problems:
            _cross_check(plan, problems)
        if check_paths:
            _check_paths(plan, problems)
    if problems:
        problems.sort(key=lambda p: p[0])
        unique = list(dict.fromkeys(msg for _, msg in problems))
        raise PlanError("\n".join(unique))
    assert plan is not None
    return plan


def load_plan(path: str | os.PathLike, *, check_paths: bool = True) -> Plan:
    """Read and validate a plan file. With `check_paths`, local model paths must exist."""
    path = Path(path)
    if path.is_dir():
        path = path / PLAN_FILE
    if not path.exists():
        raise PlanError(f"No plan file at {path}. Write one with `mergeval init {path}`.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"Cannot read the plan {path}: {exc}.") from exc
    return parse_plan(text, source=path, check_paths=check_paths)


def check_model_paths(plan: Plan) -> None:
    """Raise a PlanError naming the line of every local model path that does not exist."""
    problems: list[tuple[int, str]] = []
    _check_paths(plan, problems)
    if problems:
        raise PlanError("\n".join(msg for _, msg in problems))


# -- mergeval init -----------------------------------------------------------------------------------------

EXAMPLE_PLAN = """\
# mergeval plan: is the merged model better than its parents?
#   mergeval run mergeval.yaml       evaluate what is missing, then compare and write reports
#   mergeval compare mergeval.yaml   compare from the results store only (says what is missing)
#   mergeval gate mergeval.yaml      the deployment checklist; exit 0 pass, 1 fail, 3 not evaluated
# Reference: docs/plan-file.md. Relative paths start at this file's folder.
title: SLERP merge of model A and model B

models:
  # role: candidate (the merged model(s)), parent, base (the common ancestor) or baseline (anything to beat)
  - name: merged
    path: ./merged                    # a folder, a hub id org/name[@revision], or a .gguf file
    role: candidate
    merge_config: ./merge.yaml        # optional: the mergekit config that made it (provenance)
  - name: model-a
    path: org/model-a
    role: parent
  - name: model-b
    path: org/model-b
    role: parent
  # - baseline: org/some-other-model  # short form: `ROLE: PATH`

checks:
  - type: sanity                      # fast generation + weight checks, before anything expensive
  - type: leaderboard                 # Open LLM Leaderboard v1: ARC, HellaSwag, MMLU, TruthfulQA,
                                      # Winogrande, GSM8K
    # limit: 100                      # items per task for a quick look (not a leaderboard number)
    # data_dir: /data/hf-mirror       # offline dataset mirror (`mergeval data pull`)
  # - type: lm-eval                   # your own lm-eval YAML tasks
  #   tasks: [my_task]
  #   include_path: ./my_tasks

gates:                                # the deployment checklist
  - average >= min(parents)           # leaderboard average at least the weakest parent's
  - truthfulqa >= min(parents)        # safety: TruthfulQA not below the parents
  - no regressions                    # no benchmark below min(parents) x (1 - tolerance)
  - retention >= 95%                  # merged / mean(parents) on the average
  - sanity                            # every sanity check passes
  - mtbench >= mean(parents)          # "not evaluated" until an mtbench check is in `checks:`
  - sign-off                          # passes once `sign_off:` below is filled in

settings:
  dtype: bfloat16
  batch_size: 8
  tolerance: 0.05                     # regression tolerance (5%)
  alpha: 0.05                         # significance level of the paired tests

store: mergeval-results/mergeval.db
output: mergeval-results/report

# After testing the merge by hand on diverse prompts:
# sign_off:
#   by: Your Name
#   date: 2024-05-01
#   notes: 40 prompts across coding, chat and math; no issues
"""


def write_example(path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write the commented example plan (`mergeval init`)."""
    path = Path(path)
    if path.is_dir():
        path = path / PLAN_FILE
    if path.exists() and not force:
        raise UserError(f"{path} already exists. Pass --force to overwrite it, or choose another file name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXAMPLE_PLAN, encoding="utf-8")
    return path


__all__ = [
    "EXAMPLE_PLAN",
    "GATE_REFERENCES",
    "GATE_TYPES",
    "ROLES",
    "CheckConfig",
    "Gate",
    "ModelSpec",
    "NoRegressionGate",
    "Plan",
    "PlanError",
    "RetentionGate",
    "SanityGate",
    "ScoreGate",
    "Settings",
    "SignOff",
    "SignOffGate",
    "Vocabulary",
    "check_model_paths",
    "format_loc",
    "load_plan",
    "looks_like_local_path",
    "parse_number",
    "parse_plan",
    "plan_vocabulary",
    "write_example",
]
