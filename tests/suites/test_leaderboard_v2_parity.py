"""leaderboard-v2 through mergeval gives per item what plain lm-eval gives (`simple_evaluate` on the same
items, same task config), for one task of each family: IFEval, BBH, MATH, MuSR, MMLU-Pro, and with the
chat-template setting. Data: the real-row fixtures in tests/fixtures/v2 (no ../shared needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mergeval.engines.lmeval.harness import TaskLoader, make_lm
from mergeval.evaluation import evaluate
from mergeval.models import resolve
from mergeval.store import Store
from mergeval.suites import load_suite

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v2"
ONE_PER_FAMILY = [
    "leaderboard_ifeval",
    "leaderboard_bbh_date_understanding",
    "leaderboard_math_algebra_hard",
    "leaderboard_musr_object_placements",
    "leaderboard_mmlu_pro",
]
LIMIT = 2
# The generative tasks (IFEval: up to 1280 new tokens, MATH: 1024) run one item: a random tiny model never
# stops early, and every item is generated twice (mergeval, then plain lm-eval).
GENERATIVE = {"leaderboard_ifeval", "leaderboard_math_algebra_hard"}


def _limit(task: str) -> int:
    return 1 if task in GENERATIVE else LIMIT


def _direct(loader: TaskLoader, lm, name: str, bench, **chat):
    """What a user gets from plain lm-eval with the same task config."""
    import lm_eval

    cfg, _ = loader.config_for(name, bench)
    return lm_eval.simple_evaluate(model=lm, tasks=[cfg], limit=_limit(name), bootstrap_iters=0,
                                   task_manager=loader.manager, log_samples=True, **chat)


def _same_output(ours, theirs) -> bool:
    """Generations identical; loglikelihoods equal to float noise, greedy flags identical."""
    theirs = json.loads(json.dumps(theirs, default=str))  # as stored: tuples become lists
    if isinstance(ours, str) or isinstance(theirs, str):
        return ours == theirs
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return all(_same_output(a, b) for a, b in zip(ours, theirs))
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return ours == theirs
    return ours == pytest.approx(theirs, abs=1e-4)


def _same(ours, theirs) -> bool:
    if isinstance(ours, list):
        return list(map(bool, ours)) == list(map(bool, theirs))
    return ours == pytest.approx(float(theirs), abs=1e-6)


@pytest.fixture(scope="module")
def tiny_ref(tmp_path_factory):
    from mergeval.testing import make_tiny_llama

    folder = make_tiny_llama(tmp_path_factory.mktemp("v2tiny") / "tiny", seed=3)
    return resolve(folder, dtype="float32", batch_size=4)


@pytest.fixture(scope="module")
def evaluated(tiny_ref, tmp_path_factory):
    store = tmp_path_factory.mktemp("v2store") / "r.db"
    suite = load_suite("leaderboard-v2").subset(ONE_PER_FAMILY)
    generative = suite.subset(sorted(GENERATIVE))
    scoring = suite.subset([t for t in ONE_PER_FAMILY if t not in GENERATIVE])
    evaluate(tiny_ref, suite=generative, limit=1, store=store, data_dir=FIXTURES, backend="hf", dtype="float32")
    evaluate(tiny_ref, suite=scoring, limit=LIMIT, store=store, data_dir=FIXTURES, backend="hf", dtype="float32")
    # The whole table, read back from the store (each task covers the items its run stored).
    from mergeval.evaluation import read_results

    result = read_results(store, suite=suite)
    return {"store": store, "suite": suite, "result": result}


@pytest.mark.parametrize("task", ONE_PER_FAMILY)
def test_items_match_plain_lm_eval(task, tiny_ref, evaluated):
    suite = evaluated["suite"]
    bench = suite.benchmark_of(task)
    loader = TaskLoader(suite, data_dir=FIXTURES)
    prepared = loader.load(task, bench, dtype="float32")
    assert prepared.dataset_source.startswith("mirror:")
    direct = _direct(loader, make_lm(tiny_ref, "hf"), task, bench)
    samples = {str(s["doc_id"]): s for s in direct["samples"][task] if s["filter"] == "none"}
    with Store(evaluated["store"]) as store:
        items = {i.item_id: i for i in store.items(tiny_ref.fingerprint, prepared.check_hash, with_data=True)}
    assert set(items) == set(samples) == {str(i) for i in range(_limit(task))}
    for item_id, ours in items.items():
        theirs = samples[item_id]
        assert ours.data["prompt_hash"] == theirs["prompt_hash"], (task, item_id)  # same prompt, same shots
        assert _same_output(ours.data["filtered_resps"]["none"], theirs["filtered_resps"]), (task, item_id)
        for key, value in ours.metrics.items():
            metric = key.split(",")[0]
            assert _same(value, theirs[metric]), (task, item_id, metric)
    # The task's raw score (IFEval: the mean of two metrics) from lm-eval's own aggregation of these items.
    score = evaluated["result"].models[0].scores[bench.name]
    lm_results = direct["results"][task]
    if bench.metrics:
        expected = sum(lm_results[f"{m},none"] for m in bench.metrics) / len(bench.metrics)
    else:
        expected = lm_results[bench.metric_key]
    assert score.raw == pytest.approx(100 * expected, abs=1e-9)
    lower = 1 / bench.num_choices_of(task) if bench.num_choices_of(task) else 0.0
    assert score.value == pytest.approx(max(0.0, (expected - lower) / (1 - lower)) * 100, abs=1e-9)


def test_the_table_shows_raw_and_normalised_with_the_v2_average(evaluated):
    result = evaluated["result"]
    model = result.models[0]
    assert result.normalized and result.label.startswith("lm-eval ") and result.label.endswith(
        "reproduction of the Open LLM Leaderboard v2 settings")
    for score in model.scores.values():
        assert score.normalized and score.raw is not None and score.value is not None
        assert 0 <= score.value <= 100
    assert model.average == pytest.approx(sum(s.value for s in model.scores.values()) / len(model.scores))
    assert result.not_evaluated == {}


def test_chat_template_setting_matches_lm_eval_and_is_a_different_check(tiny_ref, tmp_path):
    """--chat-template = lm-eval's apply_chat_template + fewshot_as_multiturn (BBH's 3 shots as turns)."""
    task = "leaderboard_bbh_date_understanding"
    suite = load_suite("leaderboard-v2").subset([task])
    store = tmp_path / "chat.db"
    evaluate(tiny_ref, suite=suite, limit=LIMIT, store=store, data_dir=FIXTURES, backend="hf", dtype="float32",
             chat_template=True)
    loader = TaskLoader(suite, data_dir=FIXTURES)
    bench = suite.benchmark_of(task)
    chat = loader.load(task, bench, dtype="float32", apply_chat_template=True)
    plain = loader.load(task, bench, dtype="float32")
    assert chat.check_hash != plain.check_hash
    assert chat.check_config["apply_chat_template"] is True and chat.check_config["fewshot_as_multiturn"] is True
    assert "fewshot_as_multiturn" not in plain.check_config  # v1 identities are unchanged
    direct = _direct(loader, make_lm(tiny_ref, "hf"), task, bench, apply_chat_template=True,
                     fewshot_as_multiturn=True)
    samples = {str(s["doc_id"]): s for s in direct["samples"][task]}
    with Store(store) as db:
        items = {i.item_id: i for i in db.items(tiny_ref.fingerprint, chat.check_hash, with_data=True)}
        assert db.count_items(tiny_ref.fingerprint, plain.check_hash) == 0
    assert set(items) == set(samples)
    for item_id, ours in items.items():
        assert ours.data["prompt_hash"] == samples[item_id]["prompt_hash"]
        assert ours.metrics["acc_norm,none"] == pytest.approx(samples[item_id]["acc_norm"], abs=1e-6)
    # The chat prompt really is the model's template, with the few-shot examples as turns.
    context = samples["0"]["arguments"][0][0]  # (context, continuation) of the first choice
    assert context.count("<|im_start|>user") == 4 and context.count("<|im_start|>assistant") == 4
