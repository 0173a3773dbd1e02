"""HumanEval for mergeval: problems, completions from a model, a sandbox to run them, pass@k.

The prompt is the raw HumanEval prompt (function signature + docstring) and the model continues it,
base-model style; see `generate.py` and docs/humaneval.md.
"""

from mergeval.code.evaluate import HumanEvalResult, TaskOutcome, evaluate_samples, pass_at_k, run_samples
from mergeval.code.generate import generate_completions
from mergeval.code.problems import STOP_SEQUENCES, load_problems, truncate_at_stop
from mergeval.code.samples import Sample, read_samples_jsonl, samples_from_completions, write_samples_jsonl
from mergeval.code.sandbox import (
    ExecResult,
    SandboxLimits,
    build_program,
    run_program,
    run_sample,
    sandbox_isolation,
)

__all__ = [
    "STOP_SEQUENCES",
    "ExecResult",
    "HumanEvalResult",
    "Sample",
    "SandboxLimits",
    "TaskOutcome",
    "build_program",
    "evaluate_samples",
    "generate_completions",
    "load_problems",
    "pass_at_k",
    "read_samples_jsonl",
    "run_program",
    "run_sample",
    "run_samples",
    "samples_from_completions",
    "sandbox_isolation",
    "truncate_at_stop",
    "write_samples_jsonl",
]
