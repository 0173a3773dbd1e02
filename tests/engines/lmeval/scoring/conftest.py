"""Fixtures for the scoring backend tests: real lm-eval tasks on the local data mirror, and a way to run
the same requests through plain HFLM and mergeval-hf."""

from __future__ import annotations

from typing import Any

import pytest

from mergeval.engines.lmeval.scoring._local_tasks import LEADERBOARD_TASKS, task_config


@pytest.fixture(scope="session")
def task_manager():
    from lm_eval.tasks import TaskManager

    return TaskManager()


@pytest.fixture(scope="session")
def leaderboard_configs(task_manager, hf_data) -> list[dict[str, Any]]:
    """lm-eval configs of the six leaderboard tasks (MMLU: one subject) reading the local data mirror."""
    return [task_config(task_manager, name, hf_data, num_fewshot=shots) for name, shots in LEADERBOARD_TASKS]
