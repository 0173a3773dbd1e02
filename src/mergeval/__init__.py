"""mergeval: is the merged checkpoint better than its parents?

Library entry points (the CLI is a view over these; see mergeval.api):
    mergeval.evaluate(models, checks=[...]) -> Report         check entries, as in a plan's `checks:`
    mergeval.evaluate(models, suite="smoke") -> EvalResult     an lm-eval suite's table
    mergeval.run("mergeval.yaml") -> Report                    evaluate what the plan needs, then compare
    mergeval.compare(plan) -> Report                           from the store only
    mergeval.read_results(store, suite=...) -> EvalResult      no model is loaded
    mergeval.resolve(reference) -> ModelRef                    fingerprinted model reference
    @mergeval.check("name") class MyCheck(mergeval.Check)      a check type (docs/extending.md)

Names are imported on first use, so `import mergeval` loads neither torch, scipy nor lm-eval.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "evaluate": "mergeval.api",
    "run": "mergeval.api",
    "compare": "mergeval.api",
    "read_results": "mergeval.api",
    "plan_for": "mergeval.api",
    "EvalResult": "mergeval.evaluation",
    "ModelRef": "mergeval.models",
    "resolve": "mergeval.models",
    "Store": "mergeval.store",
    "UserError": "mergeval.errors",
    "Plan": "mergeval.plan",
    "check": "mergeval.core",
    "Check": "mergeval.core",
    "CheckConfig": "mergeval.core",
    "MetricSpec": "mergeval.core",
    "Band": "mergeval.core",
    "Task": "mergeval.core",
    "Batch": "mergeval.core",
}

__all__ = [
    "Band", "Batch", "Check", "CheckConfig", "EvalResult", "MetricSpec", "ModelRef", "Plan", "Store", "Task",
    "UserError", "__version__", "check", "compare", "evaluate", "plan_for", "read_results", "resolve", "run",
]  # fmt: skip

if TYPE_CHECKING:
    from mergeval.api import compare, evaluate, plan_for, read_results, run
    from mergeval.core import Band, Batch, Check, CheckConfig, MetricSpec, Task, check
    from mergeval.errors import UserError
    from mergeval.evaluation import EvalResult
    from mergeval.models import ModelRef, resolve
    from mergeval.plan import Plan
    from mergeval.store import Store


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mergeval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
