"""HumanEval for mergeval: problems, completions from a model, a sandbox to run them, pass@k.

The prompt is the raw HumanEval prompt (function signature + docstring) and the model continues it,
base-model style; see `generate.py` and docs/humaneval.md. Nothing here knows about plans, the results store
or reports: `mergeval.checks.humaneval` connects these pieces to them.
"""

from mergeval.engines.code.evaluate import (
    HumanEvalResult,
    Scored,
    TaskOutcome,
    evaluate_samples,
    pass_at_k,
    pass_at_ks,
    run_samples,
    score_stream,
)
from mergeval.engines.code.generate import Generation, generate_completions, iter_completions
from mergeval.engines.code.problems import STOP_SEQUENCES, load_problems, problem_set_hash, truncate_at_stop
from mergeval.engines.code.samples import (
    Sample,
    read_samples_jsonl,
    samples_from_completions,
    samples_hash,
    write_samples_jsonl,
)
from mergeval.engines.code.sandbox import (
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
    "Generation",
    "HumanEvalResult",
    "Sample",
    "SandboxLimits",
    "Scored",
    "TaskOutcome",
    "build_program",
    "evaluate_samples",
    "generate_completions",
    "iter_completions",
    "load_problems",
    "pass_at_k",
    "pass_at_ks",
    "problem_set_hash",
    "read_samples_jsonl",
    "run_program",
    "run_sample",
    "run_samples",
    "samples_from_completions",
    "samples_hash",
    "sandbox_isolation",
    "score_stream",
    "truncate_at_stop",
    "write_samples_jsonl",
]
