"""Writing a report's files: report.md, report.json and report.html in one folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mergeval.analysis.itemdiff import item_diff_payload
from mergeval.errors import UserError
from mergeval.render.html import render_html
from mergeval.render.jsonreport import render_json
from mergeval.render.markdown import render_markdown
from mergeval.report import Report

log = logging.getLogger("mergeval")


def _items(store: str | os.PathLike | None, report: Report) -> dict[str, Any] | None:
    """The per-item view's data from the store (None without a store). The view is an addition to the page:
    when it cannot be built, the page is written without it and the reason is logged."""
    if store is None or not Path(store).is_file():
        return None
    try:
        return item_diff_payload(store, report)
    except Exception as exc:  # noqa: BLE001 - the scores must still be written
        log.warning("The HTML report has no per-item view: reading the items from %s failed (%s: %s).",
                    store, type(exc).__name__, exc)
        return None


def write_reports(report: Report | Mapping[str, Any], out_dir: str | os.PathLike, *,
                  subjects: bool = False, store: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write report.md, report.json and report.html to `out_dir`; returns {"md", "json", "html"} -> path.
    With `store` (the results store the report was built from), report.html gets the per-item view."""
    report = Report.from_data(report)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"Cannot create the report folder {out}: {exc}. Pass --out DIR.") from exc
    written = {"md": out / "report.md", "json": out / "report.json", "html": out / "report.html"}
    written["md"].write_text(render_markdown(report, subjects=subjects), encoding="utf-8")
    written["json"].write_text(render_json(report), encoding="utf-8")
    written["html"].write_text(render_html(report, _items(store, report)), encoding="utf-8")
    return written


__all__ = ["write_reports"]
