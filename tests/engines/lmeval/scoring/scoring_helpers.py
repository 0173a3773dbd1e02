"""Comparing what plain HFLM and mergeval-hf return for the same lm-eval tasks."""

from __future__ import annotations

import math

LOGLIKELIHOOD_TOLERANCE = 1e-4  # absolute, per request (the parity bar)


def evaluate_samples(lm, configs, task_manager, limit: int) -> dict[str, list[dict]]:
    """lm-eval's own evaluation loop on `limit` docs per task; per-item samples by task, in doc order."""
    from lm_eval.evaluator import simple_evaluate

    out = simple_evaluate(
        model=lm, tasks=configs, task_manager=task_manager, limit=limit, log_samples=True, bootstrap_iters=0
    )
    return {
        task: sorted(rows, key=lambda r: (r["doc_id"], r.get("filter", "")))
        for task, rows in out["samples"].items()
    }


def assert_same_samples(plain: dict[str, list[dict]], fast: dict[str, list[dict]]) -> int:
    """Per-request loglikelihoods within tolerance, identical is_greedy flags, generations and per-item
    metrics identical. Returns the number of loglikelihood requests compared."""
    assert plain.keys() == fast.keys()
    compared = 0
    for task, plain_rows in plain.items():
        assert len(plain_rows) == len(fast[task]) > 0, task
        for a, b in zip(plain_rows, fast[task], strict=True):
            assert a["doc_id"] == b["doc_id"]
            metrics = [key for key in a.keys() | b.keys() if key.startswith(("acc", "exact_match"))]
            assert metrics, (task, sorted(a))
            for metric in metrics:
                _assert_same_metric(a.get(metric), b.get(metric), (task, a["doc_id"], metric))
            for resp_a, resp_b in zip(a["resps"], b["resps"], strict=True):
                value_a, value_b = resp_a[0], resp_b[0]
                if isinstance(value_a, str):  # generate_until
                    assert value_a == value_b, (task, a["doc_id"])
                    continue
                (ll_a, greedy_a), (ll_b, greedy_b) = value_a, value_b
                assert math.isfinite(ll_b)
                assert abs(ll_a - ll_b) <= LOGLIKELIHOOD_TOLERANCE, (task, a["doc_id"], ll_a, ll_b)
                assert greedy_a == greedy_b, (task, a["doc_id"])
                compared += 1
    return compared


def _assert_same_metric(a, b, where) -> None:
    """0/1 metrics must be identical. TruthfulQA mc2's per-item `acc` is a probability mass computed from
    the loglikelihoods, so it can only agree to the loglikelihoods' tolerance."""
    if a in (0, 1) and b in (0, 1):
        assert a == b, where
    else:
        assert a is not None and b is not None and abs(a - b) <= LOGLIKELIHOOD_TOLERANCE, (where, a, b)
