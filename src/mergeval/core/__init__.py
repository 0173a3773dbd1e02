"""mergeval's core: the check protocol, the registry, identity, progress and the one resumable runner.

Nothing here knows about lm-eval, chat, code, plans' YAML or reports: engines and checks build on it.
"""

from mergeval.core.check import Band, Batch, Check, CheckConfig, MetricSpec, Task
from mergeval.core.context import CheckContext, PlanModel, RunEnv
from mergeval.core.identity import callable_identity, canonical, canonical_json, content_hash
from mergeval.core.progress import NullProgress, Progress
from mergeval.core.registry import check, check_types, get_check, known_metrics, load_plugin_file
from mergeval.core.runner import (
    Entry,
    Executor,
    LocalExecutor,
    Runner,
    RunSummary,
    WorkUnit,
    plan_units,
    run_entries,
)

__all__ = [
    "Band",
    "Batch",
    "Check",
    "CheckConfig",
    "CheckContext",
    "Entry",
    "Executor",
    "LocalExecutor",
    "MetricSpec",
    "NullProgress",
    "PlanModel",
    "Progress",
    "RunEnv",
    "RunSummary",
    "Runner",
    "Task",
    "WorkUnit",
    "callable_identity",
    "canonical",
    "canonical_json",
    "check",
    "check_types",
    "content_hash",
    "get_check",
    "known_metrics",
    "load_plugin_file",
    "plan_units",
    "run_entries",
]
