"""The merge lab: run mergekit merges with provenance, sweep merge settings, select the winner honestly.

    merge(config, out, store=...) -> MergeResult                 mergekit to disk + provenance in the store
    merge_in_memory(config) -> MergeResult                       mergekit into a model object (no files)
    run_sweep(spec, store=...) -> SweepResult                    grid of merges, evaluated (any plan check),
                                                                 ranked, reported
    load_recipe(config) -> MergeRecipe                           a config with fingerprinted parents + key
    merge_provenance(store, fingerprint) -> MergeProvenance      how a stored model was made

See docs/merge-lab.md.
"""

from mergeval.merge.grid import Candidate, expand_candidates
from mergeval.merge.inmemory import can_merge_in_memory, in_memory_fingerprint, merge_in_memory
from mergeval.merge.provenance import MergeProvenance, merge_provenance
from mergeval.merge.ranking import Comparison, ModelScores, SweepResult
from mergeval.merge.recipe import MergeRecipe, load_recipe, mergekit_version
from mergeval.merge.report import render_sweep_report, write_sweep_report
from mergeval.merge.run import MergeResult, merge
from mergeval.merge.selection import SplitPlan, in_selection, pareto_front
from mergeval.merge.spec import SweepSpec, load_sweep
from mergeval.merge.sweep import run_sweep

__all__ = [
    "Candidate",
    "Comparison",
    "MergeProvenance",
    "MergeRecipe",
    "MergeResult",
    "ModelScores",
    "SplitPlan",
    "SweepResult",
    "SweepSpec",
    "can_merge_in_memory",
    "expand_candidates",
    "in_memory_fingerprint",
    "in_selection",
    "load_recipe",
    "load_sweep",
    "merge",
    "merge_in_memory",
    "merge_provenance",
    "mergekit_version",
    "pareto_front",
    "render_sweep_report",
    "run_sweep",
    "write_sweep_report",
]
