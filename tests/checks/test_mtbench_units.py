"""The MT-Bench check types on the core protocol: a judging work unit is plain data that runs in another
process without the store (the verdicts it makes come back as cache entries), every stored check row is the
dict its hash is made of, and the MT-Bench bands are MetricSpec data."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from mergeval.checks.mtbench import (
    JUDGMENT_CACHE,
    MTBenchConfig,
    generate_answers,
    judge_single,
    mtbench_metrics,
    single_check,
    single_task,
    stored_answers,
)
from mergeval.checks.pairwise import judge_pairwise
from mergeval.core.identity import content_hash
from mergeval.core.runner import WorkUnit
from mergeval.engines.chat import GenerationConfig, OpenAIJudge, load_judge_prompts, load_questions
from mergeval.models import resolve
from mergeval.store import Store

GEN = GenerationConfig(max_new_tokens=16)
QUESTIONS = [next(q for q in load_questions() if q.category == c) for c in ("writing", "math")]

RUN_UNIT = textwrap.dedent("""
    import json, sys
    from mergeval.core.runner import WorkUnit, run_unit
    unit = WorkUnit.from_json(json.load(open(sys.argv[1])))
    check = unit.check
    engine = check.load(unit.config, unit.model, unit.stage, unit.env)
    out = [{"items": [[i.item_id, i.metrics, i.data] for i in b.items], "cache": b.cache, "stats": b.stats}
           for b in run_unit(check, engine, unit)]
    print(json.dumps(out))
""")


def _answered(store, scripted_server, name):
    server = scripted_server(lambda body, i: f"{name} answer {i}")
    ref = resolve(f"openai:{name}@{server.base_url}", name=name)
    generate_answers(store, ref, QUESTIONS, generation=GEN, concurrency=1)
    return ref


def test_a_judging_unit_runs_from_json_in_another_process(tmp_path, scripted_server):
    # the rating depends on what is asked (not on the request's index), so both processes get the same ones
    judge_server = scripted_server(
        lambda body, i: f"Fine. [[{3 + sum(map(ord, json.dumps(body['messages'], sort_keys=True))) % 5}]]")
    judge = OpenAIJudge("j", judge_server.base_url, concurrency=1)
    prompts = load_judge_prompts()
    with Store(tmp_path / "s.db") as store:
        ref = _answered(store, scripted_server, "m")
        answers = stored_answers(store, ref, QUESTIONS, GEN)
        task = single_task(store, ref, QUESTIONS, judge, answers, generation=GEN, prompts=prompts, repeats=1,
                           parser="fastchat")
        unit = WorkUnit(ref, "mtbench", MTBenchConfig(max_new_tokens=16), "judgments", task, task.item_ids)
    unit_file = tmp_path / "unit.json"
    unit_file.write_text(json.dumps(unit.to_json()))  # plain JSON: no store path in it, no objects
    assert str(tmp_path / "s.db") not in unit_file.read_text()

    proc = subprocess.run([sys.executable, "-c", RUN_UNIT, str(unit_file)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    batches = json.loads(proc.stdout)
    rows = {item_id: (metrics, data) for b in batches for item_id, metrics, data in b["items"]}
    cache = {key: value for b in batches for namespace, key, value in b["cache"] if namespace == JUDGMENT_CACHE}
    assert set(rows) == set(task.item_ids) and len(cache) == 4 == len(judge_server.requests)
    assert batches[-1]["stats"] == {"judge_calls": 4, "cache_hits": 0, "unparsed": 0}

    # the same judging in this process, through the runner, stores the same rows
    with Store(tmp_path / "s.db") as store:
        summary = judge_single(store, ref, QUESTIONS, judge, generation=GEN, prompts=prompts)
        stored = {i.item_id: (i.metrics, i.data) for i in store.items(ref.fingerprint, task.hash, with_data=True)}
        assert (summary.n_new, summary.n_judge_calls) == (2, 4)
        assert {k: v["value"] for k, v in cache.items()} == {
            k: store.cache_get(JUDGMENT_CACHE, k)["value"] for k in cache}
        # a new task carries the cached verdicts of its items (here: none missing, so none needed)
        assert single_task(store, ref, QUESTIONS, judge, answers, generation=GEN, prompts=prompts, repeats=1,
                           parser="fastchat").inputs["cached"] == {}
        # ... and of an identity that has none stored yet: the verdicts it can reuse (repeat 0 of repeats=2)
        twice = single_task(store, ref, QUESTIONS, judge, answers, generation=GEN, prompts=prompts, repeats=2,
                            parser="fastchat")
        assert set(twice.inputs["cached"]) == set(cache)
    # the other process saw the same answers and asked for the same ratings: same scores per question
    assert {k: m["score_t1"] for k, (m, _) in rows.items()} == {k: m["score_t1"] for k, (m, _) in stored.items()}


def test_each_stored_chat_check_row_is_the_dict_its_hash_is_made_of(tmp_path, scripted_server):
    judge = OpenAIJudge("j", scripted_server(lambda body, i: "[[A]] [[5]]").base_url)
    with Store(tmp_path / "s.db") as store:
        a, b = _answered(store, scripted_server, "a"), _answered(store, scripted_server, "b")
        judge_single(store, a, QUESTIONS, judge, generation=GEN)
        judge_pairwise(store, a, b, QUESTIONS, judge, generation=GEN)
        rows = [r for r in store.checks() if r.kind.startswith("mtbench-")]
        assert sorted(r.kind for r in rows) == ["mtbench-answers", "mtbench-pair", "mtbench-single"]
        for row in rows:
            assert row.config["kind"] == row.kind and content_hash(row.config) == row.hash
        assert single_check(QUESTIONS, judge, generation=GEN).hash in {r.hash for r in rows}


@pytest.mark.parametrize(("score", "band"), [
    (0.0, "poor conversation"), (5.99, "poor conversation"), (6.0, "acceptable"), (7.5, "good"),
    (8.0, "excellent"), (9.0, "near human level"), (10.0, "near human level"),
])
def test_the_mtbench_bands_are_metric_spec_data(score, band):
    spec = mtbench_metrics()[0]
    assert (spec.name, spec.scale, spec.range, spec.unit, spec.higher_is_better) == ("mtbench", 1.0, (1.0, 10.0),
                                                                                      "1-10", True)
    assert spec.band(score) == band
