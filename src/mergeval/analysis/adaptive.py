"""Adaptive evaluation (`mergeval run --adaptive`, plan `settings: {adaptive: true}`): the same verdicts on a
fraction of the items, with guarantees that hold under early stopping (issue 13; the statistics are in
`mergeval.analysis.sequential`, the method in docs/methodology.md, "Adaptive evaluation").

For every benchmark of the plan's lm-eval checks (`leaderboard`, `suite`, `lm-eval`):

1. the rules that depend on it: each candidate against each reference (parents, base, baselines) classified
   better / worse / within `settings.margin` points, and every gate that reads the benchmark (score gates,
   `no-regression` with the point rule, `retention` on named tasks) as threshold rules;
2. a seeded random item order fixed before any score is seen (for a benchmark averaged over sub-tasks, MMLU's
   subjects, items drawn with probability proportional to their weight 1/N_subject);
3. rounds: the next block of the order is evaluated for every model at once (paired items) through the core
   runner (WorkUnits carrying exactly those item ids; stored items are reused), then each rule's anytime-valid
   confidence sequence is updated from the stored per-item scores;
4. the benchmark stops when every rule is decided at its level alpha / K (Bonferroni over the K rules of the
   whole run); an undecided benchmark runs to the end. A benchmark whose decision needs every item (a gate on
   the Average, a sign-off, `rule: significant`, a score that is not a mean of [0, 1] item scores) runs fully.

The stopping state (round, monitors, decisions, the items evaluated) is kept in the store after each round
(`Store.put_adaptive_state`), so a run killed at any point continues where it was. `build_report` reads it
back (`apply_adaptive`): a benchmark that stopped early is reported on the items evaluated (the plain mean,
slightly biased by the stopping rule, which the report says), its gates decided by the sequential rule, and
"decided after n of N items" with the intervals in `Report.adaptive`.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mergeval.analysis.sequential import (
    Decision,
    Rule,
    RuleMonitor,
    combine_decisions,
    compare_rule,
    sampling_order,
    split_alpha,
    threshold_rule,
)
from mergeval.core.check import MetricSpec, Task
from mergeval.core.context import CheckContext, PlanModel
from mergeval.core.identity import content_hash
from mergeval.core.runner import Entry, Runner, WorkUnit, run_entries
from mergeval.plan import NoRegressionGate, RetentionGate, ScoreGate, SignOffGate
from mergeval.plan.gates import parse_number, split_reference
from mergeval.report import FAIL, PASS, AdaptiveEntry, AdaptiveRule, GateResult

ADAPTIVE_TYPES = ("leaderboard", "suite", "lm-eval")
ROUND_MIN = 32  # items of the first round (per benchmark, every model)
ROUND_GROWTH = 0.25  # each later round adds 25% of the items seen so far (at least ROUND_MIN)
BIAS_NOTE = ("the value is the plain mean of the items evaluated; stopping when a rule is decided biases it "
             "slightly (away from the decision boundary); `mergeval run --full` evaluates the rest")
REFERENCE_ROLES = ("parent", "base", "baseline")


def checkpoints(n_items: int) -> list[int]:
    """The cumulative item counts after each round: 32, 64, 96, 128, 160, 200, 250, ... N."""
    out, n = [], 0
    while n < n_items:
        n = min(n_items, n + max(ROUND_MIN, math.ceil(ROUND_GROWTH * n)))
        out.append(n)
    return out


def state_key(config: Any, benchmark: str, models: Sequence[PlanModel]) -> str:
    """Where a benchmark's stopping state lives: the check's config, the benchmark and the models (weights and
    roles); computed without loading any data, so `compare` finds it."""
    return content_hash({"check": config.model_dump(mode="json"), "benchmark": benchmark,
                         "models": [[m.fingerprint, m.role] for m in models]})


# -- rules: what depends on a benchmark ---------------------------------------------------------------------


@dataclass
class GatePart:
    """One gate's rules on one benchmark for one candidate (`how`: any/all of them must pass)."""

    gate: str  # content hash of the gate
    candidate: str
    rules: list[str]
    how: str
    benchmarks: int  # how many benchmarks the whole gate reads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class BenchPlan:
    """One benchmark of one lm-eval check, adaptively."""

    entry: Entry
    spec: MetricSpec
    key: str
    models: list[PlanModel]  # the model columns
    tasks: dict[str, dict[str, Task]]  # model name -> lm-eval task -> Task
    keys: list[str]  # item keys ("doc" or "task/doc") in evaluation order
    weights: list[float] | None  # per item, in evaluation order (None: uniform)
    rules: list[Rule] = field(default_factory=list)
    gates: list[GatePart] = field(default_factory=list)
    needs_all: str | None = None  # why every item is evaluated
    metric_key: str = ""

    @property
    def multi(self) -> bool:
        return len(next(iter(self.tasks.values()), {})) > 1

    def split(self, key: str) -> tuple[str, str]:
        if self.multi:
            task, _, doc = key.rpartition("/")
            return task, doc
        return next(iter(next(iter(self.tasks.values())))), key


def _gate_hash(gate: Any) -> str:
    return content_hash(gate.model_dump(mode="json"))


def _columns(entry: Entry, ctx: CheckContext) -> list[PlanModel]:
    """The models a check evaluates here (local weights), in plan order: the columns of the paired scores."""
    names = {m.name for m in entry.check.plan_models(entry.config, ctx)}
    return [m for m in ctx.models if m.runnable and m.name in names]


def _names(bench: str, label: str) -> set[str]:
    return {bench, f"{label}.{bench}"}


def _reference_terms(ref: str, cols: list[str], roles: dict[str, str]) -> tuple[list[list[str]], str] | None:
    """A gate reference as groups of model names: ([[p1], [p2]], "min") / ([[p1, p2]], "mean"), or None."""
    for fn in ("min", "max", "mean"):
        for group, role in (("parents", "parent"), ("baselines", "baseline")):
            if ref == f"{fn}({group})":
                names = [n for n in cols if roles[n] == role]
                if not names:
                    return None
                return ([names], "mean") if fn == "mean" else ([[n] for n in names], fn)
    names = [n for n in cols if roles[n] == "base"] if ref == "base" else [ref]
    return ([names[:1]], "one") if names and names[0] in cols else None


def _score_gate_rules(gate: ScoreGate, cand: str, cols: list[str], roles: dict[str, str], scale: float,
                      tag: str) -> tuple[list[Rule], str] | None:
    """candidate OP f(reference) as threshold rules and how they combine; None if not sequentially decidable."""
    index = {n: i for i, n in enumerate(cols)}
    sign = 1.0 if gate.op in (">=", ">") else -1.0  # "<=": -(cand - ref) >= 0
    number = parse_number(gate.than)
    if number is not None:
        coef = [0.0] * len(cols)
        coef[index[cand]] = sign
        return [threshold_rule(tag, coef, sign * number / scale)], "all"
    try:
        base, op, operand = split_reference(str(gate.than))
    except ValueError:
        return None
    terms = _reference_terms(base, cols, roles)
    if terms is None:
        return None
    groups, fn = terms
    mult = operand if op == "*" else 1.0
    add = (operand if op == "+" else -operand if op == "-" else 0.0) / scale if op in ("+", "-") else 0.0
    rules = []
    for group in groups:
        coef = [0.0] * len(cols)
        coef[index[cand]] += sign
        for name in group:
            coef[index[name]] -= sign * mult / len(group)
        if all(c == 0 for c in coef):
            return None
        rules.append(threshold_rule(_rule_name(tag, group, len(groups)), coef, sign * add))
    # cand >= min_j(r_j): any j; cand >= max_j: all j ("<=" swaps them)
    how = {("min", 1.0): "any", ("max", 1.0): "all", ("min", -1.0): "all", ("max", -1.0): "any"}.get((fn, sign), "all")
    return rules, how


def _ratio_rules(cand: str, parents: list[str], cols: list[str], ratio: float, mean: bool,
                 tag: str) -> list[Rule]:
    """cand >= ratio x mean(parents) (one rule), or cand >= ratio x parent_j for each j (all must pass)."""
    index = {n: i for i, n in enumerate(cols)}
    groups = [parents] if mean else [[p] for p in parents]
    rules = []
    for group in groups:
        coef = [0.0] * len(cols)
        coef[index[cand]] = 1.0
        for p in group:
            coef[index[p]] -= ratio / len(group)
        rules.append(threshold_rule(_rule_name(tag, group, len(groups)), coef, 0.0))
    return rules


def _rule_name(tag: str, group: list[str], n_groups: int) -> str:
    return f"{tag} vs {', '.join(group)}" if n_groups > 1 else tag


def _gate_rules(bp: BenchPlan, gates: Sequence[Any], settings: Any, cols: list[str], roles: dict[str, str],
                label: str, all_benchmarks: list[MetricSpec]) -> None:
    """Add every gate's rules on this benchmark to `bp` (or say why it needs every item)."""
    names = _names(bp.spec.name, label)
    parents = [n for n in cols if roles[n] == "parent"]
    n_cands = sum(1 for n in cols if roles[n] == "candidate")
    for g_index, gate in enumerate(gates):
        ghash = _gate_hash(gate)
        if isinstance(gate, SignOffGate):
            bp.needs_all = "the plan has a sign-off gate: a person signs off on the full evaluation"
            return
        for cand in (n for n in cols if roles[n] == "candidate"):
            tag = f"gate '{gate.label}'" + (f" ({cand})" if n_cands > 1 else "")
            if isinstance(gate, ScoreGate):
                if gate.metric == "average" and bp.spec.in_average:
                    bp.needs_all = f"gate '{gate.label}' reads the Average of every benchmark"
                    return
                if gate.metric not in names:
                    continue
                made = _score_gate_rules(gate, cand, cols, roles, bp.spec.scale, tag)
                if made is None:
                    bp.needs_all = f"gate '{gate.label}' cannot be decided item by item here"
                    return
                bp.rules += made[0]
                bp.gates.append(GatePart(ghash, cand, [r.name for r in made[0]], made[1], 1))
            elif isinstance(gate, NoRegressionGate):
                tasks = gate.tasks or [b.name for b in all_benchmarks]
                if not names & set(tasks):
                    continue
                if gate.rule != "point":
                    bp.needs_all = f"gate '{gate.label}' (rule: {gate.rule}) needs the paired test on every item"
                    return
                if not parents:
                    continue
                rules = _ratio_rules(cand, parents, cols, 1 - settings.tolerance, False, tag)
                bp.rules += rules
                bp.gates.append(GatePart(ghash, cand, [r.name for r in rules], "all", len(tasks)))
            elif isinstance(gate, RetentionGate):
                if gate.tasks is None and bp.spec.in_average:
                    bp.needs_all = f"gate '{gate.label}' reads the Average of every benchmark"
                    return
                if not gate.tasks or not names & set(gate.tasks) or not parents:
                    continue
                rules = _ratio_rules(cand, parents, cols, float(gate.at_least), gate.vs == "mean-parents", tag)
                bp.rules += rules
                bp.gates.append(GatePart(ghash, cand, [r.name for r in rules], "all", len(gate.tasks)))


def _compare_rules(bp: BenchPlan, cols: list[str], roles: dict[str, str], margin: float) -> None:
    for cand in (n for n in cols if roles[n] == "candidate"):
        for ref in (n for n in cols if roles[n] in REFERENCE_ROLES):
            bp.rules.append(compare_rule(f"{cand} vs {ref}", cols.index(cand), cols.index(ref), len(cols),
                                         margin=margin / bp.spec.scale))


# -- planning -----------------------------------------------------------------------------------------------


def bench_plans(entry: Entry, ctx: CheckContext) -> list[BenchPlan]:
    """One BenchPlan per benchmark of an lm-eval check (tasks made once, as `plan_units` makes them)."""
    from mergeval.checks.lmeval import benchmark_spec, prepare_check

    config, plan = entry.config, ctx.plan
    cols = _columns(entry, ctx)
    tasks_of = {m.name: {t.name: t for t in entry.check.tasks(config, ctx, m, "evaluate")} for m in cols}
    prepared = prepare_check(config, ctx.env)
    roles = {m.name: m.role for m in cols}
    names = [m.name for m in cols]
    specs = [benchmark_spec(b, config) for b in prepared.suite.benchmarks]
    out = []
    for bench, spec in zip(prepared.suite.benchmarks, specs, strict=True):
        if not cols or any(t not in tasks_of[cols[0].name] for t in bench.tasks):
            continue  # a gated benchmark without data: nothing to run
        tasks = {m.name: {t: tasks_of[m.name][t] for t in bench.tasks} for m in cols}
        first = tasks[cols[0].name]
        keys = [f"{t}/{i}" if len(bench.tasks) > 1 else i for t in bench.tasks for i in first[t].item_ids]
        weights = None
        if len(bench.tasks) > 1 and bench.aggregate == "task_mean":
            weights = [1.0 / len(first[t].item_ids) for t in bench.tasks for _ in first[t].item_ids]
        order = sampling_order(keys, ctx.env.seed, weights) if keys else []
        bp = BenchPlan(entry, spec, state_key(config, bench.name, cols), cols, tasks, [keys[i] for i in order],
                       [weights[i] for i in order] if weights else None,
                       metric_key=str(first[bench.tasks[0]].inputs.get("metric_key", bench.metric_key)))
        bp.needs_all = _unsupported(bench, first, roles)
        if bp.needs_all is None:
            _compare_rules(bp, names, roles, plan.settings.margin)
            _gate_rules(bp, plan.gates, plan.settings, names, roles, config.label, specs)
        if bp.needs_all is None and not bp.rules:
            bp.needs_all = "no rule depends on it (no candidate with a reference in this check)"
        out.append(bp)
    return out


def _unsupported(bench: Any, tasks: dict[str, Task], roles: dict[str, str]) -> str | None:
    if bench.normalized:
        return "a normalised (leaderboard v2) score is not a mean of item scores"
    metric = str(next(iter(tasks.values())).inputs.get("metric_key", bench.metric_key)).split(",")[0]
    if any((t.config.get("aggregations") or {}).get(metric, "mean") != "mean" for t in tasks.values()):
        return f"its metric {metric} is not a mean of item scores"
    if any((t.config.get("higher_is_better") or {}).get(metric, True) is False for t in tasks.values()):
        return f"its metric {metric} is lower-is-better"
    if "candidate" not in roles.values():
        return "no candidate runs this check"
    return None


# -- stopping state in the store ----------------------------------------------------------------------------


@dataclass
class BenchRun:
    """A benchmark's progress in this run: its monitor and where it is in the order."""

    plan: BenchPlan
    monitor: RuleMonitor | None
    alpha: float
    alpha_per_rule: float
    n: int = 0
    status: str = "running"  # running | stopped | finished
    reason: str = ""
    rounds: list[int] = field(default_factory=list)

    def identity(self) -> dict[str, Any]:
        return {"rules": [r.to_dict() for r in self.plan.rules], "alpha_per_rule": self.alpha_per_rule,
                "items": content_hash(self.plan.keys), "metric_key": self.plan.metric_key}

    def state(self) -> dict[str, Any]:
        bp = self.plan
        decisions = self.monitor.decisions() if self.monitor is not None else []
        return {
            "check": bp.entry.config.label, "benchmark": bp.spec.name, "scale": bp.spec.scale,
            "models": {m.name: m.fingerprint for m in bp.models}, "columns": [m.name for m in bp.models],
            "N": len(bp.keys), "n": self.n, "status": self.status, "reason": self.reason,
            "needs_all": bp.needs_all, "alpha": self.alpha, "rounds": self.rounds,
            "identity": self.identity(), "decisions": [d.to_dict() for d in decisions],
            "gates": [g.to_dict() for g in bp.gates],
            "monitor": self.monitor.to_dict() if self.monitor is not None and self.status == "running" else None,
            "items": bp.keys[: self.n] if self.status == "stopped" else [],
        }


def _resume(store: Any, bp: BenchPlan, alpha: float, alpha_per_rule: float) -> BenchRun:
    run = BenchRun(bp, None if bp.needs_all else RuleMonitor(bp.rules, len(bp.keys), alpha_per_rule,
                                                              total_weight=sum(bp.weights) if bp.weights else None),
                   alpha, alpha_per_rule)
    saved = store.adaptive_state(bp.key)
    if not saved or bp.needs_all or saved.get("identity") != run.identity():
        return run  # a new run (or the rules changed): the order is the same, stored items are replayed
    if saved.get("status") in ("stopped", "finished"):
        run.n, run.status, run.reason, run.rounds = saved["n"], saved["status"], saved["reason"], saved["rounds"]
        run.monitor = None
        return run
    if saved.get("monitor"):
        run.monitor = RuleMonitor.from_dict(saved["monitor"])
        run.n, run.rounds = int(saved["n"]), list(saved.get("rounds", []))
    return run


# -- running ------------------------------------------------------------------------------------------------


def block_units(bp: BenchPlan, keys: Sequence[str], ctx: CheckContext) -> list[WorkUnit]:
    """WorkUnits evaluating `keys` (the missing ones) for every model, grouped by lm-eval task."""
    by_task: dict[str, set[str]] = {}
    for key in keys:
        task, doc = bp.split(key)
        by_task.setdefault(task, set()).add(doc)
    units = []
    for m in bp.models:
        for name, docs in by_task.items():
            task = bp.tasks[m.name][name]
            stored = ctx.store.item_ids(m.fingerprint, task.hash)
            missing = tuple(i for i in task.item_ids if i in docs and i not in stored)
            if missing:
                units.append(WorkUnit(m.ref, bp.entry.check.type, bp.entry.config, "evaluate", task, missing, ctx.env))
    return units


def _scores(bp: BenchPlan, keys: Sequence[str], ctx: CheckContext) -> np.ndarray | None:
    """The stored item scores of `keys` (rows) for every model (columns); None if one is missing."""
    cols = []
    for m in bp.models:
        values: dict[str, float] = {}
        for name, task in bp.tasks[m.name].items():
            for it in ctx.store.items(m.fingerprint, task.hash):
                v = it.metrics.get(bp.metric_key)
                if isinstance(v, (int, float)):
                    values[f"{name}/{it.item_id}" if bp.multi else it.item_id] = float(v)
        if any(k not in values for k in keys):
            return None
        cols.append([values[k] for k in keys])
    return np.asarray(cols, dtype=float).T.reshape(len(keys), len(bp.models))


def _decided_reason(decisions: list[Decision], alpha_per_rule: float) -> str:
    rules = "the rule" if len(decisions) == 1 else f"all {len(decisions)} rules"
    return f"{rules} decided, each at level {alpha_per_rule:.3g}"


def _advance(run: BenchRun, ctx: CheckContext) -> None:
    """After a round: update the monitor with the block just evaluated, decide whether to stop."""
    bp = run.plan
    target = next(c for c in checkpoints(len(bp.keys)) if c > run.n)
    block = bp.keys[run.n: target]
    scores = _scores(bp, block, ctx)
    if scores is None:
        run.status, run.reason = "finished", "some items could not be evaluated for every model"
        return
    if np.any(scores < -1e-9) or np.any(scores > 1 + 1e-9):
        bp.needs_all = f"its item scores ({bp.metric_key}) are not in [0, 1]"
        run.monitor, run.status = None, "running"
        return
    assert run.monitor is not None
    decisions = run.monitor.update(scores, bp.weights[run.n: target] if bp.weights else None)
    run.n = target
    run.rounds.append(target)
    if target >= len(bp.keys):
        run.status, run.reason = "finished", (
            _decided_reason(decisions, run.alpha_per_rule) if all(d.decided for d in decisions) and
            not all(d.exact for d in decisions) else "not decided before the end: every item evaluated")
    elif all(d.decided for d in decisions):
        run.status, run.reason = "stopped", _decided_reason(decisions, run.alpha_per_rule)


def run_adaptive(entries: Sequence[Entry], ctx: CheckContext, executor: Any = None) -> None:
    """Run the plan's entries: lm-eval checks adaptively (all of them together, round by round, at the place
    of the first), every other check as `run_entries` runs it."""
    adaptive = [e for e in entries if e.check.type in ADAPTIVE_TYPES]
    for entry in entries:
        if entry.check.type not in ADAPTIVE_TYPES:
            run_entries([entry], ctx, executor)
        elif entry is adaptive[0]:
            _run_rounds(adaptive, ctx, executor)


def _run_rounds(entries: Sequence[Entry], ctx: CheckContext, executor: Any) -> None:
    settings = ctx.plan.settings
    plans = [bp for e in entries for bp in bench_plans(e, ctx)]
    n_rules = sum(len(bp.rules) for bp in plans if bp.needs_all is None)
    per_rule = split_alpha(settings.alpha, n_rules) if n_rules else settings.alpha
    runs = [_resume(ctx.store, bp, settings.alpha, per_rule) for bp in plans]
    runner = Runner(ctx.store, executor, ctx.progress)
    for run in runs:
        if run.plan.needs_all:
            ctx.say(f"adaptive: {run.plan.spec.title} runs every item: {run.plan.needs_all}")
    while True:
        active = [r for r in runs if r.status == "running"]
        if not active:
            break
        units = []
        for run in active:
            bp = run.plan
            if bp.needs_all or run.monitor is None:
                units += block_units(bp, bp.keys[run.n:], ctx)
            else:
                target = next(c for c in checkpoints(len(bp.keys)) if c > run.n)
                units += block_units(bp, bp.keys[run.n: target], ctx)
        runner.run(units)
        for run in active:
            if run.plan.needs_all or run.monitor is None:
                run.n, run.status = len(run.plan.keys), "finished"
                run.reason = f"needs every item: {run.plan.needs_all}"
            else:
                _advance(run, ctx)
            ctx.store.put_adaptive_state(run.plan.key, run.state())
            if run.status == "stopped":
                ctx.say(f"adaptive: {run.plan.spec.title} decided after {run.n} of {len(run.plan.keys)} items")


# -- reading it back: the report ----------------------------------------------------------------------------


@dataclass
class _Used:
    state: dict[str, Any]
    spec: MetricSpec
    early: bool  # stopped early and not completed since
    complete: bool = False  # every item stored for every model (the full evaluation)


def _states(data: Any, store: Any) -> list[_Used]:
    plan, used = data.plan, []
    for config in plan.checks:
        if config.type not in ADAPTIVE_TYPES:
            continue
        cols = [m for m in data.models if m.runnable]
        for spec in data.benchmarks:
            if spec.check != config.label:
                continue
            state = _find_state(store, config, spec.name, cols) or _find_state(
                store, config, spec.name.removeprefix(f"{config.label}."), cols)
            if state is None:
                continue
            scores = [data.score(name, spec.name) for name in state["columns"]]
            complete = all(s is not None and s.n >= s.n_target for s in scores)
            used.append(_Used(state, spec, state["status"] == "stopped" and not complete, complete))
    return used


def _find_state(store: Any, config: Any, bench: str, cols: list[PlanModel]) -> dict[str, Any] | None:
    state = store.adaptive_state(state_key(config, bench, cols))
    if state is None or set(state.get("columns", [])) != {m.name for m in cols}:
        return None
    return state


def _restrict(data: Any, used: _Used) -> None:
    """A benchmark that stopped early: every model's score on the items evaluated (the plain mean)."""
    state, spec = used.state, used.spec
    keys = state["items"]
    for name in state["columns"]:
        score = data.score(name, spec.name)
        if score is None or any(k not in score.items for k in keys):
            used.early = False  # the store lost items: report it as it is
            return
    for name in state["columns"]:
        score = data.score(name, spec.name)
        values = [score.items[k] for k in keys]
        stderr = statistics.stdev(values) / math.sqrt(len(values)) * spec.scale if len(values) > 1 else None
        data.scores[name][spec.name] = dataclasses.replace(
            score, value=statistics.fmean(values) * spec.scale, stderr=stderr, n=len(keys),
            items={k: score.items[k] for k in keys},
            strata={k: score.strata[k] for k in keys} if score.strata else score.strata,
            stopped_early=True)
    data.missing = [m for m in data.missing if not (m.benchmark == spec.name and m.model in state["columns"])]


def apply_adaptive(data: Any, store: Any) -> list[AdaptiveEntry]:
    """Benchmarks an adaptive run stopped early get their values from the items evaluated (in place on the
    Collected `data`); returns what the report says about every adaptively run benchmark."""
    if store is None or not any(c.type in ADAPTIVE_TYPES for c in data.plan.checks):
        return []
    used = _states(data, store)
    for u in used:
        if u.early:
            _restrict(data, u)
    data.adaptive_used = used  # read by adaptive_gates
    return [_entry(u) for u in used]


def _entry(u: _Used) -> AdaptiveEntry:
    s, scale = u.state, u.state.get("scale", 100.0)
    if u.early or s["status"] != "stopped":
        status, reason = ("stopped early" if u.early else "ran to the end"), s["reason"]
    elif u.complete:
        status, reason = "completed", s["reason"] + "; the remaining items were evaluated since (--full)"
    else:
        status, reason = "incomplete", s["reason"] + "; but some of the items it decided on are no longer stored"
    rules = [AdaptiveRule(rule=d["rule"], verdict=d["verdict"], lower=d["lower"] * scale, upper=d["upper"] * scale,
                          estimate=None if d["estimate"] is None else d["estimate"] * scale) for d in s["decisions"]]
    n = s["n"] if u.early else s["N"]
    return AdaptiveEntry(check=s["check"], benchmark=u.spec.name, display=u.spec.title, status=status, reason=reason,
                         n=n, n_target=s["N"], items_saved=(s["N"] - n) * len(s["columns"]), alpha=s["alpha"],
                         alpha_per_rule=(s.get("identity") or {}).get("alpha_per_rule"), rules=rules,
                         note=BIAS_NOTE if u.early else "")


def adaptive_gates(gates: list[GateResult], data: Any) -> list[GateResult]:
    """Gate results of gates that read a benchmark stopped early: decided by the sequential rules (each gate
    part pass when its rules' intervals clear the threshold), since a point comparison of partial means is
    not a decision at level alpha."""
    used = [u for u in getattr(data, "adaptive_used", []) if u.state["gates"]]
    if not any(u.early for u in used):
        return gates
    candidates = [m.name for m in data.by_role("candidate")]
    out = list(gates)
    for g_index, gate in enumerate(data.plan.gates):
        ghash = _gate_hash(gate)
        for c_index, cand in enumerate(candidates):
            parts = [(u, p) for u in used for p in u.state["gates"] if p["gate"] == ghash and p["candidate"] == cand]
            if not parts or not any(u.early for u, _ in parts) or len(parts) < parts[0][1]["benchmarks"]:
                continue
            verdicts, notes = [], []
            for u, part in parts:
                decisions = [Decision(**d) for d in u.state["decisions"] if d["rule"] in part["rules"]]
                verdicts.append(combine_decisions(decisions, part["how"]))
                notes.append(f"{u.spec.title} {verdicts[-1]} after {u.state['n'] if u.early else u.state['N']} "
                             f"of {u.state['N']} items")
            status = FAIL if "fail" in verdicts else PASS if all(v == "pass" for v in verdicts) else None
            i = g_index * len(candidates) + c_index
            if status is None or i >= len(out):
                continue
            detail = f"decided sequentially at alpha {parts[0][0].state['alpha']}: " + "; ".join(notes)
            out[i] = out[i].model_copy(update={"status": status, "detail": f"{detail} ({out[i].detail})"})
    return out


__all__ = ["ADAPTIVE_TYPES", "BIAS_NOTE", "adaptive_gates", "apply_adaptive", "bench_plans", "block_units",
           "checkpoints", "run_adaptive", "state_key"]
