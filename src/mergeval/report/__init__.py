"""Rendering comparison reports (the dict from mergeval.compare): a self-contained HTML page, ...

Public API:
    render_html(report) -> str           one HTML page, no external resources
    write_html(report, path) -> Path
"""

from mergeval.report.html import render_html, write_html

__all__ = ["render_html", "write_html"]
