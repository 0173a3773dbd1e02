"""The merge demo's two skills, as lm-eval tasks with bundled hub-layout data.

- `demo_arithmetic`: "Question: What is 37 + 58?\\nAnswer:" -> " 95" (generate_until, exact match of the first
  number). 100 held-out two-digit additions; chance is ~0%.
- `demo_capitals`: "Question: What is the capital of Vipelor?\\nAnswer:" -> one of four made-up capitals
  (multiple_choice, acc). 48 facts; chance is 25%.

Evaluate any model on them with `mergeval eval MODEL --suite <SUITE_FILE>` (or `suite=str(SUITE_FILE)` in
`mergeval.evaluate`). The demo's parents are trained on prompts built by the functions here, so training and
evaluation share one format (see `training.py`).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SKILLS_DIR: Path = Path(__file__).resolve().parent
SUITE_FILE: Path = SKILLS_DIR / "suite.yaml"
TASKS_DIR: Path = SKILLS_DIR / "tasks"
DATA_DIR: Path = SKILLS_DIR / "data"

ARITHMETIC = "arithmetic"  # benchmark names in suite.yaml
CAPITALS = "capitals"
TASK_NAMES = {ARITHMETIC: "demo_arithmetic", CAPITALS: "demo_capitals"}


def arithmetic_prompt(a: int, b: int) -> str:
    return f"Question: What is {a} + {b}?\nAnswer:"


def capital_prompt(country: str) -> str:
    return f"Question: What is the capital of {country}?\nAnswer:"


@cache
def _read(name: str) -> tuple[dict[str, Any], ...]:
    path = DATA_DIR / "mergeval" / name / "default" / "test.jsonl"
    return tuple(json.loads(line) for line in path.read_text().splitlines() if line.strip())


def arithmetic_items() -> list[dict[str, Any]]:
    """The 100 held-out additions: {"a", "b", "answer"}."""
    return list(_read("demo_arithmetic"))


def capital_items() -> list[dict[str, Any]]:
    """The 48 made-up facts: {"country", "capital", "choices", "label"}."""
    return list(_read("demo_capitals"))


def data_fingerprint() -> str:
    """Hash of the bundled items (part of the training recipe's cache key)."""
    import hashlib

    digest = hashlib.sha256()
    for name in ("demo_arithmetic", "demo_capitals"):
        digest.update((DATA_DIR / "mergeval" / name / "default" / "test.jsonl").read_bytes())
    return digest.hexdigest()[:16]


__all__ = [
    "ARITHMETIC",
    "CAPITALS",
    "DATA_DIR",
    "SUITE_FILE",
    "TASKS_DIR",
    "TASK_NAMES",
    "arithmetic_items",
    "arithmetic_prompt",
    "capital_items",
    "capital_prompt",
    "data_fingerprint",
]
