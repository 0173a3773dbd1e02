"""The HTML report's per-item view: the context its template partial (templates/itemview.html.j2) reads.

    payload = item_diff_payload(store, report)        # mergeval.analysis.itemdiff: data only, from the store
    context = itemview_context(payload)               # what the partial renders (None: nothing to show)
    html = render_itemview(payload)                   # the partial alone (tests, or a page of its own)

The page's Content-Security-Policy must allow the partial's script by its hash: `SCRIPT_HASH` (add
`'sha256-<SCRIPT_HASH>'` to `script-src`). The items are a JSON data block (never executed); the script renders
a benchmark's items only when its section is opened, 40 at a time, and writes model text through textContent.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

_TEMPLATES = Path(__file__).parent / "templates"
SCRIPT = (_TEMPLATES / "itemview.js.j2").read_text(encoding="utf-8")  # plain JavaScript (no template syntax)
SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode()


def _json_for_script(value: Any) -> str:
    """JSON that cannot end its <script> block or open a comment in it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def itemview_context(payload: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the partial renders: per benchmark its counts (drawn by the template) and the items as a JSON data
    block with the script that draws them. None when no benchmark has paired items."""
    if not payload or not payload.get("benchmarks"):
        return None
    benchmarks = []
    for index, bench in enumerate(payload["benchmarks"]):
        candidates = [
            {"name": name, "truncated": block.get("truncated", False), "n_items": len(block.get("items", [])),
             "parents": [{"name": p, **counts} for p, counts in block.get("counts", {}).items()]}
            for name, block in bench["candidates"].items()
        ]
        benchmarks.append({"index": index, "display": bench.get("display") or bench["name"],
                           "candidates": candidates})
    note = (f"At most {_count(payload.get('max_items'))} items per candidate and benchmark are kept, texts cut at "
            f"{_count(payload.get('max_chars'))} characters; the counts are complete.")
    return {"benchmarks": benchmarks, "note": note, "data": Markup(_json_for_script(payload)),
            "script": Markup(SCRIPT), "script_hash": SCRIPT_HASH}


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_itemview(payload: Mapping[str, Any] | None) -> str:
    """The partial alone, as HTML ("" when there is nothing to show)."""
    return _environment().get_template("itemview.html.j2").render(itemview=itemview_context(payload))


__all__ = ["SCRIPT", "SCRIPT_HASH", "itemview_context", "render_itemview"]
