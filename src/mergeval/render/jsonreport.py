"""The comparison report as JSON (schema mergeval.report/1, docs/report.schema.json): strictly valid JSON,
NaN and infinities as null, keys in schema order."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mergeval.report import Report


def render_json(report: Report | Mapping[str, Any], *, indent: int | None = 2) -> str:
    """The report as a JSON document."""
    return Report.from_data(report).to_json(indent=indent)


def write_json(report: Report | Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_json(report), encoding="utf-8")
    return path


def read_json(path: str | Path) -> Report:
    """A report written by `write_json` (e.g. to render it again as HTML or Markdown)."""
    return Report.read(path)


__all__ = ["read_json", "render_json", "write_json"]
