"""Machinery the three text checks share: identity hashes, bundled data, JSONL reading, the resumable loop.

A text check stores one item per document (perplexity), per prompt (BLEU) or per prompt pair
(consistency) under (model fingerprint, check hash, item id). `run_missing_items` is the one loop that
computes only the items the store does not hold yet and writes each batch as soon as it is done, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mergeval.errors import UserError
from mergeval.harness import TaskProgress
from mergeval.models import ModelRef
from mergeval.store import ItemRow, Store

DATA_DIR = Path(__file__).parent / "data"
# Bump when the way a text check computes its per-item numbers changes: old results then stop matching.
TEXTMETRICS_VERSION = 1
T = TypeVar("T")


def stable_hash(obj: Any) -> str:
    """A short, order-independent hash of a JSON-able value (check identities)."""
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()[:24]


def bundled_file(name: str) -> Path:
    return DATA_DIR / name


def model_fingerprint(model: ModelRef | str) -> str:
    """Summaries accept a resolved ModelRef or a bare fingerprint (what compare has at hand)."""
    return model if isinstance(model, str) else model.fingerprint


def with_dtype(ref: ModelRef, dtype: str) -> ModelRef:
    """The reference to load: the check's dtype wins, because dtype is part of the check's identity."""
    return ref if ref.dtype == dtype else dataclasses.replace(ref, dtype=dtype)


def require_local(ref: ModelRef, check: str) -> None:
    if ref.path is None and ref.model_object is None:
        raise UserError(
            f"{ref.name} is an endpoint; the {check} check needs local weights. Pass a model folder."
        )


def check_dtype(dtype: str) -> None:
    """Fail early, with the list of choices, on a dtype the model loaders would reject later."""
    from mergeval.models import torch_dtype

    torch_dtype(dtype)


def positive_int(value: int, option: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{option} must be a whole number of at least 1, got {value!r}.")
    return value


def read_jsonl(path: Path, *, required: Sequence[str], what: str) -> list[tuple[int, dict[str, Any]]]:
    """The objects of a JSONL file with their 1-based line numbers; blank lines are skipped.

    Every problem is reported with the file, the line and the fix, because these files are written by hand.
    """
    if not path.is_file():
        raise UserError(f"{what} file {path} does not exist. Check the path.")
    rows: list[tuple[int, dict[str, Any]]] = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(
                    f"{path}:{line_no} is not valid JSON ({exc.msg}). Each line must be one JSON object."
                ) from exc
            if not isinstance(obj, dict):
                raise UserError(
                    f"{path}:{line_no} is a JSON {type(obj).__name__}, not an object like {{...}}."
                )
            missing = [key for key in required if not isinstance(obj.get(key), str) or not obj[key].strip()]
            if missing:
                raise UserError(
                    f"{path}:{line_no} has no non-empty text field {', '.join(repr(m) for m in missing)}. "
                    f"Each line of a {what} file needs: {', '.join(required)}."
                )
            rows.append((line_no, obj))
    if not rows:
        raise UserError(f"{what} file {path} is empty. Add one JSON object per line.")
    return rows


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


def run_missing_items(
    store: Store,
    ref: ModelRef,
    *,
    kind: str,
    name: str,
    check_hash: str,
    check_config: dict[str, Any],
    item_ids: Sequence[str],
    load: Callable[[dict[str, Any]], T],
    compute: Callable[[list[str], T], Iterator[list[ItemRow]]],
    provenance: dict[str, Any],
    progress: TaskProgress | None = None,
) -> int:
    """Compute and store the items of `item_ids` the store does not hold for this model; return how many.

    `load(provenance)` loads the model (only when something is missing, so a complete check never loads
    it), checks it can run this check and may add facts to `provenance`; it runs before anything is
    written, so a model that cannot run the check leaves the store untouched. `compute(missing, loaded)`
    yields batches of finished items, each stored in one transaction as soon as it arrives.
    """
    stored = store.item_ids(ref.fingerprint, check_hash)
    missing = [item_id for item_id in item_ids if item_id not in stored]
    if not missing:
        return 0
    progress = progress or TaskProgress()
    prov = {"check": kind, "dtype": check_config.get("dtype"), "batch_size": ref.batch_size, **provenance}
    loaded = load(prov)
    store.upsert_model(
        ref.fingerprint, name=ref.name, reference=ref.reference, kind=ref.kind, metadata=ref.describe()
    )
    store.upsert_check(check_hash, kind=kind, name=name, config=check_config)
    run_id = store.start_run(ref.fingerprint, check_hash, prov)
    progress.start(ref.name, name, len(missing))
    started = time.time()
    status = "failed"
    try:
        for batch in compute(missing, loaded):
            store.add_items(ref.fingerprint, check_hash, run_id, batch)
            progress.advance(len(batch))
        status = "done"
    finally:
        prov["seconds"] = round(time.time() - started, 3)
        store.finish_run(run_id, status=status, provenance=prov)
        progress.done()
    return len(missing)


def last_provenance(store: Store, fingerprint: str, check_hash: str) -> dict[str, Any]:
    """The provenance of the latest finished run of this (model, check), or {}."""
    runs = [r for r in store.runs(fingerprint, check_hash) if r.status == "done"]
    return dict(runs[-1].provenance) if runs else {}
