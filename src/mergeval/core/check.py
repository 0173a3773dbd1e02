"""The check protocol: what every kind of evaluation (lm-eval suites, sanity, perplexity, BLEU, consistency,
HumanEval, MT-Bench, pairwise, and third-party plugins) implements, and the data it hands on.

A check type is one class (see docs/extending.md for a complete example):

    @mergeval.check("bleu")
    class Bleu(Check[BleuConfig]):
        Config = BleuConfig                              # the ONLY declaration of the check's options
        def metrics(self, config, plan): ...             # MetricSpecs as data: what gates and reports may use
        def tasks(self, config, ctx, model, stage): ...  # Tasks: identity (config -> hash) + stable item ids
        def load(self, config, model, stage, env): ...   # the engine (loads the model); only when needed
        def evaluate(self, engine, task, item_ids): ...  # yields Batches of ItemRows for the missing items
        def collect(self, config, ctx): ...              # CheckData read back from the store (no model)

The runner (`mergeval.core.runner`) does everything else the same way for every type: it asks the store which
items of each task are missing, calls `load` once per (model, check, stage) only when something is missing,
writes each batch in one transaction, reports progress, and marks interrupted runs so a rerun resumes.

A check that needs something done before something else (MT-Bench: answers, then judgments) names its
`stages`; the runner finishes every check's stage i before planning stage i+1, so `tasks` of a later stage can
read what an earlier one stored (and pass it to the engine through `Task.inputs`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo

from mergeval.core.identity import content_hash
from mergeval.errors import UserError

if TYPE_CHECKING:
    from mergeval.core.context import CheckContext, PlanModel, RunEnv
    from mergeval.models import ModelRef
    from mergeval.store import ItemRow


class CheckConfig(BaseModel):
    """Base of every check type's configuration: a plan's `checks:` entry, the CLI options of the check's
    command and the keyword arguments of the library call are all derived from it. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    type: str
    name: str | None = Field(None, description="a label for this check (default: its type or suite)")

    @property
    def label(self) -> str:
        return self.name or self.type

    @classmethod
    def from_options(cls, **options: Any) -> Self:
        """The config from keyword options (a command's, a library call's; None = the default), validated like
        a plan entry with paths relative to the current folder; a bad value is a UserError in one sentence."""
        options = {k: v for k, v in options.items() if v is not None}
        try:
            return cls.model_validate(options, context={"base_dir": "."})
        except ValidationError as exc:
            raise UserError(_option_error(cls, exc.errors(include_url=False)[0])) from None


def _option_error(cls: type[CheckConfig], error: Any) -> str:
    """One pydantic error as a sentence: a validator's own message as it is (capitalised), else the option."""
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    option = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        text = f"unknown option {option!r}; the options are: {', '.join(sorted(cls.model_fields))}"
    elif error["type"] in ("value_error", "assertion_error") or not option:
        text = message
    else:
        text = f"{option}: {message[:1].lower()}{message[1:]} (got {error.get('input')!r})"
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def config_base_dir(info: ValidationInfo) -> Path | None:
    """The folder a config's relative paths are checked against: the plan's (the working folder for a
    command). None when a config is validated without one (a work unit arriving in another process: its
    paths were checked where it was made, and its data travels with it)."""
    context = info.context or {}
    return Path(context["base_dir"]) if "base_dir" in context else None


def resolve_in(path: str | Path, base: Path) -> Path:
    """`path` with `~` expanded; relative paths start at `base`."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


def must_exist(path: str | None, info: ValidationInfo, key: str, fix: str) -> str | None:
    """A config's path must exist (relative to the plan's folder); `fix` says what to do instead."""
    base = config_base_dir(info)
    if path is not None and base is not None and not resolve_in(path, base).exists():
        raise ValueError(f"{key} {path} does not exist (looked in {resolve_in(path, base)}); {fix}")
    return path


def metric_prefix(config: CheckConfig, plan: Any) -> str:
    """'' for the first check of its type in the plan (or without a plan), '<label>.' for later ones, so a
    second check of a type (say perplexity on wikitext, or a second pairwise opponent) gets
    `wikitext.perplexity` instead of overwriting the first check's numbers (the comparison renames a repeated
    benchmark the same way)."""
    for other in getattr(plan, "checks", None) or []:
        if other is config:
            return ""
        if other.type == config.type:
            return f"{config.label}."
    return ""


C = TypeVar("C", bound=CheckConfig)


# -- what a check measures, as data ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """A quality label for values in [low, high): the methodology's score bands (labels, never verdicts)."""

    low: float
    high: float
    label: str


@dataclass(frozen=True)
class MetricSpec:
    """One number a check produces: a `benchmark` (a column scored per item, so paired statistics apply) or a
    `fact` (one number per model, e.g. win_rate, size_gb). Renderers and gates read everything they need to
    show or judge it from here; no check type is special-cased downstream."""

    name: str
    display: str = ""
    kind: Literal["benchmark", "fact"] = "benchmark"
    scale: float = 100.0  # report value = mean item score x scale (0/1 accuracy -> 0-100)
    range: tuple[float | None, float | None] = (0.0, 100.0)  # of the report value; None = open
    higher_is_better: bool = True
    unit: str = "%"  # "%", "1-10", "ppl", ...
    bands: tuple[Band, ...] = ()
    in_average: bool = False  # part of the headline Average (the primary suite's benchmarks)
    metric_key: str = ""  # the engine's key (lm-eval "acc_norm,none"); informational
    check: str = ""  # label of the check it comes from
    description: str = ""
    family: str = ""  # the family of check types it belongs to (report `kind`, e.g. "lm-eval"); "" = its type
    normalized: bool = False  # on a normalised scale (0 = chance; leaderboard v2), ScoreData.raw holds the raw

    @property
    def title(self) -> str:
        return self.display or self.name

    def band(self, value: float | None) -> str | None:
        if value is None:
            return None
        for band in self.bands:
            if band.low <= value < band.high:
                return band.label
        return None


# -- what the runner executes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One identity in the store and the items it covers for one model.

    `config` is the identity: everything that can change an item's outcome (its hash is the store's check
    hash). `item_ids` are stable ids in evaluation order. `inputs` carries per-item data the engine needs from
    the store (answers to judge, cached judge verdicts), so an engine never reads the store itself and can run
    in another process. `provenance` is recorded with each run."""

    kind: str
    name: str
    config: Mapping[str, Any]
    item_ids: tuple[str, ...]
    inputs: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = 16  # items per evaluate batch (and store transaction) the check prefers

    @cached_property
    def hash(self) -> str:
        return content_hash(self.config)


@dataclass
class Batch:
    """Finished items, written in one transaction; `cache` entries (namespace, key, value) ride along."""

    items: list[ItemRow]
    cache: list[tuple[str, str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)  # engine counters merged into the run's provenance


class Check(Generic[C]):
    """Base class of check types. Subclasses set `type`, `Config` and implement the methods below."""

    type: ClassVar[str] = ""
    Config: ClassVar[type[CheckConfig]] = CheckConfig
    description: ClassVar[str] = ""
    stages: ClassVar[tuple[str, ...]] = ("evaluate",)
    order: ClassVar[int] = 50  # run order in a plan (sanity first: fast and catches broken merges)
    # Metric names gates may use even when no check of this type is in the plan ("not evaluated" then).
    known_metrics: ClassVar[tuple[str, ...]] = ()

    # -- plan time: from the config alone (no model, no data) --

    def metrics(self, config: C, plan: Any) -> list[MetricSpec]:
        return []

    def plan_models(self, config: C, ctx: CheckContext) -> list[PlanModel]:
        """The plan models this check evaluates (default: every model; a `models:` field selects)."""
        selection = getattr(config, "models", "all")
        return ctx.select(selection)

    # -- driver: what each model needs --

    def tasks(self, config: C, ctx: CheckContext, model: PlanModel, stage: str) -> list[Task]:
        raise NotImplementedError

    # -- worker: the engine and the evaluation --

    def load(self, config: C, model: ModelRef, stage: str, env: RunEnv) -> Any:
        """The engine for `model` (a loaded LM, a judge client, ...). Called once per (model, check, stage),
        only when some item is missing, and before anything is written: a model that cannot run the check
        fails here and leaves the store untouched."""
        return None

    def evaluate(self, engine: Any, task: Task, item_ids: Sequence[str]) -> Iterator[Batch]:
        """Evaluate `item_ids` (a subset of `task.item_ids`, in task order) and yield finished batches."""
        raise NotImplementedError

    def provenance(self, engine: Any, task: Task) -> dict[str, Any]:
        """Facts about how the items were produced (library versions, backend, device), stored per run."""
        return {}

    def release(self, engine: Any) -> None:
        """Free what `load` holds (called when the runner is done with the engine)."""

    # -- driver, after: read results back --

    def collect(self, config: C, ctx: CheckContext) -> Any:
        """The CheckData this check contributes to the comparison, read from the store only."""
        raise NotImplementedError


__all__ = ["Band", "Batch", "Check", "CheckConfig", "MetricSpec", "Task", "config_base_dir", "metric_prefix",
           "must_exist", "resolve_in"]
