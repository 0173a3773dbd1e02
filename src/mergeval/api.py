"""The library entry points (the CLI is a view over these): what a notebook user needs in five lines.

    import mergeval
    report = mergeval.evaluate(["./merged", {"parent": "./a"}], checks=[{"type": "perplexity"}])
    report = mergeval.run("mergeval.yaml")          # evaluate what the plan needs, then compare
    report = mergeval.compare("mergeval.yaml")      # compare from the store only (nothing is evaluated)
    table = mergeval.evaluate(["./merged"], suite="smoke")   # an lm-eval suite's table (EvalResult)

`mergeval/__init__.py` re-exports these lazily: `import mergeval` loads neither torch nor scipy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from mergeval.analysis.engine import compare_plan, run_plan
from mergeval.core.check import CheckConfig
from mergeval.errors import UserError
from mergeval.evaluation import evaluate as evaluate_suite
from mergeval.evaluation import read_results
from mergeval.models import ModelRef
from mergeval.plan import Plan, load_plan, parse_plan
from mergeval.store import DEFAULT_STORE, Store

ModelLike = str | os.PathLike | ModelRef
CheckLike = Mapping[str, Any] | CheckConfig | str

__all__ = ["compare", "evaluate", "plan_for", "read_results", "run"]


def evaluate(
    models: ModelLike | Mapping[str, Any] | Sequence[ModelLike | Mapping[str, Any]],
    *,
    checks: Sequence[CheckLike] | None = None,
    suite: str | Any | None = None,
    store: str | os.PathLike | Store = DEFAULT_STORE,
    progress: Any = None,
    plugins: Sequence[str | os.PathLike] = (),
    **options: Any,
) -> Any:
    """Evaluate models, computing only what the store does not already hold.

    With `checks` (plan check entries: dicts such as `{"type": "bleu", "max_new_tokens": 32}`, check Config
    objects, or type names): runs them as a plan of these models would and returns the comparison report.
    A model is a path, hub id or ModelRef (a candidate), or a plan model entry (`{"parent": "./a"}`). Options
    are the plan's settings (dtype, device, batch_size, backend, data_dir, alpha, ...); `plugins` are Python
    files that register check types (a plan's `plugins:`).

    Without `checks`: the lm-eval suite's table (`suite`, default smoke; options as `mergeval eval`:
    tasks, limit, data_dir, include_paths, backend, dtype, batch_size, device, ...) as an EvalResult."""
    if checks is None:
        return evaluate_suite(models, suite=suite or "smoke", store=store, progress=progress, **options)
    if suite is not None:
        raise UserError("Pass either `suite=` (an lm-eval suite's table) or `checks=` (check entries), not both; "
                        "a suite is also a check entry: {'type': 'suite', 'suite': 'smoke'}.")
    if isinstance(store, Store):
        store = store.path
    plan = plan_for(models, checks, settings=options, store=store, plugins=plugins)
    return run_plan(plan, store=store, progress=progress)


def run(plan: str | os.PathLike | Plan, *, store: str | os.PathLike | None = None, progress: Any = None,
        say: Callable[[str], None] | None = None, checks: Sequence[str] | None = None, executor: Any = None,
        adaptive: bool | None = None) -> Any:
    """Evaluate what the plan needs that the store lacks, then compare: the Report (`mergeval run`).
    `checks`: only evaluate these check types or labels (the comparison still uses everything stored).
    `executor`: "local" | "ray" or an executor object (default: the plan's `settings.executor`).
    `adaptive`: stop lm-eval benchmarks once decided (True), evaluate every item (False), or as the plan's
    `settings.adaptive` says (None)."""
    return run_plan(_plan(plan, check_paths=True), store=store, progress=progress, say=say,
                    checks=list(checks or []) or None, executor=executor, adaptive=adaptive)


def compare(plan: str | os.PathLike | Plan, *, store: str | os.PathLike | None = None) -> Any:
    """The Report from what the store holds; nothing is evaluated (`mergeval compare`)."""
    return compare_plan(_plan(plan, check_paths=False), store=store)


def _plan(plan: str | os.PathLike | Plan, *, check_paths: bool) -> Plan:
    return plan if isinstance(plan, Plan) else load_plan(plan, check_paths=check_paths)


# -- a plan from Python values ------------------------------------------------------------------------------


def _model_entry(model: ModelLike | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(model, Mapping):
        return dict(model)
    if isinstance(model, ModelRef):
        return {"name": model.name, "path": model.reference, "role": "candidate"}
    return {"candidate": str(model)}


def _check_entry(check: CheckLike) -> Any:
    if isinstance(check, CheckConfig):
        return {"type": check.type, **check.model_dump(mode="json", exclude_unset=True)}
    if isinstance(check, Mapping):
        return dict(check)
    return str(check)


def plan_for(
    models: ModelLike | Mapping[str, Any] | Sequence[ModelLike | Mapping[str, Any]],
    checks: Sequence[CheckLike],
    *,
    settings: Mapping[str, Any] | None = None,
    store: str | os.PathLike = DEFAULT_STORE,
    base_dir: str | os.PathLike | None = None,
    plugins: Sequence[str | os.PathLike] = (),
) -> Plan:
    """A validated plan of these models and check entries (relative paths start at `base_dir`, default the
    working directory), as if read from a plan file there."""
    if isinstance(models, (str, os.PathLike, ModelRef, Mapping)):
        models = [models]
    data = {
        "plugins": [str(p) for p in plugins],
        "models": [_model_entry(m) for m in models],
        "checks": [_check_entry(c) for c in checks],
        "settings": dict(settings or {}),
        "store": str(store),
    }
    source = Path(base_dir or Path.cwd()) / "(python)"
    return parse_plan(yaml.safe_dump(data, sort_keys=False), source=source, check_paths=True)
