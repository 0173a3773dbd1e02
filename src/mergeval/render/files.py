"""Writing a report's files: report.md, report.json and report.html in one folder."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mergeval.errors import UserError
from mergeval.render.html import render_html
from mergeval.render.jsonreport import render_json
from mergeval.render.markdown import render_markdown
from mergeval.report import Report


def write_reports(report: Report | Mapping[str, Any], out_dir: str | os.PathLike, *,
                  subjects: bool = False) -> dict[str, Path]:
    """Write report.md, report.json and report.html to `out_dir`; returns {"md", "json", "html"} -> path."""
    report = Report.from_data(report)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"Cannot create the report folder {out}: {exc}. Pass --out DIR.") from exc
    written = {"md": out / "report.md", "json": out / "report.json", "html": out / "report.html"}
    written["md"].write_text(render_markdown(report, subjects=subjects), encoding="utf-8")
    written["json"].write_text(render_json(report), encoding="utf-8")
    written["html"].write_text(render_html(report), encoding="utf-8")
    return written


__all__ = ["write_reports"]
