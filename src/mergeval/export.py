"""Export stored results as JSON or CSV (scores per model and task, or every item)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from mergeval.harness import aggregate_items
from mergeval.store import Store


def export_results(store_path: str | Path, *, format: str = "json", items: bool = False) -> str:
    with Store(store_path, create=False) as store:
        rows = []
        for model in store.models():
            for check in store.checks():
                stored = store.items(model.fingerprint, check.hash, with_data=items)
                if not stored:
                    continue
                base = {"model": model.name, "fingerprint": model.fingerprint, "check_kind": check.kind,
                        "task": check.name, "check": check.hash,
                        "num_fewshot": check.config.get("num_fewshot"), "dtype": check.config.get("dtype")}
                if items:
                    for it in sorted(stored, key=lambda i: (len(i.item_id), i.item_id)):
                        rows.append({**base, "item_id": it.item_id, **{f"metric:{k}": v for k, v in it.metrics.items()},
                                     **({"data": json.dumps(it.data, ensure_ascii=False)} if format == "csv"
                                        else {"data": it.data})})
                else:
                    score = aggregate_items(stored, check.config, "", None) if check.kind == "lm-eval" else None
                    metrics = score.all_metrics if score else {}
                    rows.append({**base, "n": len(stored), **{f"metric:{k}": v for k, v in metrics.items()}})
    if format == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n"
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
