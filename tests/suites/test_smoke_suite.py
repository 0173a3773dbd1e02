"""The bundled offline smoke suite: it loads with no network from any working directory, its items have
valid gold answers (GSM8K's arithmetic included), its prompts are lm-eval's leaderboard prompts, and a
model runs through all six tasks with lm-eval's simple_evaluate."""

from __future__ import annotations

import ast
import json
import operator
import re
from pathlib import Path

import pytest

from mergeval.errors import UserError
from mergeval.suites import smoke

# The metric keys the Open LLM Leaderboard v1 reads (and the extra ones lm-eval reports alongside).
EXPECTED_METRICS = {
    "smoke_arc": {"acc,none", "acc_norm,none"},
    "smoke_hellaswag": {"acc,none", "acc_norm,none"},
    "smoke_truthfulqa_mc2": {"acc,none"},
    **{f"smoke_mmlu_{subject}": {"acc,none"} for subject in smoke.MMLU_SUBJECTS},
    "smoke_winogrande": {"acc,none"},
    "smoke_gsm8k": {"exact_match,strict-match", "exact_match,flexible-extract"},
}

# Fewer items than this would make the smoke scores too noisy to tell a broken merge (MMLU: per subject).
MINIMUM_ITEMS = {"smoke_arc": 20, "smoke_hellaswag": 16, "smoke_truthfulqa_mc2": 12, "smoke_winogrande": 20}

# The lm-eval task each smoke task copies the format of (YAML paths inside lm_eval/tasks).
LM_EVAL_ORIGINALS = {
    "smoke_arc": "arc/arc_challenge.yaml",
    "smoke_hellaswag": "hellaswag/hellaswag.yaml",
    "smoke_truthfulqa_mc2": "truthfulqa/truthfulqa_mc2.yaml",
    **{f"smoke_mmlu_{s}": f"mmlu/default/mmlu_{s}.yaml" for s in smoke.MMLU_SUBJECTS},
    "smoke_winogrande": "winogrande/default.yaml",
    "smoke_gsm8k": "gsm8k/gsm8k.yaml",
}


@pytest.fixture(scope="module")
def manager():
    return smoke.task_manager()


@pytest.fixture(scope="module")
def tasks(manager, tmp_path_factory):
    """Every smoke task, loaded while the working directory is an unrelated empty folder."""
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("elsewhere"))
    try:
        return manager.load(smoke.task_configs(manager=manager))["tasks"]
    finally:
        os.chdir(cwd)


def _jsonl_rows(dataset: str) -> dict[str, list[dict]]:
    """{'<config>/<split>': rows} straight from the bundled JSONL files."""
    folder = smoke.DATA_DIR / "mergeval" / dataset
    return {
        f"{path.parent.name}/{path.stem}": [json.loads(line) for line in path.read_text().splitlines()]
        for path in sorted(folder.glob("*/*.jsonl"))
    }


def test_the_task_folder_defines_exactly_the_suite(manager):
    assert sorted(manager.all_subtasks) == sorted(smoke.TASK_NAMES)
    assert {smoke.MMLU_TAG, smoke.SUITE_TAG} <= set(manager.all_tags)
    # (Loading a tag by name would read the YAML's relative dataset_path: look at the index instead.)
    assert sorted(manager.task_index[smoke.MMLU_TAG].tags) == sorted(f"smoke_mmlu_{s}" for s in smoke.MMLU_SUBJECTS)
    assert sorted(manager.task_index[smoke.SUITE_TAG].tags) == sorted(smoke.TASK_NAMES)
    # One subject from each MMLU category, under its real MMLU subject name.
    assert sorted(smoke.MMLU_SUBJECTS.values()) == ["humanities", "other", "social_sciences", "stem"]


def test_configs_point_at_the_bundled_data_with_absolute_paths(manager):
    configs = smoke.task_configs(manager=manager)
    assert [c["task"] for c in configs] == smoke.TASK_NAMES
    for config in configs:
        path = Path(config["dataset_path"])
        assert path.is_absolute() and (path / "README.md").is_file(), config["task"]
        overrides = smoke.task_overrides(config["task"], manager)
        assert overrides == {key: config[key] for key in ("dataset_path", "dataset_kwargs")}
    # Tags expand; unknown names are a clear error.
    mmlu_tasks = [f"smoke_mmlu_{subject}" for subject in smoke.MMLU_SUBJECTS]
    assert [c["task"] for c in smoke.task_configs([smoke.MMLU_TAG, "smoke_arc"], manager)] == [*mmlu_tasks, "smoke_arc"]
    with pytest.raises(UserError, match="smoke_arc"):
        smoke.task_configs(["arc_challenge"], manager)
    with pytest.raises(UserError, match="tag"):
        smoke.task_overrides(smoke.MMLU_TAG, manager)


def test_every_dataset_loads_offline_with_datasets(manager):
    import datasets

    for config in smoke.task_configs(manager=manager):
        loaded = datasets.load_dataset(config["dataset_path"], config.get("dataset_name"), **config["dataset_kwargs"])
        for key in ("training_split", "validation_split", "test_split", "fewshot_split"):
            if config.get(key):
                assert len(loaded[config[key]]) > 0, (config["task"], key)


def test_dataset_cache_follows_the_data_files(tmp_path, monkeypatch):
    """Editing a JSONL file must reach the next load (plain `datasets` would serve its stale Arrow cache)."""
    import shutil

    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    folder = shutil.copytree(smoke.DATA_DIR / "mergeval" / "smoke_winogrande", tmp_path / "smoke_winogrande")
    cache_before = smoke.dataset_cache_dir(folder)
    first = datasets.load_dataset(str(folder), "winogrande_xl", cache_dir=str(cache_before))["validation"]
    data_file = folder / "winogrande_xl" / "validation.jsonl"
    rows = data_file.read_text().splitlines()
    data_file.write_text("\n".join(rows[:3]) + "\n")
    cache_after = smoke.dataset_cache_dir(folder)
    assert cache_after != cache_before and str(cache_after).startswith(str(tmp_path / "cache"))
    second = datasets.load_dataset(str(folder), "winogrande_xl", cache_dir=str(cache_after))["validation"]
    assert (len(first), len(second)) == (len(rows), 3)
    # Unchanged content: the same cache folder, so the Arrow files are reused.
    assert smoke.dataset_cache_dir(folder) == cache_after


def test_tasks_load_from_any_cwd_with_enough_items_and_few_shot_examples(tasks, manager):
    assert sorted(tasks) == sorted(smoke.TASK_NAMES)
    for config in smoke.task_configs(manager=manager):
        # The task sees exactly the rows of its JSONL file (no stale cache in between).
        split = config.get("test_split") or config["validation_split"]
        data_file = Path(config["dataset_path"]) / (config.get("dataset_name") or "default") / f"{split}.jsonl"
        assert len(tasks[config["task"]].eval_docs) == len(data_file.read_text().splitlines()), config["task"]
    for name, task in tasks.items():
        assert len(task.eval_docs) >= MINIMUM_ITEMS.get(name, 8), name
        shots = task.get_config("num_fewshot")
        if shots:
            assert len(task.fewshot_docs()) >= shots, name
    assert tasks["smoke_truthfulqa_mc2"].get_config("num_fewshot") == 0
    # MMLU takes its 5 shots from a 5-item dev split, in order, as the leaderboard does.
    for subject in smoke.MMLU_SUBJECTS:
        task = tasks[f"smoke_mmlu_{subject}"]
        assert len(task.fewshot_docs()) == 5 == task.get_config("num_fewshot")


def test_multiple_choice_gold_answers_are_valid(tasks):
    for name, task in tasks.items():
        if task.get_config("output_type") != "multiple_choice":
            continue
        for doc in task.eval_docs:
            choices = task.doc_to_choice(doc)
            # Winogrande scores the sentence's ending after each filled-in option: the gold choice's index
            # is what doc_to_text returns (lm-eval's "multiple inputs" form).
            gold = task.doc_to_text(doc) if name == "smoke_winogrande" else task.doc_to_target(doc)
            assert isinstance(gold, int) and 0 <= gold < len(choices) >= 2, (name, doc)
            assert len(set(choices)) == len(choices), (name, choices)


def test_raw_items_follow_the_real_datasets_schemas():
    for rows in _jsonl_rows("smoke_arc").values():
        for row in rows:
            labels = row["choices"]["label"]
            assert row["answerKey"] in labels and len(set(labels)) == len(labels) == len(row["choices"]["text"])
    for rows in _jsonl_rows("smoke_hellaswag").values():
        for row in rows:
            assert len(row["endings"]) == 4 and row["label"] in {"0", "1", "2", "3"}
            assert row["ctx"] == (row["ctx_a"] + " " + row["ctx_b"]).strip()
    for row in _jsonl_rows("smoke_truthfulqa")["multiple_choice/validation"]:
        mc1, mc2 = row["mc1_targets"], row["mc2_targets"]
        assert mc1["labels"][0] == 1 and sum(mc1["labels"]) == 1
        assert 1 in mc2["labels"] and 0 in mc2["labels"] and len(mc2["labels"]) == len(mc2["choices"])
        # The single best answer of MC1 is one of MC2's true answers; MC1's false answers are MC2's.
        true_mc2 = {c for c, label in zip(mc2["choices"], mc2["labels"]) if label}
        assert mc1["choices"][0] in true_mc2
        assert set(mc1["choices"][1:]) == set(mc2["choices"]) - true_mc2
    for key, rows in _jsonl_rows("smoke_mmlu").items():
        subject, split = key.split("/")
        assert subject in smoke.MMLU_SUBJECTS
        assert len(rows) == 5 if split == "dev" else len(rows) >= 8
        for row in rows:
            assert row["subject"] == subject and len(row["choices"]) == 4 and row["answer"] in range(4)
    for rows in _jsonl_rows("smoke_winogrande").values():
        for row in rows:
            assert row["sentence"].count("_") == 1 and row["answer"] in {"1", "2"}
            assert row["option1"] != row["option2"]


_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _calculate(expression: str) -> float:
    """Evaluate + - * / arithmetic on numbers (and nothing else)."""

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(f"not plain arithmetic: {expression!r}")

    return walk(ast.parse(expression, mode="eval").body)


def test_gsm8k_answers_do_their_arithmetic_right(tasks):
    task = tasks["smoke_gsm8k"]
    strict = next(f for f in task.config.filter_list if f["name"] == "strict-match")
    strict_pattern = re.compile(strict["filter"][0]["regex_pattern"])
    for rows in _jsonl_rows("smoke_gsm8k").values():
        for row in rows:
            answer = row["answer"]
            steps = re.findall(r"<<([^=<>]+)=([^<>]+)>>", answer)
            assert steps, answer
            for expression, claimed in steps:
                assert _calculate(expression) == pytest.approx(float(claimed)), (expression, claimed)
                # The text shows the annotation's result right after it, as in GSM8K.
                assert f"<<{expression}={claimed}>>{claimed}" in answer
            final = answer.rsplit("#### ", 1)[1]
            assert final == final.strip() and float(final) == pytest.approx(float(steps[-1][1]))
            # The leaderboard's strict extraction finds the number in the reference answer.
            assert strict_pattern.search(answer).group(1) == final


def test_gsm8k_scoring_accepts_the_reference_answers(tasks):
    """A model that answered with the reference solution gets exact_match 1 under both filters."""
    from lm_eval.api.instance import Instance

    task = tasks["smoke_gsm8k"]
    docs = list(task.eval_docs)
    instances = []
    for i, doc in enumerate(docs):
        instance = Instance(request_type="generate_until", doc=doc, arguments=("", {}), idx=0,
                            metadata=("smoke_gsm8k", i, 1))
        instance.resps = [" " + doc["answer"]]
        instances.append(instance)
    task._instances = instances
    task.apply_filters()
    for name in ("strict-match", "flexible-extract"):
        for doc, instance in zip(docs, instances):
            filtered = instance.filtered_resps[name]
            assert task.process_results(doc, [filtered])["exact_match"] == 1.0, (name, filtered)


def test_prompts_are_the_leaderboard_tasks_prompts(manager, tasks):
    """lm-eval's own leaderboard task definitions, pointed at the smoke data, build the same prompts, choices
    and targets as the smoke tasks: the formats are identical, only the items and shot counts differ."""
    import lm_eval
    from lm_eval.tasks._yaml_loader import load_yaml

    lm_eval_tasks = Path(lm_eval.__file__).parent / "tasks"
    for name, relative in LM_EVAL_ORIGINALS.items():
        original = load_yaml(lm_eval_tasks / relative, resolve_func=True)
        original.update(smoke.task_overrides(name, manager), num_fewshot=0)
        reference = manager.load([original])["tasks"][original["task"]]
        ours = tasks[name]
        assert ours.get_config("output_type") == reference.get_config("output_type")
        assert ours.get_config("description") == reference.get_config("description"), name
        assert [m["metric"] for m in ours.config.metric_list] == [m["metric"] for m in reference.config.metric_list]
        assert ours.config.filter_list == reference.config.filter_list, name
        ref_docs, our_docs = list(reference.eval_docs), list(ours.eval_docs)
        assert len(ref_docs) == len(our_docs)
        for ref_doc, our_doc in zip(ref_docs, our_docs):
            assert ours.doc_to_text(our_doc) == reference.doc_to_text(ref_doc), name
            assert ours.doc_to_target(our_doc) == reference.doc_to_target(ref_doc), name
            if ours.get_config("output_type") == "multiple_choice":
                assert ours.doc_to_choice(our_doc) == reference.doc_to_choice(ref_doc), name
    # TruthfulQA's MC2 score: ours and lm-eval's agree on made-up log-likelihoods.
    reference_mc2 = load_yaml(lm_eval_tasks / LM_EVAL_ORIGINALS["smoke_truthfulqa_mc2"])["process_results"]
    ours_mc2 = tasks["smoke_truthfulqa_mc2"].config.process_results
    doc = next(iter(tasks["smoke_truthfulqa_mc2"].eval_docs))
    results = [(-1.0 - 0.7 * i, False) for i in range(len(doc["mc2_targets"]["choices"]))]
    assert ours_mc2(doc, results)["acc"] == pytest.approx(reference_mc2(doc, results)["acc"])


def test_a_model_runs_through_the_whole_suite(tasks, tiny_model_dir):
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(tiny_model_dir), batch_size=8, device="cpu")
    manager = smoke.task_manager()
    output = simple_evaluate(
        model=lm, tasks=smoke.task_configs(manager=manager), task_manager=manager, limit=2, bootstrap_iters=0,
        gen_kwargs={"max_gen_toks": 16},  # a random model never stops by itself: keep GSM8K's answers short
    )
    results = output["results"]
    assert set(results) >= set(smoke.TASK_NAMES)
    for name, metrics in EXPECTED_METRICS.items():
        for key in metrics:
            assert 0.0 <= results[name][key] <= 1.0, (name, key)
        # One sample per (item, filter): GSM8K logs each item under both of its filters.
        assert {sample["doc_id"] for sample in output["samples"][name]} == {0, 1}, name
    # The few-shot counts come from the task files (the leaderboard's formats, fewer shots).
    assert {name: output["n-shot"][name] for name in smoke.TASK_NAMES} == {
        "smoke_arc": 5, "smoke_hellaswag": 3, "smoke_truthfulqa_mc2": 0,
        **{f"smoke_mmlu_{s}": 5 for s in smoke.MMLU_SUBJECTS}, "smoke_winogrande": 5, "smoke_gsm8k": 3,
    }
