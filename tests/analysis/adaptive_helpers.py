"""Real models and a real lm-eval task for the adaptive-run tests.

The task: 200 two-way questions whose gold answer is always the first choice. The models: tiny random llamas
steered (by their weights, not by mocks) to prefer one of the two answers at every position: one dimension of
the residual stream is made constant (embeddings set, no layer writes it), the final norm passes it, and the
output layer maps it onto the tokens of one answer (up) and of the other (down). A model steered to the gold
answer scores 100%, one steered away 0%, whatever its random base: so "better" and "within" are clear-cut.
"""

from __future__ import annotations

import json
from pathlib import Path

GOOD, BAD = "apple", "stone"
N_ITEMS = 200

TASK = """\
task: adaptive_pick
dataset_path: mergeval/adaptive_pick
dataset_name: default
output_type: multiple_choice
test_split: test
num_fewshot: 0
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_target: 0
doc_to_choice: ["apple", "stone"]
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

SUITE = """\
name: adaptive-pick
title: adaptive pick
label: "adaptive pick (lm-eval {lm_eval_version})"
note: 200 two-way items, gold always the first choice
task_dirs: [tasks]
data_root: data
benchmarks:
  - {name: pick, display: Pick, tasks: [adaptive_pick], num_fewshot: 0, metric: acc}
"""


MULTI_SUITE = """\
name: adaptive-picks
title: adaptive picks
label: "adaptive picks (lm-eval {lm_eval_version})"
note: one benchmark of two tasks of different sizes, averaged per task (like MMLU's subjects)
task_dirs: [tasks]
data_root: data
benchmarks:
  - {name: picks, display: Picks, tasks: [adaptive_pick_a, adaptive_pick_b], num_fewshot: 0, metric: acc,
     aggregate: task_mean}
"""
MULTI_SIZES = {"adaptive_pick_a": 120, "adaptive_pick_b": 60}


def _task(root: Path, name: str, n_items: int) -> None:
    (root / "tasks").mkdir(parents=True, exist_ok=True)
    (root / "tasks" / f"{name}.yaml").write_text(TASK.replace("adaptive_pick", name))
    data = root / "data" / "mergeval" / name / "default"
    data.mkdir(parents=True, exist_ok=True)
    rows = [{"question": f"Which one is item {i} of the list, number {i * 7 % 13}?"} for i in range(n_items)]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_suite(root: Path) -> Path:
    _task(root, "adaptive_pick", N_ITEMS)
    suite = root / "suite.yaml"
    suite.write_text(SUITE)
    return suite


def write_multi_suite(root: Path) -> Path:
    """A benchmark of two tasks (120 and 60 items) whose score is the mean of the two task scores."""
    for name, n in MULTI_SIZES.items():
        _task(root, name, n)
    suite = root / "suite.yaml"
    suite.write_text(MULTI_SUITE)
    return suite


def steered_model(path: Path, *, seed: int, prefer: str) -> Path:
    """A tiny llama (random base `seed`) that prefers the answer `prefer` (GOOD or BAD) everywhere."""
    import torch

    from mergeval.tiny import make_tiny_llama, make_tokenizer

    base = make_tiny_llama(path.with_name(path.name + "-base"), seed=seed)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    tok = make_tokenizer()
    up = set(tok.encode(" " + prefer, add_special_tokens=False))
    down = set(tok.encode(" " + (BAD if prefer == GOOD else GOOD), add_special_tokens=False)) - up
    d = 0
    with torch.no_grad():
        model.model.embed_tokens.weight[:, d] = 20.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[d, :] = 0.0
            layer.mlp.down_proj.weight[d, :] = 0.0
        model.model.norm.weight[d] = 1.0
        model.lm_head.weight[:, d] = 0.0
        for t in up:
            model.lm_head.weight[t, d] = 5.0
        for t in down:
            model.lm_head.weight[t, d] = -5.0
    return make_tiny_llama(path, model=model)


def plan_text(suite: Path, models: dict[str, tuple[Path, str]], *, gates: list[str], settings: str = "") -> str:
    lines = ["title: adaptive", "store: mergeval.db", "models:"]
    for name, (path, role) in models.items():
        lines += [f"  - name: {name}", f"    path: {path}", f"    role: {role}"]
    lines += ["checks:", "  - type: suite", f"    suite: {suite}", "gates:"]
    lines += [f"  - {g!r}" for g in gates] if gates else ["  []"]
    lines += ["settings:", "  device: cpu", "  batch_size: 16", *(f"  {s}" for s in settings.splitlines() if s)]
    text = "\n".join(lines) + "\n"
    return text.replace("gates:\n  []", "gates: []")
