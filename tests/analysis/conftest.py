"""Fixtures for the comparison tests: a small suite of bundled smoke tasks (0-shot, so tiny models evaluate
in seconds); the tiny parents and their merge (`tiny_models`) are in tests/conftest.py. Writers of synthetic
stored results are in compare_helpers.py."""

from pathlib import Path

import pytest

from mergeval.suites.smoke import DATA_DIR, TASKS_DIR

MINI_SUITE = """\
name: mini-smoke
title: mini smoke
label: "mini smoke suite (lm-eval {{lm_eval_version}})"
note: bundled smoke items, 0-shot
task_dirs: [{tasks}]
data_root: {data}
benchmarks:
  - {{name: arc, display: ARC, tasks: [smoke_arc], num_fewshot: 0, metric: acc_norm}}
  - name: mmlu
    display: MMLU
    task_pattern: "smoke_mmlu_{{subject}}"
    groups: {{stem: [astronomy], other: [nutrition]}}
    num_fewshot: 0
    metric: acc
  - {{name: winogrande, display: Winogrande, tasks: [smoke_winogrande], num_fewshot: 0, metric: acc}}
"""


@pytest.fixture(scope="session")
def mini_suite(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("suite") / "mini-suite.yaml"
    path.write_text(MINI_SUITE.format(tasks=TASKS_DIR, data=DATA_DIR))
    return path
