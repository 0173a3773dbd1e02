"""The plan file (`mergeval.yaml`): which models, in which roles, which checks, which gates, which settings.

A plan is YAML validated by the pydantic models below (`parse_plan` / `load_plan`, with errors that name the
line: mergeval.plan.yaml_errors), or built in Python, typed the same way:

    Plan(models=[{"candidate": "./merged"}, {"parent": "org/a"}],
         checks=[{"type": "bleu", "data": "./pairs.jsonl"}], gates=["bleu >= min(parents)"])

Checks (`checks:`) are an open list keyed by `type`: every check type registered with the check registry
brings its own pydantic Config, and an entry validates as the discriminated union of those Configs
(`check_union()`), so other packages add check types without touching this file; `plugins:` names Python
files that register more (loaded before the checks are validated). Gates (`gates:`) are the deployment
checklist: mergeval.plan.gates. See docs/plan-file.md for the reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import (
    Field,
    SerializeAsAny,
    TypeAdapter,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from mergeval.core.check import CheckConfig
from mergeval.core.registry import load_plugin_file
from mergeval.errors import UserError
from mergeval.models import backend_problem, device_problem, dtype_problem
from mergeval.plan import _registry
from mergeval.plan.gates import (
    DERIVED_METRICS,
    GATE_REFERENCES,
    GATE_TYPES,
    SHORTHAND_HELP,
    Gate,
    NoRegressionGate,
    RetentionGate,
    ScoreGate,
    gate_mapping,
    parse_number,
    split_reference,
)
from mergeval.plan.yaml_errors import (
    PLAN_FILE,
    Location,
    PlanError,
    Problems,
    Strict,
    did_you_mean,
    format_loc,
    line_for,
    line_map,
    raise_problems,
    read_yaml,
    validate_part,
    where,
)
from mergeval.store import DEFAULT_STORE as _STORE_PATH
from mergeval.store import RESULTS_DIR

ROLES = ("candidate", "parent", "base", "baseline")
DEFAULT_STORE = _STORE_PATH.as_posix()  # the one default (mergeval.store), as a plan writes it
DEFAULT_OUTPUT = (RESULTS_DIR / "report").as_posix()
EXAMPLE_FILE = Path(__file__).with_name("example.yaml")
EXAMPLE_PLAN = EXAMPLE_FILE.read_text(encoding="utf-8")  # `mergeval init` writes it


# -- models -----------------------------------------------------------------------------------------------


def _default_name(path: str) -> str:
    """A display name from a model reference: folder name, hub id's last part, GGUF stem, endpoint model."""
    if path.startswith("openai:"):
        # the model ends at the first "@" that starts the URL (never inside the URL: no credentials in a name)
        body = path.removeprefix("openai:")
        match = re.match(r"(.+?)@[A-Za-z][A-Za-z0-9+.\-]*://", body)
        return match.group(1) if match else body.split("@", 1)[0]
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


def _setting_ok(value: Any, what: str | None) -> Any:
    """A dtype, device or backend the run can use, checked when the plan is read (not the machine's devices)."""
    problem = {"dtype": dtype_problem, "device": device_problem, "backend": backend_problem}[str(what)](value)
    if problem:
        raise ValueError(problem)
    return value


class ModelSpec(Strict):
    """One model of the plan. Long form `{name, path, role}` or short form `{<role>: <path>}`."""

    yaml_extra_keys: ClassVar[tuple[str, ...]] = ROLES  # the short form `- candidate: PATH`

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
                f"unknown role '{role}'{did_you_mean(role, ROLES)}; use one of {', '.join(ROLES)}"
            )
        return role

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str | None) -> str | None:
        return _setting_ok(value, "dtype")

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


class Settings(Strict):
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
    adaptive: bool = Field(
        False, description="evaluate lm-eval benchmarks adaptively: stop each one as soon as every rule on it is "
        "decided at level alpha (`mergeval run --full` evaluates everything)"
    )
    margin: float = Field(
        1.0, ge=0, le=100, description="adaptive: a candidate within +-margin points of a reference is 'within'"
    )
    executor: Literal["local", "ray"] = Field(
        "local", description="where evaluations run: local (this process) | ray (a Ray cluster; docs/cluster.md)"
    )
    ray_address: str | None = Field(
        None, description="the Ray cluster for executor: ray (auto | HOST:6379 | ray://HOST:10001; default: a new "
        "local one)"
    )

    @field_validator("dtype", "device", "backend")
    @classmethod
    def _known(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _setting_ok(value, info.field_name)


class SignOff(Strict):
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


# -- checks: the discriminated union of the registered Configs ------------------------------------------------


def _tagged(name: str, config: type[CheckConfig]) -> type[CheckConfig]:
    """`config` with `type: Literal[name]` (a subclass when the class does not say so itself)."""
    annotation = config.model_fields["type"].annotation
    if get_origin(annotation) is Literal and name in get_args(annotation):
        return config
    return create_model(config.__name__, __base__=config, type=(Literal[name], name))  # type: ignore[call-overload]


@cache
def _adapter(configs: tuple[tuple[str, type[CheckConfig]], ...]) -> TypeAdapter:
    members = tuple(dict.fromkeys(_tagged(name, config) for name, config in configs))
    if len(members) == 1:
        return TypeAdapter(members[0])
    return TypeAdapter(Annotated[Union[members], Field(discriminator="type")])  # noqa: UP007


def check_union() -> Any:
    """The type of a plan's check entry: the registered Configs as a union discriminated by `type`."""
    return _adapter(tuple(_registry.config_classes().items()))._type


def check_entry(item: Any, context: dict[str, Any] | None = None) -> CheckConfig:
    """One check entry (a Config, a mapping with a `type`, or a type name) validated as its type's Config."""
    if isinstance(item, CheckConfig):
        return item
    if isinstance(item, str):  # `- sanity` or `- leaderboard`: a check type with default settings
        item = {"type": item}
    known = _registry.config_classes()
    if not isinstance(item, Mapping) or item.get("type") not in known:
        got = item.get("type") if isinstance(item, Mapping) else item
        raise ValueError(
            f"unknown check type {got!r}{did_you_mean(str(got), known)}; available: {', '.join(known)}"
        )
    return _adapter(tuple(known.items())).validate_python(dict(item), context=context)


# -- the plan ----------------------------------------------------------------------------------------------


class Plan(Strict):
    """A validated plan. `source` is the file it came from; relative paths in it resolve next to that file."""

    title: str | None = None
    store: str = Field(DEFAULT_STORE, description="results database, relative to the plan file")
    output: str = Field(DEFAULT_OUTPUT, description="folder for report.md / report.json / report.html")
    plugins: list[str] = Field(
        default_factory=list, description="Python files that register check types (relative to the plan)"
    )
    models: list[ModelSpec]
    checks: list[SerializeAsAny[CheckConfig]] = Field(default_factory=list)
    gates: list[Gate] = Field(default_factory=list)
    settings: Settings = Field(default_factory=Settings)
    sign_off: SignOff | None = None

    source: Path | None = Field(None, exclude=True)
    lines: dict[Location, int] = Field(default_factory=dict, exclude=True)

    @field_validator("plugins")
    @classmethod
    def _load_plugins(cls, paths: list[str], info: ValidationInfo) -> list[str]:
        base = Path((info.context or {}).get("base_dir") or Path.cwd())
        for path in paths:
            try:
                load_plugin_file(_resolve(base, path))
            except UserError as exc:
                raise ValueError(str(exc)) from exc
        return paths

    @field_validator("checks", mode="before")
    @classmethod
    def _typed_checks(cls, entries: Any, info: ValidationInfo) -> Any:
        if not isinstance(entries, list):
            return entries
        return [check_entry(item, info.context) for item in entries]

    @field_validator("gates", mode="before")
    @classmethod
    def _gate_shorthands(cls, entries: Any) -> Any:
        return [gate_mapping(item) for item in entries] if isinstance(entries, list) else entries

    # -- lookups --

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    def resolve_path(self, path: str | os.PathLike) -> Path:
        """A path from the plan, relative to the plan file's folder (absolute and ~ paths as they are)."""
        return _resolve(self.base_dir, path)

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
        return line_for(self.lines, loc)

    def where(self, loc: Location) -> str:
        """`file:line` of a plan location, for messages."""
        return where(self.source, self.lines, loc)

    def content_hash(self) -> str:
        exclude = {"source", "lines"} | (
            set() if self.plugins else {"plugins"}
        )  # the hash of plans before plugins
        dumped = self.model_dump(mode="json", exclude=exclude)
        return hashlib.sha256(json.dumps(dumped, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def dtype_of(self, model: ModelSpec) -> str:
        return model.dtype or self.settings.dtype


def _resolve(base: Path, path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


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
    vocab = Vocabulary()
    for check in plan.checks:
        benchmarks, facts = _registry.provided(check, plan)
        for name in benchmarks:
            vocab.benchmarks.setdefault(name, check.label)
        for name in facts:
            vocab.facts.setdefault(name, check.label)
    return vocab


def _problem(plan: Plan, loc: Location, text: str) -> tuple[int, str]:
    return plan.line_of(loc) or 0, f"{plan.where(loc)}: {text}"


def _model_problems(plan: Plan) -> Problems:
    names = [m.name for m in plan.models]
    problems = [
        _problem(
            plan,
            ("models", i),
            f"two models are named '{m.name}' (models[{names.index(m.name)}] and "
            f"models[{i}]); give each a unique `name:`",
        )
        for i, m in enumerate(plan.models)
        if m.name in names[:i]
    ]
    if plan.models and not plan.candidates:
        problems.append(
            _problem(
                plan,
                ("models",),
                "no model has role candidate; mark the merged model(s) with "
                "`role: candidate` (or write `- candidate: PATH`)",
            )
        )
    signed = plan.sign_off.candidate if plan.sign_off else None
    if signed and signed not in names:
        problems.append(
            _problem(
                plan,
                ("sign_off", "candidate"),
                f"sign_off.candidate '{signed}' is not a model of the plan{did_you_mean(signed, names)}",
            )
        )
    return problems


def _score_gate_problems(
    plan: Plan, gate: ScoreGate, i: int, vocab: Vocabulary, metrics: list[str]
) -> Problems:
    loc: Location = ("gates", i)
    problems = []
    if gate.metric not in metrics:
        problems.append(
            _problem(
                plan,
                loc + ("metric",),
                f"gate on unknown task '{gate.metric}' in gates[{i}]"
                f"{did_you_mean(gate.metric, metrics)}; the plan's checks provide: "
                f"{', '.join(vocab.all())}",
            )
        )
    if isinstance(gate.than, str) and parse_number(gate.than) is None:
        problems += _reference_problems(plan, gate.than, loc)
    return problems


def _parent_gate_problems(
    plan: Plan, gate: NoRegressionGate | RetentionGate, i: int, vocab: Vocabulary
) -> Problems:
    loc: Location = ("gates", i)
    problems = [
        _problem(
            plan,
            loc + ("tasks",),
            f"gate on unknown task '{task}' in gates[{i}]"
            f"{did_you_mean(task, vocab.benchmarks)}; benchmarks in the plan: "
            f"{', '.join(vocab.benchmarks) or 'none (add a check)'}",
        )
        for task in gate.tasks or []
        if task not in vocab.benchmarks
    ]
    if not plan.parents:
        problems.append(
            _problem(
                plan,
                loc,
                f"gates[{i}] compares with the parents but no model has role parent; "
                "add the parents to `models:`",
            )
        )
    return problems


def _reference_problems(plan: Plan, ref: str, loc: Location) -> Problems:
    names = [m.name for m in plan.models]
    try:
        base, op, _ = split_reference(ref)
    except ValueError as exc:
        return [_problem(plan, loc, str(exc))]
    if op is not None:  # `a * 1.1 + 2` chains too: check what the operator applies to
        return _reference_problems(plan, base, loc)
    if parse_number(ref) is not None:
        return []
    if ref in GATE_REFERENCES:
        role = "parent" if "parents" in ref else "baseline" if "baselines" in ref else "base"
        return (
            []
            if plan.by_role(role)
            else [_problem(plan, loc, f"the gate compares with {ref} but no model has role {role}")]
        )
    if ref in names:
        return []
    return [
        _problem(
            plan,
            loc,
            f"unknown reference '{ref}' in {format_loc(loc)}"
            f"{did_you_mean(ref, list(GATE_REFERENCES) + names)}; use a number, "
            f"{', '.join(GATE_REFERENCES)} or a model name ({', '.join(names)}), optionally with "
            "` * NUMBER`, ` + NUMBER` or ` - NUMBER` (e.g. `mean(parents) * 1.02`)",
        )
    ]


def cross_check(plan: Plan) -> Problems:
    """What the plan's parts must agree on: unique model names, a candidate, gates on names its checks provide
    and on references it has."""
    problems = _model_problems(plan)
    try:
        vocab = plan_vocabulary(plan)
    except UserError as exc:
        return problems + [_problem(plan, ("checks",), str(exc))]
    metrics = vocab.all() + [m for m in _registry.known_metrics() if m not in vocab.all()]
    for i, gate in enumerate(plan.gates):
        if isinstance(gate, ScoreGate):
            problems += _score_gate_problems(plan, gate, i, vocab, metrics)
        elif isinstance(gate, (NoRegressionGate, RetentionGate)):
            problems += _parent_gate_problems(plan, gate, i, vocab)
    return problems


def _path_problems(plan: Plan) -> Problems:
    problems = []
    for i, m in enumerate(plan.models):
        if looks_like_local_path(m.path) and not plan.resolve_path(m.path).exists():
            loc: Location = ("models", i, m.role if plan.lines.get(("models", i, m.role)) else "path")
            problems.append(
                _problem(
                    plan,
                    loc,
                    f"model path {m.path} does not exist (looked in "
                    f"{plan.resolve_path(m.path).resolve()}); fix the path (relative paths start "
                    "at the plan's folder) or use a hub id org/name",
                )
            )
    return problems


def check_model_paths(plan: Plan) -> None:
    """Raise a PlanError naming the line of every local model path that does not exist."""
    problems = _path_problems(plan)
    if problems:
        raise PlanError("\n".join(msg for _, msg in problems))


# -- reading YAML ------------------------------------------------------------------------------------------


@dataclass
class _Reader:
    """One plan text being validated: every problem is collected, so one run lists them all."""

    name: str
    lines: dict[Location, int]
    context: dict[str, Any]
    problems: Problems = field(default_factory=list)

    def problem(self, loc: Location, text: str, line: int | None = None) -> None:
        self.problems.append(
            (line or line_for(self.lines, loc) or 0, f"{where(self.name, self.lines, loc)}: {text}")
        )

    def validate(self, cls: type, data: Any, loc: Location) -> Any:
        return validate_part(cls, data, loc, self.lines, self.name, self.problems, self.context)

    def entries(self, raw: Any, section: str, read: Callable[[Any, int, Location], Any]) -> list[Any]:
        items = [read(item, i, (section, i)) for i, item in enumerate(raw if isinstance(raw, list) else [])]
        return [item for item in items if item is not None]

    def check(self, item: Any, i: int, loc: Location) -> CheckConfig | None:
        known = _registry.config_classes()
        if isinstance(item, str):  # `- sanity` or `- leaderboard`: a check type with default settings
            item = {"type": item}
        if not isinstance(item, Mapping) or "type" not in item:
            self.problem(loc, f"checks[{i}] needs a 'type' (one of {', '.join(known)})")
            return None
        check_type = str(item["type"])
        if check_type not in known:
            self.problem(
                loc + ("type",),
                f"unknown check type '{check_type}' in checks[{i}]"
                f"{did_you_mean(check_type, known)}; available: {', '.join(known)}",
            )
            return None
        return self.validate(known[check_type], dict(item), loc)

    def gate(self, item: Any, i: int, loc: Location) -> Any:
        line = line_for(self.lines, loc) or 0
        try:
            item = gate_mapping(item)
        except ValueError as exc:
            self.problem(loc, f"gates[{i}]: {exc}")
            return None
        if not isinstance(item, Mapping):
            self.problem(loc, f"gates[{i}]: {SHORTHAND_HELP}")
            return None
        gate_type = str(item.get("type", ""))
        if gate_type not in GATE_TYPES:
            what = (
                f"unknown gate type '{gate_type}'{did_you_mean(gate_type, GATE_TYPES)}"
                if gate_type
                else "a gate mapping needs a 'type'"
            )
            self.problem(
                loc + ("type",),
                f"{what} in gates[{i}]; types: {', '.join(GATE_TYPES)}",
                line_for(self.lines, loc + ("type",)) or line,
            )
            return None
        return self.validate(GATE_TYPES[gate_type], {**item, "type": gate_type}, loc)


def parse_plan(text: str, *, source: Path | str | None = None, check_paths: bool = True) -> Plan:
    """Validate plan YAML text. `source` names the file in messages and anchors relative paths."""
    name = str(source) if source is not None else PLAN_FILE
    data, node = read_yaml(text, name)
    problems: Problems = []
    lines = line_map(node, problems)
    if data is None:
        raise PlanError(f"{name} is empty. Run `mergeval init` to write an example plan.")
    if not isinstance(data, dict):
        raise PlanError(
            f"{name}:1: a plan is a mapping with `models:`, `checks:` and `gates:`; "
            "run `mergeval init` for an example."
        )
    source_path = Path(source) if source is not None else None
    reader = _Reader(
        name,
        lines,
        {"base_dir": str(source_path.parent if source_path else Path.cwd())},
        [(line, f"{name}:{line}: {msg}") for line, msg in problems],
    )
    # The plan first (it loads `plugins:`), then checks and gates one by one, even when another section has
    # errors, so one run lists every problem with its line.
    # (a `checks:` or `gates:` that is not a list is the plan's error; the lists are read entry by entry)
    rest = {k: v for k, v in data.items() if k not in ("checks", "gates") or not isinstance(v, list)}
    plan = reader.validate(Plan, rest, ())
    checks = reader.entries(data.get("checks"), "checks", reader.check)
    gates = reader.entries(data.get("gates"), "gates", reader.gate)
    if plan is not None:
        plan.source, plan.lines, plan.checks, plan.gates = source_path, lines, checks, gates
        if not reader.problems:
            reader.problems += cross_check(plan)
        if check_paths:
            reader.problems += _path_problems(plan)
    raise_problems(reader.problems)
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


# -- mergeval init -----------------------------------------------------------------------------------------


def write_example(path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write the commented example plan (`mergeval init`). An existing empty file (e.g. made by a shell
    redirection) is filled in; a file with content is kept unless `force`."""
    path = Path(path)
    if path.is_dir():
        path = path / PLAN_FILE
    if path.exists() and path.stat().st_size > 0 and not force:
        raise UserError(f"{path} already exists. Pass --force to overwrite it, or choose another file name.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(EXAMPLE_PLAN, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"Cannot write {path} ({exc.strerror}). Choose another path.") from exc
    return path


__all__ = [
    "DEFAULT_OUTPUT",
    "DEFAULT_STORE",
    "EXAMPLE_PLAN",
    "ROLES",
    "CheckConfig",
    "ModelSpec",
    "Plan",
    "Settings",
    "SignOff",
    "Vocabulary",
    "check_entry",
    "check_model_paths",
    "check_union",
    "cross_check",
    "load_plan",
    "looks_like_local_path",
    "parse_plan",
    "plan_vocabulary",
    "write_example",
]
