"""Comparing merged models with their parents from the store's per-item results.

Public API (see docs/plan-file.md and docs/statistics.md):

    run_plan(plan, store=None) -> report dict       evaluate what the store lacks, then compare
    compare_plan(plan, store=None) -> report dict   compare from the store only (report["missing"] lists gaps)
    write_reports(report, out_dir)                   report.md, report.json, report.html
    exit_code(report) -> int                         0 pass, 1 a gate failed, 3 a gate not evaluated
    register_check(CheckType(...))                   add a plan check type (mtbench, humaneval, ...)

plus the paired statistics of `mergeval.compare.stats` and the retention / regression rules of
`mergeval.compare.retention`.
"""

from mergeval.compare.stats import (
    BootstrapResult,
    MeanCI,
    PairedComparison,
    PairedScores,
    compare_many,
    holm,
    mcnemar_exact,
    mean_ci_bootstrap,
    minimum_detectable_difference,
    pair_scores,
    paired_bootstrap,
    paired_comparison,
    paired_ttest,
    stderr,
)

# The engine imports the plan, the store and the checks; stats users should not pay for that at import.
_LAZY = {
    "run_plan": "mergeval.compare.engine",
    "compare_plan": "mergeval.compare.engine",
    "build_report": "mergeval.compare.engine",
    "write_reports": "mergeval.compare.engine",
    "exit_code": "mergeval.compare.engine",
    "resolve_models": "mergeval.compare.engine",
    "Collected": "mergeval.compare.collected",
    "evaluate_gates": "mergeval.compare.gates",
    "verdict": "mergeval.compare.gates",
    "retention_row": "mergeval.compare.retention",
    "regression_row": "mergeval.compare.retention",
    "strengths_summary": "mergeval.compare.retention",
    "compare_pair": "mergeval.compare.paired",
    "mean_of_scores": "mergeval.compare.paired",
    "BenchmarkInfo": "mergeval.compare.registry",
    "CheckContext": "mergeval.compare.registry",
    "CheckData": "mergeval.compare.registry",
    "CheckType": "mergeval.compare.registry",
    "Missing": "mergeval.compare.registry",
    "PlanModel": "mergeval.compare.registry",
    "Provides": "mergeval.compare.registry",
    "ScoreData": "mergeval.compare.registry",
    "check_types": "mergeval.compare.registry",
    "register_check": "mergeval.compare.registry",
    "leaderboard_band": "mergeval.compare.bands",
    "mtbench_band": "mergeval.compare.bands",
    "print_report": "mergeval.compare.console",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mergeval.compare' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "BenchmarkInfo",
    "BootstrapResult",
    "CheckContext",
    "CheckData",
    "CheckType",
    "Collected",
    "MeanCI",
    "Missing",
    "PairedComparison",
    "PairedScores",
    "PlanModel",
    "Provides",
    "ScoreData",
    "build_report",
    "check_types",
    "compare_many",
    "compare_pair",
    "compare_plan",
    "evaluate_gates",
    "exit_code",
    "holm",
    "leaderboard_band",
    "mcnemar_exact",
    "mean_ci_bootstrap",
    "mean_of_scores",
    "minimum_detectable_difference",
    "mtbench_band",
    "pair_scores",
    "paired_bootstrap",
    "paired_comparison",
    "paired_ttest",
    "print_report",
    "register_check",
    "regression_row",
    "resolve_models",
    "retention_row",
    "run_plan",
    "stderr",
    "strengths_summary",
    "verdict",
    "write_reports",
]
