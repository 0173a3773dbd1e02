"""Build lm-eval tasks whose datasets are read from a local hub-layout mirror (`<root>/<org>/<name>/`).

Used by the scoring benchmark and tests to get the exact requests lm-eval would send a model, offline.
lm-eval 0.4.13 builds a dict spec as a whole new config (it does not merge it into the registered task),
so the registered YAML is loaded in full and the overrides are applied on top of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The six Open LLM Leaderboard v1 tasks: (lm-eval task, few-shot count). MMLU is one subject here.
LEADERBOARD_TASKS: list[tuple[str, int]] = [
    ("arc_challenge", 25),
    ("hellaswag", 10),
    ("truthfulqa_mc2", 0),
    ("mmlu_high_school_biology", 5),
    ("winogrande", 5),
    ("gsm8k", 5),
]


def task_config(manager: Any, task: str, data_root: str | Path | None, **overrides: Any) -> dict[str, Any]:
    """The registered config of `task`, with `dataset_path` pointed into `data_root` when it is given."""
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = manager.task_index.get(task)
    if entry is None or entry.yaml_path is None:
        raise KeyError(f"lm-eval has no YAML task named {task!r}")
    config = dict(load_yaml(entry.yaml_path, resolve_func=True))
    if data_root is not None:
        config["dataset_path"] = str(Path(data_root) / config["dataset_path"])
    config.update(overrides)
    return config


def build_tasks(
    specs: list[tuple[str, int]], data_root: str | Path | None, manager: Any | None = None
) -> dict[str, Any]:
    """{task name: lm-eval Task} for (task, num_fewshot) specs, reading data under `data_root`."""
    from lm_eval.tasks import TaskManager, get_task_dict

    manager = manager or TaskManager()
    configs = [task_config(manager, name, data_root, num_fewshot=shots) for name, shots in specs]
    tasks = get_task_dict(configs, manager)
    for task in tasks.values():
        task.set_fewshot_seed(seed=1234)  # lm-eval's default few-shot seed: the same prompts in every run
    return tasks


def task_instances(task: Any, limit: int) -> list[Any]:
    """The requests lm-eval builds for the first `limit` documents of `task` (in doc order)."""
    task.build_all_requests(limit=limit, rank=0, world_size=1)
    return list(task.instances)
