"""The bundled offline smoke suite: the six Open LLM Leaderboard v1 task formats on a few easy items each.

`mergeval eval` runs it on any machine with no network, as a one-to-two-minute check that a fresh merge is
not broken. The prompts, few-shot layout and metrics are lm-eval's leaderboard tasks (arc_challenge,
hellaswag, truthfulqa_mc2, mmlu_<subject>, winogrande, gsm8k); the items are original and easy, and the
few-shot counts are smaller, so the scores are NOT comparable with leaderboard numbers (see README.md).

Layout:
- `tasks/`: lm-eval YAML tasks; each sets `dataset_path: mergeval/<dataset>`, a name relative to `DATA_DIR`.
- `data/mergeval/<dataset>/`: hub-layout dataset folders (README.md `configs:` block + JSONL files).

Loading (lm-eval 0.4.13): a dict spec `{"task": name, "dataset_path": ...}` given to `TaskManager.load` is
NOT merged with the registered YAML (it becomes a bare inline task), so `task_configs` returns each task's
*complete* config, read from its YAML, with `dataset_path` made absolute (and a `datasets` cache folder
that follows the data's content: see `dataset_cache_dir`). Pass those dicts, with the
`task_manager()`, to `lm_eval.evaluator.simple_evaluate(model=..., tasks=task_configs(), task_manager=...)`;
this works from any working directory and never touches the network.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mergeval.errors import UserError

if TYPE_CHECKING:
    from lm_eval.tasks import TaskManager

__all__ = [
    "DATA_DIR",
    "MMLU_SUBJECTS",
    "MMLU_TAG",
    "SUITE_TAG",
    "TASKS_DIR",
    "TASK_NAMES",
    "dataset_cache_dir",
    "task_configs",
    "task_manager",
    "task_overrides",
]

TASKS_DIR: Path = Path(__file__).resolve().parent / "tasks"
DATA_DIR: Path = Path(__file__).resolve().parent / "data"

# The four MMLU subjects, one per MMLU category, each a task `smoke_mmlu_<subject>`.
MMLU_SUBJECTS: dict[str, str] = {
    "astronomy": "stem",
    "world_religions": "humanities",
    "high_school_geography": "social_sciences",
    "nutrition": "other",
}
MMLU_TAG = "smoke_mmlu"  # lm-eval tag naming the four smoke_mmlu_<subject> tasks
SUITE_TAG = "mergeval_smoke"  # lm-eval tag naming every task of the suite

# Every (leaf) task of the suite, in the leaderboard's order (ARC, HellaSwag, MMLU, TruthfulQA, Winogrande, GSM8K).
TASK_NAMES: list[str] = [
    "smoke_arc",
    "smoke_hellaswag",
    *(f"smoke_mmlu_{subject}" for subject in MMLU_SUBJECTS),
    "smoke_truthfulqa_mc2",
    "smoke_winogrande",
    "smoke_gsm8k",
]


def task_manager() -> TaskManager:
    """A TaskManager that indexes the smoke tasks only (not lm-eval's ~10k built-in tasks: much faster)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


def _expand(task_names: list[str] | None) -> list[str]:
    """Task names with the suite's tags expanded to their tasks; unknown names are a UserError."""
    if task_names is None:
        return list(TASK_NAMES)
    expanded: list[str] = []
    for name in task_names:
        if name == SUITE_TAG:
            expanded += TASK_NAMES
        elif name == MMLU_TAG:
            expanded += [f"smoke_mmlu_{subject}" for subject in MMLU_SUBJECTS]
        elif name in TASK_NAMES:
            expanded.append(name)
        else:
            raise UserError(
                f"'{name}' is not a smoke-suite task. Use one of: {', '.join(TASK_NAMES)} "
                f"(or the tags '{MMLU_TAG}' and '{SUITE_TAG}')."
            )
    return list(dict.fromkeys(expanded))  # keep order, drop repeats


def _yaml_path(task_name: str, manager: TaskManager) -> Path:
    entry = manager.task_index.get(task_name)
    if entry is None or entry.yaml_path is None:
        # The index silently skips a YAML file it cannot parse, so a missing task means a broken file.
        raise UserError(f"The smoke task '{task_name}' is missing from {TASKS_DIR}; reinstall mergeval.")
    return Path(entry.yaml_path)


def _full_config(yaml_path: Path) -> dict[str, Any]:
    """The task's YAML with `include:` merged and `!function` references imported, as lm-eval reads it."""
    # lm-eval 0.4.13 has no public function for this; TaskManager itself uses this loader.
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(yaml_path, resolve_func=True)


def dataset_cache_dir(dataset_folder: Path) -> Path:
    """A `datasets` cache folder that belongs to this exact content of a local hub-layout dataset folder.

    `datasets` (5.x) keys the Arrow cache of a local folder with a README `configs:` block by the folder's
    *name* and the README alone: it neither notices edited data files nor tells apart two folders with the same
    name, and silently serves the old rows (huggingface/datasets#2956, #6465). Pointing `cache_dir` at a
    folder named after the files' content makes every change a fresh cache and unchanged data a cache hit.
    """
    import datasets

    digest = hashlib.sha256()
    for path in sorted(p for p in dataset_folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(dataset_folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    root = Path(datasets.config.HF_DATASETS_CACHE) / "mergeval_local"
    return root / f"{dataset_folder.name}-{digest.hexdigest()[:16]}"


def _offline_overrides(config: dict[str, Any]) -> dict[str, Any]:
    folder = DATA_DIR / config["dataset_path"]
    dataset_kwargs = {**(config.get("dataset_kwargs") or {}), "cache_dir": str(dataset_cache_dir(folder))}
    return {"dataset_path": str(folder), "dataset_kwargs": dataset_kwargs}


def task_overrides(task_name: str, manager: TaskManager | None = None) -> dict[str, Any]:
    """The config keys to override for one smoke task to run offline: its absolute `dataset_path`, and a
    `dataset_kwargs.cache_dir` that follows the data's content (see `dataset_cache_dir`)."""
    if task_name not in TASK_NAMES:
        _expand([task_name])  # a UserError naming the valid tasks, unless it is a tag
        raise UserError(f"'{task_name}' is a tag; task_overrides takes one task, e.g. '{TASK_NAMES[0]}'.")
    return _offline_overrides(_full_config(_yaml_path(task_name, manager or task_manager())))


def task_configs(
    task_names: list[str] | None = None, manager: TaskManager | None = None
) -> list[dict[str, Any]]:
    """Complete lm-eval task configs (the YAML + `task_overrides`), ready for `TaskManager.load` or
    `simple_evaluate(tasks=..., task_manager=...)`. `task_names` may use the tags `smoke_mmlu` and
    `mergeval_smoke`; None means the whole suite."""
    manager = manager or task_manager()
    configs = []
    for name in _expand(task_names):
        config = _full_config(_yaml_path(name, manager))
        config.update(_offline_overrides(config))
        configs.append(config)
    return configs
