"""What the Open LLM Leaderboard v2 preset needs beyond the v1 machinery.

The preset itself is data (`suites/leaderboard_v2.yaml`) and the normalisation is pure arithmetic
(`suites/normalization.py`). This module is the glue the harness, `evaluate` and the plan checks call:

  - prerequisites, checked before any work starts: the Python packages of the tasks' scoring code
    (IFEval: langdetect, immutabledict, nltk; MATH: math-verify with antlr4 4.11), and nltk's punkt_tab
    tokenizer, which lm-eval's IFEval code would otherwise download at import time (`NLTK_DATA` is pointed at
    the data mirror first, so no download is ever attempted);
  - gated datasets (GPQA): missing data makes the benchmark "not evaluated" with the reason, never 0;
  - scores: a task's raw score from one or several metrics (IFEval), the benchmark's raw and normalised
    scores, and per-item scores on the normalised scale for the paired statistics.

Any suite can use these fields; only leaderboard-v2 does today.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mergeval.errors import UserError
from mergeval.suites import Benchmark, Suite
from mergeval.suites import normalization as norm

INSTALL_HINT = "pip install 'mergeval[v2]'"
NLTK_DIR = "nltk_data"  # inside a data mirror: <data-dir>/nltk_data/tokenizers/punkt_tab/...


# -- lm-eval aggregations that are task code, not registered functions ---------------------------------------


def _flat_mean(items: Iterable[Any]) -> float:
    """lm-eval's IFEval `agg_inst_level_acc`: the mean over every instruction of every prompt."""
    flat = [x for item in items for x in (item if isinstance(item, (list, tuple)) else [item])]
    return sum(flat) / len(flat)


# Aggregations a stored check names but lm-eval's registry does not hold (they live in a task's utils.py,
# which is not importable by name): the same arithmetic, so scores are read from the store without the task.
TASK_AGGREGATIONS = {"agg_inst_level_acc": _flat_mean}


# -- prerequisites -----------------------------------------------------------------------------------------


def missing_packages(benchmarks: Iterable[Benchmark]) -> dict[str, list[str]]:
    """{pip requirement: [benchmark displays]} for every requirement that is not installed (or not in the
    required version range)."""
    from packaging.requirements import Requirement

    missing: dict[str, list[str]] = {}
    for bench in benchmarks:
        for text in bench.requires:
            req = Requirement(text)
            try:
                installed = version(req.name)
            except PackageNotFoundError:
                installed = None
            if installed is None or (req.specifier and not req.specifier.contains(installed, prereleases=True)):
                missing.setdefault(text, []).append(bench.display)
    return missing


def check_packages(suite: Suite) -> None:
    missing = missing_packages(suite.benchmarks)
    if not missing:
        return
    parts = ", ".join(f"{req} ({', '.join(dict.fromkeys(benches))})" for req, benches in missing.items())
    raise UserError(
        f"The {suite.name} suite needs Python packages that are not installed: {parts}. "
        f"Install them with: {INSTALL_HINT}"
    )


def nltk_search_dirs(data_dir: Path | None) -> list[Path]:
    """Where mergeval looks for nltk data before nltk's own locations: <data-dir>/nltk_data, then a
    nltk_data folder beside the data dir (a layout like data/hf + data/nltk_data)."""
    if data_dir is None:
        return []
    candidates = [data_dir / NLTK_DIR, data_dir.parent / NLTK_DIR]
    return [p.resolve() for p in candidates if p.is_dir()]


def use_nltk_data(data_dir: Path | None) -> list[Path]:
    """Put the mirror's nltk data first on nltk's search path (and in NLTK_DATA, for code that imports nltk
    later or in another process). Returns the folders added."""
    dirs = nltk_search_dirs(data_dir)
    if not dirs:
        return []
    current = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    os.environ["NLTK_DATA"] = os.pathsep.join(dict.fromkeys([*map(str, dirs), *current]))
    import nltk

    for folder in reversed(dirs):
        if str(folder) not in nltk.data.path:
            nltk.data.path.insert(0, str(folder))
    return dirs


def check_nltk(suite: Suite, data_dir: Path | None) -> None:
    """Every nltk resource the suite's scoring code needs must be found locally: lm-eval's IFEval code calls
    nltk.download at import time when punkt_tab is missing, which fails (or hangs) offline."""
    needed = {r: b.display for b in suite.benchmarks for r in b.nltk_resources}
    if not needed:
        return
    use_nltk_data(data_dir)
    import nltk

    missing = []
    for resource, display in needed.items():
        try:
            nltk.data.find(resource)
        except LookupError:
            missing.append(f"{resource} ({display})")
    if missing:
        where = f"{data_dir / NLTK_DIR}, " if data_dir is not None else ""
        raise UserError(
            f"nltk data {', '.join(missing)} is not installed (looked in {where}NLTK_DATA and nltk's default "
            f"folders): run `mergeval data pull --suite {suite.name} --to DIR` where there is internet (it "
            "fetches it into DIR/nltk_data) and pass --data-dir DIR, or run `python -m nltk.downloader punkt_tab`."
        )


def check_prerequisites(suite: Suite, data_dir: Path | None) -> None:
    """Packages, then nltk data: one clear sentence before any model or dataset is loaded."""
    check_packages(suite)
    check_nltk(suite, data_dir)


# -- gated datasets -------------------------------------------------------------------------------------------


def gated_reason(bench: Benchmark, data_dir: Path | None = None) -> str:
    """Why a gated benchmark is not evaluated: one sentence naming the fix."""
    ds = bench.gated_dataset
    where = f"is not in the data dir {data_dir}" if data_dir is not None else "could not be loaded"
    return (
        f"{bench.display} not evaluated: its dataset {ds} is gated on the Hugging Face hub and {where}; accept "
        f"its terms at https://huggingface.co/datasets/{ds}, set HF_TOKEN and pull it with "
        "`mergeval data pull --suite leaderboard-v2 --to DIR`."
    )


def hub_offline() -> bool:
    return any(
        os.environ.get(var, "0").lower() in ("1", "true", "yes") for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


# -- scores ---------------------------------------------------------------------------------------------------


def task_raw(bench: Benchmark, all_metrics: Mapping[str, float], value: float | None) -> float | None:
    """A task's raw score (0-1): the mean of the benchmark's `metrics` when it lists several (IFEval),
    else the value of its metric."""
    if bench.metrics:
        return norm.mean_of_metrics([all_metrics.get(f"{m},{bench.filter}") for m in bench.metrics])
    return value


def item_raw(bench: Benchmark, metrics: Mapping[str, Any]) -> float | None:
    """One stored item's raw score (0-1) on the benchmark's metric(s); IFEval: the mean of the prompt's
    strict pass (0/1) and the fraction of its instructions followed."""
    keys = [f"{m},{bench.filter}" for m in (bench.metrics or [bench.metric])]
    values = []
    for key in keys:
        v = metrics.get(key)
        if isinstance(v, (list, tuple)):
            v = sum(v) / len(v) if v else None
        if not isinstance(v, (int, float)):
            return None
        values.append(float(v))
    return sum(values) / len(values)


def item_scores(bench: Benchmark, task: str, items: Iterable[Any]) -> dict[str, float]:
    """Per-item scores for the paired statistics, on the normalised scale without the clamp (see
    normalization.normalize_item): their mean over a task is the task's normalised score / 100."""
    n = bench.num_choices_of(task)
    out = {}
    for it in items:
        raw = item_raw(bench, it.metrics)
        if raw is not None:
            out[it.item_id] = norm.normalize_item(raw, n)
    return out


def score_parts(bench: Benchmark, per_task: Mapping[str, Any]) -> dict[str, Any]:
    """A normalised benchmark's numbers from its tasks' scores (objects with all_metrics, value, stderr, n):
    {raw, normalized, stderr (all 0-100 or None), tasks: {task: {value (normalised), raw, stderr, n}}}."""
    raw_by_task = {t: task_raw(bench, s.all_metrics, s.value) for t, s in per_task.items()}
    sizes = {t: s.n for t, s in per_task.items()} if bench.aggregate == "item_mean" else None
    choices = {t: bench.num_choices_of(t) for t in per_task}
    stderrs = {t: (None if bench.metrics else s.stderr) for t, s in per_task.items()}
    tasks = {
        t: {
            "value": None if raw_by_task[t] is None else norm.normalize(raw_by_task[t], choices[t]),
            "raw": None if raw_by_task[t] is None else 100 * raw_by_task[t],
            "stderr": norm.normalized_stderr(stderrs[t], choices[t]),
            "n": s.n,
        }
        for t, s in per_task.items()
    }
    complete = bool(raw_by_task) and all(v is not None for v in raw_by_task.values())
    if not complete:
        return {"raw": None, "normalized": None, "stderr": None, "tasks": tasks}
    return {
        "raw": 100 * norm.pooled(raw_by_task, sizes),
        "normalized": norm.benchmark_normalized(raw_by_task, choices, per_task=bench.normalize_per_task,
                                                sizes=sizes),
        "stderr": norm.benchmark_normalized_stderr(stderrs, choices, per_task=bench.normalize_per_task,
                                                   sizes=sizes),
        "tasks": tasks,
    }


def average_note(names: list[str], not_evaluated: Iterable[str]) -> str:
    """How the Average was formed, e.g. 'Average over 5 of 6 benchmarks (GPQA not evaluated)'."""
    skipped = list(not_evaluated)
    if not skipped:
        return f"Average = plain mean of the {len(names)} normalised scores"
    return (f"Average over {len(names) - len(skipped)} of {len(names)} benchmarks "
            f"({', '.join(skipped)} not evaluated)")
