"""Rendering a Report (mergeval.report): each renderer takes a Report (or report.json data) and nothing else.

    terminal.py   rich tables: models x benchmarks, subjects (`mergeval eval` / `show`: print_eval)
    console.py    the plan report on the terminal (print_report)
    markdown.py   report.md (render_markdown)
    html.py       report.html: one self-contained page, inline CSS and SVG (render_html, write_html)
    jsonreport.py report.json (render_json, read_json)
    files.py      all three files in one folder (write_reports)
"""

from mergeval.render.files import write_reports
from mergeval.render.html import render_html, write_html
from mergeval.render.jsonreport import read_json, render_json
from mergeval.render.markdown import render_markdown

__all__ = ["read_json", "render_html", "render_json", "render_markdown", "write_html", "write_reports"]
