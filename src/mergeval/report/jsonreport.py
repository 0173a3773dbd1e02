"""The comparison report as JSON (schema mergeval.report/1): the report dict itself, strictly valid JSON.

NaN and infinities (which `json.dumps` would write as the non-standard `NaN` / `Infinity`) become null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def render_json(report: Mapping[str, Any], *, indent: int | None = 2) -> str:
    """The report as a JSON document (keys in schema order, non-finite numbers as null)."""
    return json.dumps(_finite(report), indent=indent, ensure_ascii=False, allow_nan=False, default=str) + "\n"


def write_json(report: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_json(report), encoding="utf-8")
    return path


def read_json(path: str | Path) -> dict[str, Any]:
    """A report written by `write_json` (e.g. to re-render it as HTML or Markdown)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


__all__ = ["read_json", "render_json", "write_json"]
