"""The Open LLM Leaderboard v2 normalisation against the leaderboard's documented examples
(huggingface/leaderboards, docs/source/en/open_llm_leaderboard/normalization.md and about.md) and cases
computed by hand, and the preset's data (num_choices) against lm-eval's own task definitions."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from mergeval.suites import load_suite
from mergeval.suites import normalization as norm
from mergeval.suites.leaderboard_v2 import item_raw, item_scores, score_parts


def test_gpqa_worked_example():
    """normalization.md: GPQA has 4 choices (lower bound 0.25); raw 0.6 -> 46.67."""
    assert norm.lower_bound(4) == 0.25
    assert f"{norm.normalize(0.6, 4):.2f}" == "46.67"


def test_musr_worked_example():
    """normalization.md: MuSR subtasks 2/5/3 choices, raw 0.7/0.4/0.6 -> 40/25/40, overall 35."""
    choices = {"murder_mysteries": 2, "object_placements": 5, "team_allocation": 3}
    raw = {"murder_mysteries": 0.7, "object_placements": 0.4, "team_allocation": 0.6}
    assert [round(norm.normalize(raw[t], choices[t]), 2) for t in choices] == [40.0, 25.0, 40.0]
    assert norm.benchmark_normalized(raw, choices, per_task=True) == pytest.approx(35.0)


def test_below_random_is_clamped_to_zero_and_generative_tasks_are_not_shifted():
    assert norm.normalize(0.2, 4) == 0.0  # below 0.25
    assert norm.normalize(0.25, 4) == 0.0
    assert norm.normalize(1.0, 4) == pytest.approx(100.0)
    assert norm.normalize(0.05, 10) == 0.0  # MMLU-Pro: 10 choices
    assert norm.normalize(0.55, 10) == pytest.approx(50.0)  # (0.55 - 0.1) / 0.9
    assert norm.normalize(0.35, 0) == pytest.approx(35.0)  # MATH, IFEval: lower bound 0
    with pytest.raises(ValueError):
        norm.lower_bound(1)


def test_per_subtask_normalisation_differs_from_normalising_the_mean():
    """BBH/MuSR: normalise each subtask, then average; clamping happens per subtask.
    By hand: navigate (2 choices) 0.4 -> 0 (clamped), date_understanding (6) 0.5 -> (0.5-1/6)/(5/6) = 40,
    object_counting (19) 0.1 -> (0.1-1/19)/(18/19) = 5.0; mean = 15.0."""
    choices = {"navigate": 2, "date_understanding": 6, "object_counting": 19}
    raw = {"navigate": 0.4, "date_understanding": 0.5, "object_counting": 0.1}
    assert norm.benchmark_normalized(raw, choices, per_task=True) == pytest.approx(15.0)
    # Pooling first would need one num_choices: refused.
    with pytest.raises(ValueError):
        norm.benchmark_normalized(raw, choices, per_task=False)


def test_pooled_benchmarks_weight_tasks_by_size():
    """GPQA/MATH: lm-eval's group score (weight_by_size), then normalised once.
    By hand: diamond 0.5 on 198, main 0.3 on 448, extended 0.4 on 546 -> pooled 0.3903; (0.3903-0.25)/0.75."""
    raw = {"diamond": 0.5, "main": 0.3, "extended": 0.4}
    sizes = {"diamond": 198, "main": 448, "extended": 546}
    pooled = (0.5 * 198 + 0.3 * 448 + 0.4 * 546) / (198 + 448 + 546)
    assert norm.pooled(raw, sizes) == pytest.approx(pooled)
    assert norm.benchmark_normalized(raw, dict.fromkeys(raw, 4), per_task=False, sizes=sizes) == pytest.approx(
        (pooled - 0.25) / 0.75 * 100
    )
    assert norm.benchmark_normalized({"a": None}, {"a": 4}, per_task=False) is None


def test_item_scores_average_to_the_unclamped_normalised_score():
    items = [SimpleNamespace(item_id=str(i), metrics={"acc_norm,none": v}) for i, v in enumerate([1, 0, 1, 1])]
    bench = load_suite("leaderboard-v2").benchmarks[1]  # BBH
    scores = item_scores(bench, "leaderboard_bbh_date_understanding", items)  # 6 choices
    assert sum(scores.values()) / len(scores) * 100 == pytest.approx(norm.normalize(0.75, 6))
    assert scores["1"] == pytest.approx(-0.2)  # (0 - 1/6) / (5/6): below random, not clamped item by item


def test_ifeval_reads_the_mean_of_prompt_and_instruction_level_strict_accuracy():
    ifeval = load_suite("leaderboard-v2").benchmarks[0]
    assert ifeval.name == "ifeval" and ifeval.metrics == ["prompt_level_strict_acc", "inst_level_strict_acc"]
    task = SimpleNamespace(all_metrics={"prompt_level_strict_acc,none": 0.5, "inst_level_strict_acc,none": 0.6,
                                        "prompt_level_loose_acc,none": 0.9}, value=0.5, stderr=0.1, n=4, n_target=4)
    parts = score_parts(ifeval, {"leaderboard_ifeval": task})
    assert parts["raw"] == pytest.approx(55.0) and parts["normalized"] == pytest.approx(55.0)
    assert parts["stderr"] is None  # the two metrics' errors are not independent: not made up
    # One item: failed the prompt (one of two instructions followed) -> (0 + 0.5) / 2.
    item = {"prompt_level_strict_acc,none": False, "inst_level_strict_acc,none": [True, False]}
    assert item_raw(ifeval, item) == pytest.approx(0.25)


def test_preset_num_choices_match_the_leaderboard_documentation_and_lm_eval():
    """about.md's num_choices per BBH subtask equal the number of choices lm-eval's tasks offer."""
    import lm_eval
    from lm_eval.tasks._yaml_loader import load_yaml

    suite = load_suite("leaderboard-v2")
    bench = {b.name: b for b in suite.benchmarks}
    root = lm_eval.__path__[0] + "/tasks/leaderboard/bbh_mc"
    for task in bench["bbh"].tasks:
        subject = bench["bbh"].subject_of(task)
        cfg = load_yaml(f"{root}/{subject}.yaml", resolve_func=False)
        assert bench["bbh"].num_choices_of(task) == len(cfg["doc_to_choice"]), task
    assert len(bench["bbh"].tasks) == 24
    assert {bench["musr"].subject_of(t): bench["musr"].num_choices_of(t) for t in bench["musr"].tasks} == {
        "murder_mysteries": 2, "object_placements": 5, "team_allocation": 3}
    assert bench["gpqa"].num_choices == 4 and bench["mmlu_pro"].num_choices == 10
    assert bench["math"].num_choices == 0 and bench["ifeval"].num_choices == 0
    assert [b.metric for b in suite.benchmarks] == ["prompt_level_strict_acc", "acc_norm", "exact_match",
                                                    "acc_norm", "acc_norm", "acc"]
    assert [b.name for b in suite.benchmarks] == ["ifeval", "bbh", "math", "gpqa", "musr", "mmlu_pro"]


def test_a_single_subtask_keeps_its_num_choices():
    sub = load_suite("leaderboard-v2").subset(["leaderboard_bbh_object_counting", "mmlu_pro"])
    assert [b.num_choices_of(b.tasks[0]) for b in sub.benchmarks] == [19, 10]


def test_normalised_stderr_scales_with_the_random_baseline():
    assert norm.normalized_stderr(0.03, 4) == pytest.approx(4.0)  # 0.03 / 0.75 x 100
    se = norm.benchmark_normalized_stderr({"a": 0.03, "b": 0.04}, {"a": 4, "b": 0}, per_task=True)
    assert se == pytest.approx(math.sqrt(0.04**2 + 0.04**2) / 2 * 100)
