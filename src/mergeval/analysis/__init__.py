"""Comparing merged models with their parents from the store's per-item results.

Public API (see docs/plan-file.md and docs/statistics.md):

    run_plan(plan, store=None) -> Report            evaluate what the store lacks, then compare
    compare_plan(plan, store=None) -> Report        compare from the store only (report.missing lists gaps)
    build_report(collected) -> Report               the comparison of what the checks read back
    exit_code(report) -> int                         0 pass, 1 a gate failed, 3 a gate not evaluated

    engine.py      plan -> store -> Report (resolve models, run and collect the checks)
    collected.py   the checks' results merged, each benchmark with its MetricSpec (what gates read)
    build.py       Collected -> Report: scores and intervals, paired comparisons, retention, regressions,
                   gates (evaluated by mergeval.plan.gates), bands, provenance
    paired.py, retention.py, stats.py, bands.py, sequential.py: the statistics and rules themselves

`write_reports` and `print_report` are the renderers' (mergeval.render), reachable here for code written
before the split. Nothing is imported until used: the engine imports the plan, the store and the checks.
"""

import importlib

_LAZY = {
    "BootstrapResult": "mergeval.analysis.stats",
    "MeanCI": "mergeval.analysis.stats",
    "PairedComparison": "mergeval.analysis.stats",
    "PairedScores": "mergeval.analysis.stats",
    "compare_many": "mergeval.analysis.stats",
    "holm": "mergeval.analysis.stats",
    "mcnemar_exact": "mergeval.analysis.stats",
    "mean_ci_bootstrap": "mergeval.analysis.stats",
    "minimum_detectable_difference": "mergeval.analysis.stats",
    "pair_scores": "mergeval.analysis.stats",
    "paired_bootstrap": "mergeval.analysis.stats",
    "paired_comparison": "mergeval.analysis.stats",
    "paired_ttest": "mergeval.analysis.stats",
    "stderr": "mergeval.analysis.stats",
    "run_plan": "mergeval.analysis.engine",
    "compare_plan": "mergeval.analysis.engine",
    "build_report": "mergeval.analysis.build",
    "write_reports": "mergeval.render.files",
    "exit_code": "mergeval.analysis.engine",
    "resolve_models": "mergeval.analysis.engine",
    "Collected": "mergeval.analysis.collected",
    "evaluate_gates": "mergeval.plan.gates",
    "verdict": "mergeval.plan.gates",
    "retention_row": "mergeval.analysis.retention",
    "regression_row": "mergeval.analysis.retention",
    "strengths_summary": "mergeval.analysis.retention",
    "compare_pair": "mergeval.analysis.paired",
    "mean_of_scores": "mergeval.analysis.paired",
    "Report": "mergeval.report",
    "CheckContext": "mergeval.core.context",
    "CheckData": "mergeval.core.results",
    "MetricSpec": "mergeval.core.check",
    "Missing": "mergeval.core.results",
    "PlanModel": "mergeval.core.context",
    "ScoreData": "mergeval.core.results",
    "check_types": "mergeval.core.registry",
    "leaderboard_band": "mergeval.analysis.bands",
    "mtbench_band": "mergeval.analysis.bands",
    "print_report": "mergeval.render.console",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mergeval.analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "BootstrapResult",
    "CheckContext",
    "CheckData",
    "Collected",
    "MeanCI",
    "MetricSpec",
    "Missing",
    "PairedComparison",
    "PairedScores",
    "PlanModel",
    "Report",
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
    "regression_row",
    "resolve_models",
    "retention_row",
    "run_plan",
    "stderr",
    "strengths_summary",
    "verdict",
    "write_reports",
]
