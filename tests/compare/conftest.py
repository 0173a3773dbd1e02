"""Fixtures for the comparison tests: tiny parent models and a real weight-average merge of them, and a small
suite of bundled smoke tasks (0-shot, so tiny models evaluate in seconds). Writers of synthetic stored
results are in compare_helpers.py."""

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


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """parent-a, parent-b (tiny random Llamas) and merged: the element-wise mean of their weights."""
    import torch
    from transformers import AutoModelForCausalLM

    from mergeval.testing import make_tiny_llama

    root = tmp_path_factory.mktemp("models")
    a = make_tiny_llama(root / "parent-a", seed=0)
    b = make_tiny_llama(root / "parent-b", seed=1)
    model_a = AutoModelForCausalLM.from_pretrained(a)
    weights_b = AutoModelForCausalLM.from_pretrained(b).state_dict()
    with torch.no_grad():
        for name, tensor in model_a.state_dict().items():
            tensor.copy_((tensor + weights_b[name]) / 2)
    make_tiny_llama(root / "merged", model=model_a)
    return root
