"""Ranking a sweep on any check's benchmarks (direction and scale from its MetricSpecs), and the sweep file's
`checks:` (plan check entries; the earlier `{suite: ..., limit: ...}` form still read)."""

import pytest

from mergeval.errors import UserError
from mergeval.merge.ranking import Benchmark, ModelScores, Objective, Ranking, rank
from mergeval.merge.selection import SplitPlan
from mergeval.merge.spec import load_sweep

CONFIG = {"models": [{"model": "./a"}, {"model": "./b"}], "merge_method": "linear"}


def test_earlier_checks_mapping_is_read_as_check_entries_and_settings():
    spec = load_sweep({"config": CONFIG, "checks": {"suite": "smoke", "tasks": ["arc"], "limit": 6, "batch_size": 4,
                                                    "device": "cpu"}})
    assert spec.checks == [{"type": "suite", "suite": "smoke", "tasks": ["arc"], "limit": 6}]
    assert spec.settings.batch_size == 4 and spec.settings.device == "cpu"
    custom = load_sweep({"config": CONFIG, "checks": {"suite": "custom", "tasks": ["mine"], "include_paths": ["t"]}})
    assert custom.checks == [{"type": "lm-eval", "tasks": ["mine"], "include_path": ["t"]}]
    mixed = load_sweep({"config": CONFIG, "checks": {"suite": "smoke", "tasks": ["arc", "mine"],
                                                     "include_paths": ["t"]}})
    assert mixed.checks == [{"type": "suite", "suite": "smoke", "tasks": ["arc"]},
                            {"type": "lm-eval", "tasks": ["mine"], "include_path": ["t"]}]
    assert load_sweep({"config": CONFIG}).checks == [{"type": "suite", "suite": "smoke"}]
    entries = [{"type": "perplexity"}, {"type": "bleu", "max_new_tokens": 8}]
    assert load_sweep({"config": CONFIG, "checks": entries}).checks == entries
    with pytest.raises(UserError, match="unknown key"):
        load_sweep({"config": CONFIG, "checks": {"suite": "smoke", "limt": 5}})
    with pytest.raises(UserError, match="at least one check"):
        load_sweep({"config": CONFIG, "checks": []})


def _scores(values: dict[str, float]) -> dict:
    return {("perplexity", "perplexity", item): v for item, v in values.items()}


def test_a_lower_is_better_benchmark_ranks_the_lowest_first():
    items = [str(i) for i in range(40)]
    ppl = Benchmark("perplexity", scale=1.0, higher_is_better=False)
    ranking = Ranking(SplitPlan(0.5), [ppl], Objective.of("mean", [ppl]))
    rows = [ModelScores(name, "candidate", fp) for name, fp in (("worse", "f1"), ("better", "f2"))]
    parent = ModelScores("parent", "parent", "f3")
    scores = {"f1": _scores({i: 30.0 + (int(i) % 3) for i in items}),
              "f2": _scores({i: 20.0 + (int(i) % 2) for i in items}),
              "f3": _scores({i: 25.0 for i in items})}
    result = rank("t", ranking, rows, [parent], scores)
    assert result.winner == "better" and result.runner_up == "worse" and result.best_parent == "parent"
    assert not result.higher_is_better and [r.name for r in result.ranked()] == ["better", "worse"]
    assert 20 <= result.model("better").objective_selection <= 21  # the mean itself: scale 1, not x100
    assert result.vs_runner_up.diff < -8 and result.vs_runner_up.significant  # lower: better
    assert result.vs_best_parent.diff < 0
    assert {r.name for r in [*rows, parent] if r.on_pareto_front} == {"better"}


def test_an_objective_mixing_directions_or_scales_is_refused():
    ppl = Benchmark("perplexity", 1.0, False)
    arc = Benchmark("arc", 100.0, True)
    with pytest.raises(UserError, match="differ in scale or direction"):
        Objective.of("mean", [ppl, arc])
    with pytest.raises(UserError, match="not a benchmark of the checks"):
        Objective.of("mmlu", [ppl, arc])
    assert Objective.of("arc", [ppl, arc]) == Objective(["arc"], 100.0, True)
