"""What the text engines share: the bundled data, reading hand-written JSONL files, model references.

Engines know nothing of plans, stores or reports: the check types (`mergeval.checks.perplexity`, `bleu`,
`consistency`, `sanity`) turn their results into stored items.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mergeval.errors import UserError
from mergeval.models import ModelRef

DATA_DIR = Path(__file__).parent / "data"
# Bump when the way a text check computes its per-item numbers changes: old results then stop matching.
TEXTMETRICS_VERSION = 1


def bundled_file(name: str) -> Path:
    return DATA_DIR / name


def with_dtype(ref: ModelRef, dtype: str | None) -> ModelRef:
    """The reference to load: a check's own dtype (when it has one) wins, because dtype is part of the check's
    identity."""
    return ref if dtype is None or ref.dtype == dtype else dataclasses.replace(ref, dtype=dtype)


def require_local(ref: ModelRef, check: str) -> None:
    if ref.path is None and ref.model_object is None:
        raise UserError(
            f"{ref.name} is an endpoint; the {check} check needs local weights. Pass a model folder."
        )


def read_jsonl(path: Path, *, required: Sequence[str], what: str) -> list[tuple[int, dict[str, Any]]]:
    """The objects of a JSONL file with their 1-based line numbers; blank lines are skipped.

    Every problem is reported with the file, the line and the fix, because these files are written by hand.
    """
    if not path.is_file():
        raise UserError(f"{what} file {path} does not exist. Check the path.")
    rows: list[tuple[int, dict[str, Any]]] = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                rows.append((line_no, _json_object(path, line_no, line, required, what)))
    if not rows:
        raise UserError(f"{what} file {path} is empty. Add one JSON object per line.")
    return rows


def _json_object(path: Path, line_no: int, line: str, required: Sequence[str], what: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path}:{line_no} is not valid JSON ({exc.msg}). Each line must be one JSON object."
        ) from exc
    if not isinstance(obj, dict):
        raise UserError(f"{path}:{line_no} is a JSON {type(obj).__name__}, not an object like {{...}}.")
    missing = [key for key in required if not isinstance(obj.get(key), str) or not obj[key].strip()]
    if missing:
        raise UserError(
            f"{path}:{line_no} has no non-empty text field {', '.join(repr(m) for m in missing)}. "
            f"Each line of a {what} file needs: {', '.join(required)}."
        )
    return obj


def item_id_for(obj: dict[str, Any], line_no: int) -> str:
    """The item id of a JSONL row: its `id` field when present, else its line number."""
    value = obj.get("id")
    return str(value) if value is not None and str(value).strip() else str(line_no)


def unique_ids(ids: Sequence[str], path: Path) -> None:
    seen: set[str] = set()
    for item_id in ids:
        if item_id in seen:
            raise UserError(f"{path} has the id {item_id!r} more than once. Give every line a unique id.")
        seen.add(item_id)
