"""`mergeval sweep --adaptive`: racing over the candidates (issue 13, item 2).

Instead of evaluating every candidate on every item, the candidates race on the *selection* items of the
objective's benchmarks (the held-out report items are not touched by the race):

1. the selection items of the objective's benchmarks are put in one seeded random order, fixed before any
   score is seen (`sequential.sampling_order`, each item weighted so that the weighted mean is the objective:
   1 / (benchmarks x tasks of its benchmark x selection items of its task));
2. round 1: every candidate is merged and evaluated on the first block of that order (`adaptive.checkpoints`:
   32 items, then +25% of the items seen, at least 32); later rounds: only the survivors, on the next block;
3. after each round `sequential.Race` (paired anytime-valid confidence sequences, at alpha / (C - 1) per pair)
   drops every candidate that some survivor beats (its upper bound is below that survivor's lower bound on the
   paired difference); it stops when one is left, when a survivor is within the margin
   (`settings.margin` points) of every other, or when every selection item is evaluated;
4. the winner is then evaluated in full through the sweep's checks (all checks, report items included) and
   ranked as today; a dropped candidate is never evaluated again.

The race's state (`Race.to_dict`, the round, the candidates) is kept in the store after each round
(`Store.put_adaptive_state`), so an interrupted race continues and a finished one is read back (a rerun
evaluates nothing new). Memory: a candidate merged in memory is freed after its block and merged again from
its recipe for the next block (merging a small model costs seconds; holding 16 models does not scale); a
candidate merged to disk keeps its folder until the race is over (then it goes, unless `keep: all`).

The race ranks on the lm-eval checks' item scores (`suite`, `leaderboard`, `lm-eval`): the objective must be
a mean of item scores in [0, 1] (accuracies); other checks run for the winner only.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mergeval.analysis.adaptive import ADAPTIVE_TYPES, bench_plans, block_units, checkpoints
from mergeval.analysis.sequential import Race, sampling_order
from mergeval.core.context import PlanModel
from mergeval.core.identity import content_hash
from mergeval.core.runner import Runner
from mergeval.dtypes import resolved_dtype
from mergeval.errors import UserError
from mergeval.merge import selection as sel
from mergeval.merge.grid import CANDIDATE_NAMESPACE, Candidate
from mergeval.merge.ranking import ModelScores
from mergeval.merge.run import MergeResult, record
from mergeval.models import ModelRef
from mergeval.plan import ModelSpec

RACE_KIND = "sweep-race"


@dataclass
class RaceItems:
    """The race's population: the objective's selection items in evaluation order, with their weights."""

    keys: list[sel.ItemKey]
    weights: list[float]
    bench_keys: dict[sel.ItemKey, tuple[int, str]] = field(default_factory=dict)  # -> (entry index, bp key)


def _population(run: Any) -> RaceItems:
    """The selection items of the objective's benchmarks (from the parents' tasks: no candidate needed)."""
    checks, spec = run.checks, run.spec
    split = sel.SplitPlan(spec.selection.fraction, spec.selection.seed)
    wanted = set(checks.objective.benchmarks)
    ctx = checks.context(checks.parents)
    per_bench: dict[str, dict[str, list[tuple[sel.ItemKey, int, str]]]] = {}
    for index, entry in enumerate(checks.entries):
        if entry.check.type not in ADAPTIVE_TYPES:
            continue
        for bp in bench_plans(entry, ctx):
            if bp.spec.name not in wanted:
                continue
            for key in bp.keys:
                task, doc = bp.split(key)
                item = (bp.spec.name, task, doc)
                if split.keep(item, "selection"):
                    per_bench.setdefault(bp.spec.name, {}).setdefault(task, []).append((item, index, key))
    missing = sorted(wanted - set(per_bench))
    if missing:
        raise UserError(f"--adaptive races on the item scores of lm-eval checks (suite, leaderboard, lm-eval), and "
                        f"the objective's {', '.join(missing)} is not one of them: rank on an lm-eval benchmark "
                        "or run the sweep without --adaptive.")
    keys, weights, where = [], [], {}
    for tasks in per_bench.values():
        for items in tasks.values():
            for item, index, key in items:
                keys.append(item)
                weights.append(1.0 / (len(per_bench) * len(tasks) * len(items)))
                where[item] = (index, key)
    order = sampling_order(["\0".join(k) for k in keys], spec.selection.seed, weights)
    return RaceItems([keys[i] for i in order], [weights[i] for i in order], where)


def state_key(run: Any, candidates: Sequence[Candidate]) -> str:
    """Where the race's state lives: the checks, the objective, the split, the level, the candidates."""
    spec = run.spec
    return content_hash({"kind": RACE_KIND, "checks": [c.model_dump(mode="json") for c in run.checks.plan.checks],
                         "objective": run.checks.objective.benchmarks, "fraction": spec.selection.fraction,
                         "seed": spec.selection.seed, "alpha": spec.alpha, "margin": _margin(run),
                         "candidates": sorted(c.key for c in candidates)})


def _margin(run: Any) -> float:
    return float(run.checks.plan.settings.margin)


@dataclass
class Racer:
    """One candidate in the race: its row, its identity (after the first merge) and its weights on disk."""

    cand: Candidate
    row: ModelScores
    model: PlanModel | None = None  # from the store (no weights)
    disk: MergeResult | None = None  # merged to disk: kept until the race is over


class SweepRace:
    """The race of one sweep run (see the module docstring)."""

    def __init__(self, run: Any, candidates: Sequence[Candidate]):
        if run.remote:
            raise UserError("--adaptive runs on the local executor only for now: drop --executor ray, or run "
                            "the sweep without --adaptive.")
        self.run, self.candidates = run, list(candidates)
        self.items = _population(run)
        self.key = state_key(run, candidates)
        self.runner = Runner(run.db, run.checks.executor, run.checks.progress)
        self.racers = [Racer(c, ModelScores(name=c.label, role="candidate", fingerprint="", method=c.method,
                                            parameters=c.parameters, key=c.key)) for c in candidates]
        self.race: Race | None = None
        self.n = 0  # items of the order evaluated so far (by the survivors)
        self.keys: list[str] = []  # the racing candidates (recipe keys), race index order

    # -- identity and evaluation of one candidate --------------------------------------------------------

    def _known(self, racer: Racer) -> bool:
        known = self.run.db.cache_get(CANDIDATE_NAMESPACE, racer.cand.key)
        if not known or not known.get("dtype"):
            return False
        ref = ModelRef(reference=f"merge:{racer.cand.key}", kind="in-memory", name=racer.cand.label,
                       fingerprint=known["fingerprint"], dtype=known["dtype"])
        racer.model = PlanModel(ModelSpec(name=racer.cand.label, path=ref.reference, role="candidate"), ref,
                                from_store=True)
        racer.row.fingerprint = known["fingerprint"]
        return True

    def _merged(self, racer: Racer) -> MergeResult:
        """The candidate's weights (merged now, or its folder from an earlier round), registered in the store."""
        if racer.disk is not None:
            return racer.disk
        merged = self.run.merge(racer.cand)
        entry = {"fingerprint": merged.fingerprint, "label": racer.cand.label, "dtype": resolved_dtype(merged.model)}
        kept = str(merged.output_path) if merged.output_path else None
        self.run.db.cache_put(CANDIDATE_NAMESPACE, racer.cand.key, {**entry, "kept_at": kept})
        record(self.run.db, merged.model, racer.cand.recipe, merged.output_path)
        racer.row.fingerprint = merged.fingerprint
        ref = ModelRef(reference=merged.model.reference, kind=merged.model.kind, name=racer.cand.label,
                       fingerprint=merged.fingerprint, dtype=entry["dtype"])
        racer.model = PlanModel(ModelSpec(name=racer.cand.label, path=ref.reference, role="candidate"), ref,
                                from_store=True)
        if merged.output_path is not None:
            racer.disk = merged
        return merged

    def _evaluate(self, racer: Racer, block: Sequence[sel.ItemKey]) -> None:
        """Evaluate `block` (only the items the store lacks) for one candidate; its in-memory weights go."""
        merged = self._merged(racer)
        model = PlanModel(ModelSpec(name=racer.cand.label, path=merged.model.reference, role="candidate"),
                          merged.model)
        ctx = self.run.checks.context([*self.run.checks.parents, model])
        by_entry: dict[int, list[str]] = {}
        for item in block:
            index, key = self.items.bench_keys[item]
            by_entry.setdefault(index, []).append(key)
        units = []
        for index, keys in by_entry.items():
            entry = self.run.checks.entries[index]
            for bp in bench_plans(entry, ctx):
                wanted = [k for k in keys if (bp.spec.name, *bp.split(k)) in self.items.bench_keys]
                units += block_units(bp, wanted, ctx)
        self.runner.run(units)
        del merged, model, ctx
        gc.collect()

    def _scores(self, block: Sequence[sel.ItemKey], alive: Sequence[int]) -> np.ndarray:
        """The block's stored item scores (rows) for the race's candidates (columns; dropped ones 0)."""
        out = np.zeros((len(block), len(self.keys)))
        models = [self.by_key[self.keys[i]].model for i in alive]
        _, scores = self.run.checks.item_scores([m for m in models if m is not None])
        flip = not self.run.checks.objective.higher_is_better
        for column, i in enumerate(alive):
            mine = scores[models[column].fingerprint]  # type: ignore[union-attr]
            for row, item in enumerate(block):
                if item not in mine:
                    raise UserError(f"{self.keys[i][:8]}: item {'/'.join(item)} could not be evaluated; see the "
                                    "log above, fix the cause and rerun the sweep (stored items are kept).")
                out[row, i] = 1.0 - mine[item] if flip else mine[item]
        return out

    # -- the race --------------------------------------------------------------------------------------

    @property
    def by_key(self) -> dict[str, Racer]:
        return {r.cand.key: r for r in self.racers}

    def _save(self) -> None:
        assert self.race is not None
        self.run.db.put_adaptive_state(self.key, {"kind": RACE_KIND, "candidates": self.keys, "n": self.n,
                                                  "race": self.race.to_dict()})

    def _resume(self) -> bool:
        saved = self.run.db.adaptive_state(self.key)
        if not saved or saved.get("kind") != RACE_KIND:
            return False
        self.keys, self.n = list(saved["candidates"]), int(saved["n"])
        self.race = Race.from_dict(saved["race"])
        for racer in self.racers:
            if racer.cand.key in self.keys and not self._known(racer):
                return False  # the store lost the candidate: race again (stored items are reused)
        return True

    def _checkpoints(self) -> list[int]:
        return checkpoints(len(self.items.keys))

    def _first_round(self) -> None:
        target = self._checkpoints()[0]
        block = self.items.keys[:target]
        total = len(self.racers)
        for number, racer in enumerate(self.racers, start=1):
            try:
                self._evaluate(racer, block)
            except UserError as exc:
                racer.row.status, racer.row.error = "failed", str(exc)
                self.run.say(f"[{number}/{total}] {racer.cand.label}: failed: {exc}")
                continue
            self.run.say(f"[{number}/{total}] {racer.cand.label}: {target} selection items (round 1)")
        self.keys = [r.cand.key for r in self.racers if r.row.status != "failed"]
        if len(self.keys) < 2:
            return
        self.race = Race(len(self.keys), len(self.items.keys), self.run.spec.alpha,
                         margin=_margin(self.run) / self.run.checks.objective.scale, total_weight=1.0)
        self._update(block, target)

    def _update(self, block: Sequence[sel.ItemKey], target: int) -> None:
        assert self.race is not None
        alive = list(self.race.survivors)
        weights = self.items.weights[self.n: target]
        before = set(alive)
        self.race.update(self._scores(block, alive), weights)
        self.n = target
        self._save()
        dropped = before - set(self.race.survivors)
        for i in sorted(dropped):
            self.run.say(f"race: {self.by_key[self.keys[i]].cand.label} dropped after {target} of "
                         f"{len(self.items.keys)} selection items")

    def _next_round(self) -> None:
        assert self.race is not None
        target = next(c for c in self._checkpoints() if c > self.n)
        block = self.items.keys[self.n: target]
        for i in self.race.survivors:
            self._evaluate(self.by_key[self.keys[i]], block)
        self._update(block, target)

    def run_race(self) -> str | None:
        """Race until decided; returns the winner's recipe key (None: no candidate could be merged)."""
        resumed = self._resume()
        if resumed:
            self.run.say(f"race: resumed after {self.n} of {len(self.items.keys)} selection items")
        else:
            self._first_round()
            if self.race is None:
                return self.keys[0] if self.keys else None
        assert self.race is not None
        while not self.race.finished:
            self._next_round()
        result = self.race.result()
        self.run.say(f"race: {self.by_key[self.keys[result.winner]].cand.label} wins ({result.reason}) after "
                     f"{self.n} of {len(self.items.keys)} selection items, {result.evaluations} of "
                     f"{result.full_evaluations} item evaluations")
        return self.keys[result.winner]

    def forget_disk(self) -> None:
        """Folders merged for the race go when it is over (unless kept); the winner's are merged again."""
        for racer in self.racers:
            if racer.disk is not None and racer.disk.output_path is not None and self.run.keep != "all":
                entry = {"fingerprint": racer.disk.fingerprint, "label": racer.cand.label,
                         "dtype": resolved_dtype(racer.disk.model)}
                self.run.forget_weights(racer.disk.output_path, entry, racer.cand.key)
                racer.disk = None

    def summary(self) -> dict[str, Any]:
        """What the race did, for sweep.json and the report: per candidate the selection items evaluated and
        when it was dropped; the item evaluations against the full race."""
        n_items = len(self.items.keys)
        marks = self._checkpoints()
        out: dict[str, Any] = {"selection_items": n_items, "alpha": self.run.spec.alpha,
                               "margin": _margin(self.run), "candidates": {}}
        if self.race is None:
            return {**out, "reason": "fewer than two candidates could be merged: no race"}
        result = self.race.result() if self.race.finished else None
        for i, key in enumerate(self.keys):
            racer = self.by_key[key]
            dropped = next((r for r, alive in enumerate(self.race.rounds) if i not in alive), None)
            rounds = len(self.race.rounds) if dropped is None else dropped + 1
            evaluated = marks[rounds - 1] if rounds else 0
            status = ("winner" if result and result.winner == i else "dropped" if dropped is not None
                      else "survivor")
            out["candidates"][racer.cand.label] = {"items": evaluated, "status": status,
                                                   "dropped_after_round": None if dropped is None else dropped + 1}
        out.update({"rounds": len(self.race.rounds), "items_per_round": list(self.race.items_per_round),
                    "reason": result.reason if result else "", "evaluations": self.race.evaluations,
                    "full_evaluations": len(self.keys) * n_items,
                    "evaluations_fraction": self.race.evaluations / (len(self.keys) * n_items)})
        return out


def race_candidates(run: Any, candidates: Sequence[Candidate]) -> tuple[list[tuple[ModelScores, PlanModel | None]],
                                                                         str | None, dict[str, Any]]:
    """Race the candidates, then evaluate the winner in full (`SweepRun.candidate`, as a sweep does): the
    outcomes (row, model) in candidate order, the winner's name and what the race did."""
    racing = SweepRace(run, candidates)
    winner_key = racing.run_race()
    racing.forget_disk()
    summary = racing.summary()
    outcomes: list[tuple[ModelScores, PlanModel | None]] = []
    winner = None
    for index, racer in enumerate(racing.racers, start=1):
        if racer.cand.key == winner_key:
            row, model = run.candidate(index, len(candidates), racer.cand)
            winner = row.name if model is not None else None
            outcomes.append((row, model))
            continue
        info = summary["candidates"].get(racer.cand.label)
        if racer.model is None and racer.row.status != "failed":  # a resumed race it was never part of
            racer.row.status, racer.row.error = "failed", "not in the race: it could not be merged when it began"
        if racer.row.status != "failed" and info:
            racer.row.status = (f"dropped after {info['items']} selection items" if info["status"] == "dropped"
                                else f"raced on {info['items']} selection items")
        outcomes.append((racer.row, racer.model if racer.row.status != "failed" else None))
    return outcomes, winner, summary


__all__ = ["SweepRace", "race_candidates", "state_key"]
