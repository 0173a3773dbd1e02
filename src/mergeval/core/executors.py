"""Executors: where work units run. `local` (this process; the default) lives in `runner.py`; `ray` spreads
them over a Ray cluster (`pip install 'mergeval[ray]'`), the way mergekit-evolve spreads merge candidates:

- units are cut into shards (a few batches each, so a lost worker costs little);
- one Ray actor per (model, check, stage) group holds the loaded engine (the model is loaded once per actor,
  never once per shard) and declares the resources it needs (`num_gpus` when the cluster has GPUs, else
  `num_cpus`); a group with many shards gets several actors when the cluster has room;
- only the driver writes the store: each finished shard is written in ONE transaction (run row, items, cache
  entries) as it comes back, so a resume after any failure computes only what is missing;
- a worker or actor that dies is restarted (Ray's `max_restarts`) and its shard run again, up to
  `max_retries` times, with the failure and the retry in the log; a shard that keeps failing is reported with
  its error at the end (everything else is stored) and the run ends with a clear message;
- results are the local executor's: the same `Check.evaluate` on the same item ids (shards of an lm-eval task
  rebuild the few-shot contexts of documents 0..n in order, so no prompt changes).
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import socket
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mergeval.core.check import Batch
from mergeval.core.registry import get_check, load_plugin_file, loaded_plugin_files
from mergeval.core.runner import LocalExecutor, Sink, WorkUnit, group_by_engine, run_unit
from mergeval.errors import UserError

log = logging.getLogger("mergeval.ray")

EXECUTORS = ("local", "ray")
UNAVAILABLE_LIMIT, UNAVAILABLE_WAIT_S = 120, 0.25  # a restarting actor gets 30 s before a shard counts it
RAY_HINT = "Install it with: pip install 'mergeval[ray]'"


class ShardsFailed(UserError):
    """Some shards failed for good; everything else was stored. Exit code 4: the run is incomplete (1 is a
    failed gate, 2 a user error, 3 a gate not evaluated)."""

    exit_code = 4


def make_executor(name: str | None = None, *, address: str | None = None, **options: Any):
    """`local` (default) or `ray` (`address`: "auto", "ray://host:10001", or None for a local cluster)."""
    name = name or "local"
    if name == "local":
        if address:
            raise UserError("--address is for --executor ray; the local executor runs in this process.")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address=address, **options)
    raise UserError(f"Unknown executor {name!r}. Use one of: {', '.join(EXECUTORS)}.")


def resolve_executor(executor: Any = None, address: str | None = None, *, settings: Any = None):
    """The executor a run uses: an executor object as it is; else the name given (`--executor`), else the
    plan's `settings.executor`, else `ray` when an address is given, else `local`. The address is `--address`,
    else `settings.ray_address` (only for ray). Bad names, a missing Ray and an address nothing answers at
    fail here, before anything is opened or written."""
    if executor is not None and not isinstance(executor, str):
        return executor
    name = executor or getattr(settings, "executor", None) or ("ray" if address else "local")
    if name == "ray" and address is None:
        address = getattr(settings, "ray_address", None)
    return make_executor(name, address=address)


def _reachable(address: str | None, timeout: float = 3.0) -> None:
    """Fail at once when a `host:port` / `ray://host:port` address does not answer (Ray itself waits
    minutes for a GCS that is not there). "auto" and None are resolved by Ray."""
    if not address or address == "auto":
        return
    target = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r} is not a Ray address. Use auto, HOST:6379 or ray://HOST:10001.")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UserError(
            f"No Ray cluster answers at {address} ({exc.strerror or exc}). Start one with `ray start --head` on "
            "that machine (see docs/cluster.md), or check the host and port."
        ) from exc


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise UserError(f"--executor ray needs Ray, which is not installed. {RAY_HINT}") from exc
    return ray


# -- what travels: plain data ---------------------------------------------------------------------------------


def _batch_to_json(batch: Batch) -> dict[str, Any]:
    return {"items": [{"item_id": it.item_id, "metrics": it.metrics, "data": it.data} for it in batch.items],
            "cache": [list(entry) for entry in batch.cache], "stats": batch.stats}


def _batches_from_json(data: list[dict[str, Any]]) -> list[Batch]:
    from mergeval.store import ItemRow

    return [Batch([ItemRow(i["item_id"], i["metrics"], i["data"]) for i in b["items"]],
                  [tuple(c) for c in b["cache"]], b.get("stats", {})) for b in data]


def build_from_recipe(ref: Any) -> object:
    """The model object of a ModelRef that travels as a recipe (an in-memory merge): built by the function the
    recipe names (`"builder": "module:function"`, imported here, on the worker), so this module needs no merge
    code."""
    builder = str((ref.recipe or {}).get("builder") or "")
    module, _, function = builder.partition(":")
    if not module or not function:
        raise UserError(f"{ref.name} travels as a recipe that names no builder; evaluate a model folder instead.")
    return getattr(importlib.import_module(module), function)(ref)


class Evaluator:
    """The worker side (a Ray actor): holds one engine at a time, evaluates shards, returns plain data. When
    the driver hands it a shard of another (model, check, stage), it releases the engine it holds and loads the
    new one: the process, its imports and its device stay (a new actor would pay them again)."""

    def __init__(self, plugin_files: Sequence[str] = ()):
        for path in plugin_files:
            load_plugin_file(path)
        self.key: tuple | None = None
        self.check: Any = None
        self.engine: Any = None

    def _load(self, unit: WorkUnit) -> None:
        self.release()
        if unit.model.recipe is not None and unit.model.model_object is None:  # a sweep candidate: merged here
            unit.model.model_object = build_from_recipe(unit.model)
        self.check = get_check(unit.check_type)
        self.engine = self.check.load(unit.config, unit.model, unit.stage, unit.env)
        self.key = unit.engine_key

    def run(self, unit_json: dict[str, Any]) -> dict[str, Any]:
        unit = WorkUnit.from_json(unit_json)
        if unit.engine_key != self.key:
            self._load(unit)
        started = time.time()
        batches = [_batch_to_json(b) for b in run_unit(self.check, self.engine, unit)]
        stats: dict[str, Any] = {}
        for b in batches:
            stats.update(b["stats"])
        provenance = {**self.check.provenance(self.engine, unit.task), **stats,
                      "executor": "ray", "worker_pid": os.getpid(), "worker_host": os.uname().nodename}
        return {"batches": batches, "provenance": provenance, "started_at": started}

    def pid(self) -> int:
        return os.getpid()

    def release(self) -> None:
        if self.key is not None:
            self.key = None
            self.check.release(self.engine)
            self.engine = None
            gc.collect()


# -- the driver side ------------------------------------------------------------------------------------------


@dataclass
class _Shard:
    unit: WorkUnit
    group: int
    attempts: int = 0
    error: str | None = None
    unavailable: int = 0  # times its actor was restarting when the shard reached it


@dataclass
class _ModelBar:
    """The driver's progress of one model: its shards done / running / failed, one bar (rich on a terminal)."""

    key: str
    name: str
    total: int = 0
    done: int = 0
    running: int = 0
    retried: int = 0
    failed: int = 0

    def text(self) -> str:
        parts = [f"{self.running} running"] + [f"{n} {what}" for n, what in
                                               ((self.retried, "retried"), (self.failed, "failed")) if n]
        return f"{self.name} · shards on Ray ({', '.join(parts)})"

    def show(self, sink: Any) -> None:
        _sink_call(sink, "progress_describe", self.key, self.text())
        if self.done + self.failed == self.total and self.running == 0:
            _sink_call(sink, "progress_finish", self.key, "failed" if self.failed else "done")


def _sink_call(sink: Any, name: str, *args: Any) -> None:
    method = getattr(sink, name, None)  # optional sink methods (a sink without them draws less)
    if callable(method):
        method(*args)


@dataclass
class _Group:
    index: int
    units: list[WorkUnit]
    shards: deque = field(default_factory=deque)
    actors: list[Any] = field(default_factory=list)
    in_flight: int = 0
    done: int = 0
    failed: int = 0
    total: int = 0
    bar: _ModelBar | None = None

    @property
    def label(self) -> str:
        first = self.units[0]
        return f"{first.model.name} · {first.check_type}" + (f" ({first.stage})" if first.stage != "evaluate"
                                                              else "")


class RayExecutor:
    """Work units on a Ray cluster; see the module docstring."""

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: float | None = None,
                 num_gpus: float | None = None, shard_batches: int = 4, max_retries: int = 2,
                 max_restarts: int = 2, init_kwargs: dict[str, Any] | None = None):
        if max_retries < 0 or shard_batches < 1:
            raise UserError("max_retries must be >= 0 and shard_batches >= 1.")
        self.address = address
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.shard_batches = shard_batches
        self.max_retries, self.max_restarts = max_retries, max_restarts
        self.init_kwargs = dict(init_kwargs or {})
        self.stats: dict[str, Any] = {"shards": 0, "retries": 0, "failed": 0, "actors": 0}
        self._ray = _import_ray()  # a missing Ray is one sentence, before anything runs
        # actors whose model is done: the next model's before a new actor starts. They end with the run (an
        # idle actor kept for the next run would hold its CPU or GPU, and its model, in between)
        self._idle: list[Any] = []
        _reachable(address)  # so is an address nothing answers at

    # -- cluster --

    def _connect(self) -> None:
        ray = self._ray
        if ray.is_initialized():
            return
        kwargs = {"include_dashboard": False, "log_to_driver": False, **self.init_kwargs}
        _reachable(self.address)
        try:
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            where = self.address or "a new local cluster"
            raise UserError(
                f"Could not connect to the Ray cluster at {where} ({str(exc).splitlines()[0][:200]}). Start one "
                "with `ray start --head` (see docs/cluster.md) and pass --address auto or ray://HOST:10001."
            ) from exc

    def _resources(self) -> tuple[dict[str, float], int]:
        """Per-actor resources and how many actors fit the cluster at once."""
        total = self._ray.cluster_resources()
        if self.num_gpus is not None or (self.num_cpus is None and total.get("GPU", 0) >= 1):
            per = {"num_gpus": self.num_gpus or 1, "num_cpus": self.num_cpus or 1}
            slots = int(total.get("GPU", 0) // per["num_gpus"])
        else:
            per = {"num_cpus": self.num_cpus or 1}
            slots = int(total.get("CPU", 1) // per["num_cpus"])
        return per, max(1, slots)

    # -- execution --

    def execute(self, units: Sequence[WorkUnit], sink: Sink) -> None:
        self._connect()
        ray = self._ray
        per_actor, slots = self._resources()
        groups = self._plan_groups(units)
        remote = ray.remote(max_restarts=self.max_restarts, max_task_retries=0, **per_actor)(Evaluator)
        plugins = list(loaded_plugin_files())
        bars: dict[str, _ModelBar] = {}
        for g in groups:
            model = g.units[0].model
            g.bar = bars.setdefault(model.fingerprint, _ModelBar(f"ray:{model.fingerprint}", model.name))
            g.bar.total += g.total
        for bar in bars.values():
            sink.progress_start(bar.key, bar.text(), bar.total)
        pending: dict[Any, tuple[_Group, _Shard, Any]] = {}
        active: list[_Group] = []
        waiting = deque(groups)
        failures: list[_Shard] = []
        try:
            while waiting or active:
                self._activate(waiting, active, slots, remote, plugins)
                self._submit(active, pending, sink)
                if not pending:
                    break
                ready, _ = ray.wait(list(pending), num_returns=1)
                group, shard, actor = pending.pop(ready[0])
                group.in_flight -= 1
                group.bar.running -= 1
                self._collect(ray, ready[0], group, shard, actor, sink, failures)
                self._retire(active, group)
        except BaseException:
            for g in active:
                self._kill(g)
            raise
        finally:
            self.close()
        if failures:
            first = failures[0]
            raise ShardsFailed(
                f"{len(failures)} shard(s) failed after {self.max_retries + 1} attempts each (first: "
                f"{first.unit.label}, items {first.unit.item_ids[0]}..{first.unit.item_ids[-1]}: {first.error}). "
                "Everything else is stored; run the same command again to retry only what is missing."
            )

    def _plan_groups(self, units: Sequence[WorkUnit]) -> list[_Group]:
        groups = []
        for index, members in enumerate(group_by_engine(units)):
            g = _Group(index, members)
            for unit in members:
                size = max(1, unit.task.batch_size) * self.shard_batches
                g.shards.extend(_Shard(s, index) for s in unit.shards(size))
            g.total = len(g.shards)
            groups.append(g)
        self.stats["shards"] += sum(g.total for g in groups)
        return groups

    def _activate(self, waiting: deque, active: list[_Group], slots: int, remote, plugins: list[str]) -> None:
        """Start actors for waiting groups while the cluster has room; once every group has one, spare room
        goes to the groups with the most shards left per actor (each extra actor loads its model once)."""

        def spawn(g: _Group) -> None:
            if self._idle:
                g.actors.append(self._idle.pop())
                self.stats["reused"] = self.stats.get("reused", 0) + 1
                return
            g.actors.append(remote.remote(plugins))
            self.stats["actors"] += 1

        def used() -> int:
            return sum(len(g.actors) for g in active)  # + idle ones, which spawn() hands out first

        while waiting and used() < slots:
            group = waiting.popleft()
            spawn(group)
            active.append(group)
        while not waiting and active and used() < slots:
            group = max(active, key=lambda g: len(g.shards) / max(1, len(g.actors)))
            if len(group.shards) <= len(group.actors):
                break
            spawn(group)

    def _submit(self, active: list[_Group], pending: dict, sink: Sink) -> None:
        """Keep each actor busy with one shard (plus one queued, so it never waits for the driver)."""
        for g in active:
            for actor in g.actors:
                queued = sum(1 for (gg, _, a) in pending.values() if gg is g and a is actor)
                while queued < 2 and g.shards:
                    shard = g.shards.popleft()
                    shard.attempts += 1
                    pending[actor.run.remote(shard.unit.to_json())] = (g, shard, actor)
                    g.in_flight += 1
                    g.bar.running += 1
                    g.bar.show(sink)
                    queued += 1

    def _collect(self, ray, ref, group: _Group, shard: _Shard, actor, sink: Sink, failures: list) -> None:
        try:
            result = ray.get(ref)
        except ray.exceptions.ActorUnavailableError:
            # the worker was lost (an attempt, logged and retried); while Ray restarts the actor the shard
            # meets it unavailable again: that is no new failure, it is sent again until the actor is back
            shard.unavailable += 1
            if shard.unavailable == 1 or shard.unavailable > UNAVAILABLE_LIMIT:
                self._retry(group, shard, "ActorUnavailableError: worker lost", failures, sink)
                return
            shard.attempts -= 1
            group.shards.appendleft(shard)
            time.sleep(UNAVAILABLE_WAIT_S)
            return
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.ObjectLostError, ray.exceptions.NodeDiedError) as exc:
            self._retry(group, shard, f"{type(exc).__name__}: worker lost", failures, sink)
            return
        except ray.exceptions.RayTaskError as exc:
            cause = exc.as_instanceof_cause() if hasattr(exc, "as_instanceof_cause") else exc
            if isinstance(cause, UserError):  # the check refused (a model that cannot be loaded): no retry helps
                raise UserError(str(cause).splitlines()[0]) from None
            self._retry(group, shard, f"{type(cause).__name__}: {str(cause).splitlines()[-1][:300]}", failures,
                        sink)
            return
        sink.record(shard.unit, _batches_from_json(result["batches"]), result["provenance"], result["started_at"])
        group.done += 1
        group.bar.done += 1
        sink.progress_advance(group.bar.key, 1)
        group.bar.show(sink)

    def _retry(self, group: _Group, shard: _Shard, error: str, failures: list, sink: Sink) -> None:
        shard.error = error
        if shard.attempts <= self.max_retries:
            self.stats["retries"] += 1
            log.warning("shard %s failed (%s); retrying (attempt %d of %d)", shard.unit.key, error,
                        shard.attempts + 1, self.max_retries + 1)
            sink.say(f"{group.label}: a shard failed ({error}); retrying it")
            group.shards.appendleft(shard)
            group.bar.retried += 1
            group.bar.show(sink)
            return
        self.stats["failed"] += 1
        group.failed += 1
        group.bar.failed += 1
        group.bar.show(sink)
        failures.append(shard)
        log.error("shard %s failed for good: %s", shard.unit.key, error)
        sink.say(f"{group.label}: a shard failed {shard.attempts} times ({error}); giving up on it")

    def _retire(self, active: list[_Group], group: _Group) -> None:
        """A group with nothing left gives its actors to the next groups (they load the next model there)."""
        if not group.shards and group.in_flight == 0:
            self._idle.extend(group.actors)
            group.actors = []
            active.remove(group)

    def close(self) -> None:
        """End the idle actors (at the end of every run)."""
        for actor in self._idle:
            try:
                self._ray.kill(actor)
            except Exception:  # noqa: BLE001  an actor that is already gone
                log.debug("an idle actor is already gone")
        self._idle = []

    def _kill(self, group: _Group) -> None:
        for actor in group.actors:
            try:
                self._ray.kill(actor)
            except Exception:  # noqa: BLE001  an actor that is already gone
                log.debug("actor of %s already gone", group.label)
        group.actors = []


def shard_counts(units: Sequence[WorkUnit], shard_batches: int) -> dict[str, int]:
    """How many shards each model's units make (for progress and the cost model)."""
    out: dict[str, int] = defaultdict(int)
    for unit in units:
        out[unit.model.name] += len(unit.shards(max(1, unit.task.batch_size) * shard_batches))
    return dict(out)


__all__ = ["EXECUTORS", "Evaluator", "RayExecutor", "ShardsFailed", "build_from_recipe", "make_executor", "resolve_executor",
           "shard_counts"]
