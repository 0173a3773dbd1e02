"""The one runner: "evaluate these items of this check for this model" happens here, for every check type.

    plan_units(entries, ctx, stage)  -> WorkUnits: (model, check, config, stage, task, missing item ids)
    Runner(store, executor).run(units)   executes them; only the driver writes the store

A WorkUnit is plain data (picklable; `to_json`/`from_json` for other transports): an executor can run it in
another process or on another machine (`mergeval.core.executors`). The runner asks the store what is missing
before it makes units, so a finished (model, task) costs one query and never loads a model. Each batch an
engine yields is written in one transaction as it arrives, so a killed run loses at most the batch in flight
and a rerun computes only what is missing. A model row, a check row and a run row are written only after the
engine loaded (a model that cannot be loaded leaves the store untouched). Ctrl-C marks the runs
`interrupted` and re-raises; the CLI prints how to resume and exits 130.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mergeval.core.check import Batch, Check, CheckConfig, Task
from mergeval.core.context import CheckContext, PlanModel, RunEnv
from mergeval.core.identity import content_hash
from mergeval.core.progress import NullProgress, Progress, describe
from mergeval.core.registry import get_check

if TYPE_CHECKING:
    from mergeval.models import ModelRef
    from mergeval.store import Store


# -- work units -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkUnit:
    """Evaluate `item_ids` of `task` for `model` with check `check_type` (config `config`) at `stage`."""

    model: ModelRef
    check_type: str
    config: CheckConfig
    stage: str
    task: Task
    item_ids: tuple[str, ...]
    env: RunEnv = field(default_factory=RunEnv)

    @property
    def check(self) -> Check:
        return get_check(self.check_type)

    @property
    def engine_key(self) -> tuple[str, str, str, str]:
        """Units with the same key share one loaded engine (one model load)."""
        return (self.model.fingerprint, self.check_type, content_hash(self.config.model_dump(mode="json")),
                self.stage)

    @property
    def key(self) -> str:
        """A stable id of this unit (progress, logs)."""
        first = self.item_ids[0] if self.item_ids else ""
        return f"{self.model.fingerprint[:12]}/{self.task.hash[:12]}/{first}+{len(self.item_ids)}"

    @property
    def label(self) -> str:
        return f"{self.model.name} · {self.task.name}"

    def shards(self, size: int) -> list[WorkUnit]:
        """This unit cut into units of at most `size` items (order kept)."""
        size = max(1, size)
        ids = self.item_ids
        return [WorkUnit(self.model, self.check_type, self.config, self.stage, self.task, ids[i:i + size],
                         self.env) for i in range(0, len(ids), size)] or [self]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model.to_json(),
            "check_type": self.check_type,
            "config": self.config.model_dump(mode="json"),
            "stage": self.stage,
            "task": {"kind": self.task.kind, "name": self.task.name, "config": dict(self.task.config),
                     "item_ids": list(self.task.item_ids), "inputs": dict(self.task.inputs),
                     "provenance": dict(self.task.provenance), "batch_size": self.task.batch_size},
            "item_ids": list(self.item_ids),
            "env": self.env.__dict__,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkUnit:
        from mergeval.models import ModelRef

        chk = get_check(data["check_type"])
        t = data["task"]
        task = Task(t["kind"], t["name"], t["config"], tuple(t["item_ids"]), t.get("inputs", {}),
                    t.get("provenance", {}), t.get("batch_size", 16))
        env = RunEnv(**data.get("env", {}))
        # relative paths in a config (a suite file, task folders) resolve against the plan's folder, as on the
        # driver, not against the worker's working directory
        config = chk.Config.model_validate(data["config"], context={"base_dir": env.base_dir})
        return cls(ModelRef.from_json(data["model"]), data["check_type"], config, data["stage"], task,
                   tuple(data["item_ids"]), env)


# -- executors ------------------------------------------------------------------------------------------------------


class Sink(Protocol):
    """What an executor reports back to the runner (on the driver, in the driver's thread). An executor in
    this process streams (`started`, `batch`..., `finished`); a remote one hands over finished shards whole
    (`record`: one transaction each) and draws its own progress."""

    def started(self, unit: WorkUnit, provenance: dict[str, Any]) -> None: ...

    def batch(self, unit: WorkUnit, batch: Batch) -> None: ...

    def finished(self, unit: WorkUnit, status: str, provenance: dict[str, Any]) -> None: ...

    def record(self, unit: WorkUnit, batches: list[Batch], provenance: dict[str, Any],
               started_at: float | None = None) -> None: ...

    def progress_start(self, key: str, description: str, total: int | None) -> None: ...

    def progress_advance(self, key: str, n: int = 1) -> None: ...

    def say(self, message: str) -> None: ...


class Executor(Protocol):
    name: str

    def execute(self, units: Sequence[WorkUnit], sink: Sink) -> None:
        """Run every unit, reporting through `sink`; raise on the first unit that fails for good."""


def run_unit(check: Check, engine: Any, unit: WorkUnit) -> Iterator[Batch]:
    """The one call that evaluates items, wherever it runs (here, a Ray actor, ...)."""
    wanted = set(unit.item_ids)
    for batch in check.evaluate(engine, unit.task, unit.item_ids):
        unknown = [it.item_id for it in batch.items if it.item_id not in wanted]
        if unknown:
            raise RuntimeError(f"check {unit.check_type} returned items it was not asked for: {unknown[:3]}")
        yield batch


def group_by_engine(units: Sequence[WorkUnit]) -> list[list[WorkUnit]]:
    """Units in their order, grouped so each engine is loaded once (first appearance decides the order)."""
    groups: dict[tuple, list[WorkUnit]] = {}
    for unit in units:
        groups.setdefault(unit.engine_key, []).append(unit)
    return list(groups.values())


class LocalExecutor:
    """Everything in this process, one engine at a time (today's behaviour; the default)."""

    name = "local"

    def execute(self, units: Sequence[WorkUnit], sink: Sink) -> None:
        for group in group_by_engine(units):
            first = group[0]
            check = first.check
            engine = check.load(first.config, first.model, first.stage, first.env)
            try:
                for unit in group:
                    sink.started(unit, check.provenance(engine, unit.task))
                    status = "failed"
                    stats: dict[str, Any] = {}
                    try:
                        for batch in run_unit(check, engine, unit):
                            stats.update(batch.stats)
                            sink.batch(unit, batch)
                        status = "done"
                    except KeyboardInterrupt:
                        status = "interrupted"
                        raise
                    finally:
                        sink.finished(unit, status, {**check.provenance(engine, unit.task), **stats})
            finally:
                check.release(engine)


# -- the runner ---------------------------------------------------------------------------------------------------


@dataclass
class UnitOutcome:
    unit: WorkUnit
    status: str = "pending"
    stored: int = 0
    run_id: int | None = None


@dataclass
class RunSummary:
    """What a `Runner.run` did: items stored now, per unit."""

    outcomes: list[UnitOutcome] = field(default_factory=list)

    @property
    def evaluated(self) -> int:
        return sum(o.stored for o in self.outcomes)


class Runner:
    """Executes work units and writes their results: the only writer of evaluation results."""

    def __init__(self, store: Store, executor: Executor | None = None, progress: Progress | None = None):
        self.store = store
        self.executor = executor or LocalExecutor()
        self.progress = progress or NullProgress()

    def missing(self, model: ModelRef, task: Task) -> tuple[str, ...]:
        stored = self.store.item_ids(model.fingerprint, task.hash)
        return tuple(i for i in task.item_ids if i not in stored)

    def run(self, units: Iterable[WorkUnit]) -> RunSummary:
        units = [u for u in units if u.item_ids]
        summary = RunSummary([UnitOutcome(u) for u in units])
        if not units:
            return summary
        sink = _StoreSink(self.store, self.progress, {id(o.unit): o for o in summary.outcomes})
        try:
            self.executor.execute(units, sink)
        except KeyboardInterrupt:
            sink.close_open_runs("interrupted")
            raise
        except BaseException:
            sink.close_open_runs("failed")
            raise
        # executors that cut units into shards report the shards: they are outcomes too
        return RunSummary([o for o in sink.outcomes.values() if o.status != "pending" or o.stored])


class _StoreSink:
    """Writes what executors report: rows for model, check and run when a unit starts, one transaction per
    batch, the run's status and provenance when it ends."""

    def __init__(self, store: Store, progress: Progress, outcomes: dict[int, UnitOutcome]):
        self.store = store
        self.progress = progress
        self.outcomes = outcomes
        self.started_at: dict[int, float] = {}
        self.registered: set[tuple[str, str]] = set()

    def _register(self, unit: WorkUnit) -> None:
        model, task = unit.model, unit.task
        if (model.fingerprint, task.hash) not in self.registered:
            self.store.upsert_model(model.fingerprint, name=model.name, reference=model.reference, kind=model.kind,
                                    metadata=model.describe())
            self.store.upsert_check(task.hash, kind=task.kind, name=task.name, config=dict(task.config))
            self.registered.add((model.fingerprint, task.hash))

    def started(self, unit: WorkUnit, provenance: dict[str, Any]) -> None:
        outcome = self.outcomes[id(unit)] if id(unit) in self.outcomes else self._adopt(unit)
        model, task = unit.model, unit.task
        self._register(unit)
        prov = {**dict(task.provenance), **provenance, "check_type": unit.check_type,
                "n_items_asked": len(unit.item_ids)}
        outcome.run_id = self.store.start_run(model.fingerprint, task.hash, prov)
        outcome.status = "running"
        self.started_at[id(outcome)] = time.time()
        self.progress.start(unit.key, unit.label, len(unit.item_ids))

    def batch(self, unit: WorkUnit, batch: Batch) -> None:
        outcome = self.outcomes[id(unit)] if id(unit) in self.outcomes else self._adopt(unit)
        stored = self.store.add_batch(unit.model.fingerprint, unit.task.hash, outcome.run_id, batch.items,
                                      cache=batch.cache)
        outcome.stored += stored
        self.progress.advance(unit.key, len(batch.items))

    def finished(self, unit: WorkUnit, status: str, provenance: dict[str, Any]) -> None:
        outcome = self.outcomes[id(unit)] if id(unit) in self.outcomes else self._adopt(unit)
        self._finish(outcome, status, provenance)

    def record(self, unit: WorkUnit, batches: list[Batch], provenance: dict[str, Any],
               started_at: float | None = None) -> None:
        self._register(unit)
        prov = {**dict(unit.task.provenance), **provenance, "check_type": unit.check_type,
                "n_items_asked": len(unit.item_ids)}
        if started_at is not None:
            prov["seconds"] = round(time.time() - started_at, 3)
        _, added = self.store.record_run(unit.model.fingerprint, unit.task.hash, status="done", provenance=prov,
                                         batches=[(b.items, b.cache) for b in batches], started_at=started_at)
        outcome = self.outcomes[id(unit)] if id(unit) in self.outcomes else self._adopt(unit)
        outcome.stored += added
        outcome.status = "done"

    def progress_start(self, key: str, description: str, total: int | None) -> None:
        self.progress.start(key, description, total)

    def progress_advance(self, key: str, n: int = 1) -> None:
        self.progress.advance(key, n)

    def progress_describe(self, key: str, description: str) -> None:
        describe(self.progress, key, description)

    def progress_finish(self, key: str, status: str = "done") -> None:
        self.progress.finish(key, status)

    def say(self, message: str) -> None:
        self.progress.say(message)

    def _finish(self, outcome: UnitOutcome, status: str, provenance: dict[str, Any] | None = None) -> None:
        if outcome.run_id is None or outcome.status not in ("running",):
            return
        seconds = round(time.time() - self.started_at.get(id(outcome), time.time()), 3)
        unit = outcome.unit
        prov = {**dict(unit.task.provenance), **(provenance or {}), "check_type": unit.check_type,
                "n_items_asked": len(unit.item_ids), "seconds": seconds}
        self.store.finish_run(outcome.run_id, status=status, provenance=prov)
        outcome.status = status
        self.progress.finish(unit.key, status)

    def _adopt(self, unit: WorkUnit) -> UnitOutcome:
        """A unit an executor made itself (e.g. re-sharded): track it like the others."""
        outcome = UnitOutcome(unit)
        self.outcomes[id(unit)] = outcome
        return outcome

    def close_open_runs(self, status: str) -> None:
        for outcome in list(self.outcomes.values()):
            if outcome.status == "running":
                with contextlib.suppress(Exception):  # the store may be the thing that failed
                    self._finish(outcome, status)


# -- planning: plan entries -> work units, stage by stage --------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One check of a plan (or of a library call): the type and its validated config."""

    check: Check
    config: CheckConfig

    @property
    def label(self) -> str:
        return self.config.label


def plan_units(entries: Sequence[Entry], ctx: CheckContext, stage_index: int) -> list[WorkUnit]:
    """The work units of every entry's `stage_index`-th stage: only missing items, for runnable models."""
    runner_missing = Runner(ctx.store)
    units: list[WorkUnit] = []
    for entry in sorted(entries, key=lambda e: e.check.order):
        stages = entry.check.stages
        if stage_index >= len(stages):
            continue
        stage = stages[stage_index]
        for model in entry.check.plan_models(entry.config, ctx):
            for task in entry.check.tasks(entry.config, ctx, model, stage):
                missing = runner_missing.missing(model.ref, task)
                if missing:
                    units.append(WorkUnit(model.ref, entry.check.type, entry.config, stage, task, missing,
                                          ctx.env))
    return units


def run_entries(entries: Sequence[Entry], ctx: CheckContext, executor: Executor | None = None) -> RunSummary:
    """Evaluate everything `entries` need that the store lacks, stage by stage."""
    runner = Runner(ctx.store, executor, ctx.progress)
    summary = RunSummary()
    depth = max((len(e.check.stages) for e in entries), default=0)
    for stage_index in range(depth):
        summary.outcomes += runner.run(plan_units(entries, ctx, stage_index)).outcomes
    return summary


__all__ = [
    "Entry",
    "Executor",
    "LocalExecutor",
    "PlanModel",
    "RunSummary",
    "Runner",
    "Sink",
    "WorkUnit",
    "group_by_engine",
    "plan_units",
    "run_entries",
    "run_unit",
]
