"""Export stored results as JSON or CSV (scores per model and task, or every item)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mergeval.engines.lmeval.harness import CHECK_KIND, aggregate_items
from mergeval.errors import UserError
from mergeval.store import CheckRow, ItemRow, Store


def check_output_file(out: str | Path) -> Path:
    """`out` when a file can be written there; else a UserError saying why (checked before any work)."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name, e.g. --out {out / 'results.json'}.")
    parent = out.parent
    if not parent.is_dir():
        raise UserError(
            f"The folder of --out {out} does not exist{' (it is a file)' if parent.exists() else ''}; "
            f"create it first (mkdir -p {parent}) or choose another path."
        )
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UserError(f"Cannot write {out}: permission denied. Choose a path you can write to.")
    return out


def write_output(text: str, out: str | Path) -> Path:
    """Write an export to `out` (checked first); OS errors become one clear message."""
    out = check_output_file(out)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"Cannot write {out} ({exc.strerror}). Choose another --out.") from exc
    return out


def _item_rows(base: dict[str, Any], stored: list[ItemRow], as_csv: bool) -> list[dict[str, Any]]:
    """One row per stored item, in item order (data as a JSON string in CSV)."""
    return [{**base, "item_id": it.item_id, **{f"metric:{k}": v for k, v in it.metrics.items()},
             "data": json.dumps(it.data, ensure_ascii=False) if as_csv else it.data}
            for it in sorted(stored, key=lambda i: (len(i.item_id), i.item_id))]


def _score_row(base: dict[str, Any], check: CheckRow, stored: list[ItemRow]) -> dict[str, Any]:
    """One row per (model, check): lm-eval tasks with every metric aggregated as lm-eval does."""
    score = aggregate_items(stored, check.config, "", None) if check.kind == CHECK_KIND else None
    metrics = score.all_metrics if score else {}
    return {**base, "n": len(stored), **{f"metric:{k}": v for k, v in metrics.items()}}


def _csv(rows: list[dict[str, Any]]) -> str:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _wanted(what: str, option: str, asked: Sequence[str] | None, known: list[str],
            matches: Callable[[str], list[str]]) -> set[str] | None:
    """The keys `asked` selects (None: all); an unknown name fails with the valid names."""
    if not asked:
        return None
    wanted: set[str] = set()
    for name in asked:
        found = matches(name)
        if not found:
            valid = ", ".join(sorted(set(known))) or "none"
            raise UserError(f"No {what} {name!r} in the store; {option} takes one of: {valid}.")
        wanted.update(found)
    return wanted


def export_results(store_path: str | Path, *, format: str = "json", items: bool = False,
                   models: Sequence[str] | None = None, tasks: Sequence[str] | None = None) -> str:
    """The stored results as JSON or CSV text. The store is opened read-only (also in a read-only folder).
    `models` (name, reference or fingerprint prefix) and `tasks` (task or check name) keep only those."""
    rows: list[dict[str, Any]] = []
    with Store(store_path, readonly=True) as store:
        all_models, all_checks = store.models(), store.checks()
        model_keys = _wanted("model", "--model", models, [m.name for m in all_models],
                             lambda key: [m.fingerprint for m in store.find_models(key)])
        task_keys = _wanted("task", "--task", tasks, [c.name for c in all_checks],
                            lambda key: [c.hash for c in all_checks if c.name == key])
        for model in all_models:
            if model_keys is not None and model.fingerprint not in model_keys:
                continue
            for check in all_checks:
                if task_keys is not None and check.hash not in task_keys:
                    continue
                stored = store.items(model.fingerprint, check.hash, with_data=items)
                if not stored:
                    continue
                base = {"model": model.name, "fingerprint": model.fingerprint, "check_kind": check.kind,
                        "task": check.name, "check": check.hash,
                        "num_fewshot": check.config.get("num_fewshot"), "dtype": check.config.get("dtype")}
                rows += _item_rows(base, stored, format == "csv") if items else [_score_row(base, check, stored)]
    if format == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n"
    return _csv(rows)
