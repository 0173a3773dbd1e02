"""Writers of synthetic lm-eval results straight into a store: known answers for retention, regression and
gate tests, without running a model."""

from mergeval.store import ItemRow, Store


def store_task(
    store: Store,
    fingerprint: str,
    task: str,
    scores: dict[int, float],
    *,
    metric: str = "acc",
    dtype: str = "float32",
    num_fewshot: int = 0,
) -> str:
    """Store per-item scores of one lm-eval task as the harness would (check kind lm-eval)."""
    config = {
        "engine": "lm-eval",
        "task": task,
        "task_version": 1.0,
        "task_config_hash": "synthetic",
        "num_fewshot": num_fewshot,
        "fewshot_seed": 1234,
        "dtype": dtype,
        "apply_chat_template": False,
        "aggregations": {metric: "mean"},
        "higher_is_better": {metric: True},
    }
    check_hash = f"{task}-{dtype}-{num_fewshot}"
    store.upsert_check(check_hash, kind="lm-eval", name=task, config=config)
    run = store.start_run(fingerprint, check_hash, {"lm_eval_version": "synthetic"})
    store.add_items(
        fingerprint, check_hash, run, [ItemRow(str(i), {f"{metric},none": v}) for i, v in scores.items()]
    )
    store.finish_run(run)
    return check_hash


def correct_on(first: int, n: int) -> dict[int, float]:
    """Items 0..n-1, the first `first` of them answered right."""
    return {i: float(i < first) for i in range(n)}
