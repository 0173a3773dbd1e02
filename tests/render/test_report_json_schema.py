"""Every renderer reads the same Report: a plan's `settings.retention` is the pass mark the HTML and the Markdown
report both show, and report.json is what docs/report.schema.json (generated from mergeval.report) describes.

The report is a real one: the store fixture of tests/fixtures/store_v1 (a plan with `retention: 0.9`, every
built-in check type) compared by this version."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from mergeval.analysis import compare_plan
from mergeval.render import render_html, render_markdown
from mergeval.report import SCHEMA_FILE, json_schema_text
from store_v1 import FIXTURE, copy_store_v1


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("store_v1")
    return compare_plan(copy_store_v1(root), store=root / "mergeval.db")


def _with_retention(report, mark: float):
    changed = report.model_copy(deep=True)
    changed.provenance.settings["retention"] = mark
    return changed


def test_html_and_markdown_show_the_plans_retention_mark(report):
    assert report.retention and report.retention_mark == pytest.approx(0.9)  # the plan says 0.9
    html, markdown = render_html(report), render_markdown(report)
    assert "the plan's pass mark is 90%" in markdown
    assert "passes at ≥ 90% of the parents' mean" in html
    assert "pass threshold 90%" in html  # the chart's line
    # the default mark (95%) appears nowhere as a retention mark
    assert "pass mark is 95%" not in markdown
    assert "≥ 95% of the parents" not in html and "0.95 x min(parents)" not in html
    assert "pass threshold 95%" not in html
    # and both follow the setting, whatever it is
    other = _with_retention(report, 0.8)
    assert "the plan's pass mark is 80%" in render_markdown(other)
    assert "passes at ≥ 80% of the parents' mean" in render_html(other)


def test_the_retention_chart_draws_the_plans_mark(report):
    """The chart's threshold line sits at the plan's mark: moving the mark moves the line."""
    lines = [re.findall(r'class="threshold"[^>]*>', render_html(_with_retention(report, mark)))
             for mark in (0.9, 0.5)]
    assert lines[0] and lines[0] != lines[1]


def test_report_json_validates_against_the_published_schema(report):
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    data = json.loads(report.to_json())
    jsonschema.Draft202012Validator(schema).validate(data)
    stored = json.loads((FIXTURE / "report.json").read_text())  # the report.json an earlier version wrote
    jsonschema.Draft202012Validator(schema).validate(stored)
    broken = {**data, "verdict": {**data["verdict"], "status": 3}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(broken)


def test_the_published_schema_is_current():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == json_schema_text(), (
        "docs/report.schema.json is stale: regenerate it with `python -m mergeval.report`"
    )
