"""The text checks (perplexity, bleu, consistency) in a plan: run, compare, paired statistics, facts, gates.

Two tiny random models (a candidate and its parent) go through `run_plan`, the library call behind
`mergeval run`; every number in the report is checked against the text-metrics library reading the same
store, so the plan adapter cannot drift from the checks it wraps.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from mergeval.analysis import compare_plan, run_plan, write_reports
from mergeval.checks.bleu import BleuConfig, bleu_scores
from mergeval.checks.consistency import ConsistencyConfig, consistency_scores
from mergeval.checks.perplexity import PerplexityConfig, perplexity_scores, word_perplexity_shares
from mergeval.plan import PlanError, load_plan, parse_plan, plan_vocabulary
from mergeval.store import ItemRow, Store
from mergeval.testing import make_tiny_llama

torch.set_num_threads(1)  # the machine runs many test processes at once; generation is tiny anyway

PAIRS = [
    {
        "id": "capital",
        "prompt_a": "What is the capital of France?",
        "prompt_b": "Which city is France's capital?",
        "answer": "Paris",
    },
    {"id": "sum", "prompt_a": "What is two plus two?", "prompt_b": "Add 2 and 2.", "answer": ["4", "four"]},
    {"id": "sun", "prompt_a": "Is the sun a star?", "prompt_b": "What kind of object is the sun?"},
    {"id": "fruit-planet", "prompt_a": "Name a fruit.", "prompt_b": "Name a planet.", "expect": "differ"},
]

PLAN = """\
title: text metrics of a tiny merge
models:
  - candidate: ./merged
  - parent: ./parent
checks:
  - type: perplexity
    context_length: 64
    stride: 32
  - type: bleu
    max_new_tokens: 12
  - type: consistency
    pairs: data/pairs.jsonl
    max_new_tokens: 8
gates:
  - conflict_rate < 5%
  - perplexity <= mean(parents)
  - bits_per_byte <= parent
  - no regressions on perplexity, consistency
settings:
  dtype: float32
  n_boot: 1000
store: results/mergeval.db
"""

BENCHMARKS = ("perplexity", "bleu", "chrf", "consistency")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("textplan")
    make_tiny_llama(root / "merged", seed=1)
    make_tiny_llama(root / "parent", seed=2)
    (root / "data").mkdir()
    (root / "data" / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    (root / "mergeval.yaml").write_text(PLAN)
    report = run_plan(root / "mergeval.yaml")
    return root, report


def _library_summaries(root, fingerprint):
    """What the text-metrics library reads from the store for the plan's settings (dtype float32)."""
    with Store(root / "results" / "mergeval.db", create=False) as store:
        return (
            perplexity_scores(
                store, fingerprint, PerplexityConfig(context_length=64, stride=32, dtype="float32")
            ),
            bleu_scores(store, fingerprint, BleuConfig(max_new_tokens=12, dtype="float32")),
            consistency_scores(
                store,
                fingerprint,
                ConsistencyConfig(
                    pairs=str(root / "data" / "pairs.jsonl"), max_new_tokens=8, dtype="float32"
                ),
            ),
        )


def test_report_has_the_text_benchmarks_with_the_library_values(project):
    root, report = project
    benchmarks = {b["name"]: b for b in report["benchmarks"]}
    assert set(BENCHMARKS) <= set(benchmarks)
    assert benchmarks["perplexity"]["higher_is_better"] is False
    assert all(benchmarks[b]["higher_is_better"] for b in ("bleu", "chrf", "consistency"))
    assert report["missing"] == []

    for model in report["models"]:
        scores = report["scores"][model["name"]]
        ppl, bleu, cons = _library_summaries(root, model["fingerprint"])
        assert ppl.n_documents == ppl.n_target > 0 and bleu.n_items == bleu.n_target == 10
        assert cons.n_pairs == len(PAIRS)
        # the benchmark values are the corpus numbers, not means of per-item scores
        assert scores["perplexity"]["value"] == pytest.approx(ppl.word_perplexity, rel=1e-9)
        assert scores["bleu"]["value"] == pytest.approx(bleu.bleu)
        assert scores["chrf"]["value"] == pytest.approx(bleu.chrf)
        assert scores["consistency"]["value"] == pytest.approx(100 * (1 - cons.conflict_rate))
        for name in BENCHMARKS:
            assert scores[name]["n"] == scores[name]["n_target"]
        # the perplexity CI is in perplexity units and brackets the value (the shares' mean is the value)
        assert scores["perplexity"]["ci_low"] <= ppl.word_perplexity <= scores["perplexity"]["ci_high"]
        facts = report["facts"][model["name"]]
        assert facts["conflict_rate"] == pytest.approx(cons.conflict_rate)
        assert facts["bits_per_byte"] == pytest.approx(ppl.bits_per_byte)


def test_candidate_is_compared_with_its_parent_item_by_item(project):
    _, report = project
    rows = {c["benchmark"]: c for c in report["comparisons"] if c["reference"] == "parent"}
    assert set(BENCHMARKS) <= set(rows)
    assert rows["consistency"]["test"] == "mcnemar" and rows["consistency"]["n_paired"] == len(PAIRS)
    assert rows["bleu"]["n_paired"] == rows["chrf"]["n_paired"] == 10
    ppl = rows["perplexity"]
    assert ppl["n_paired"] == report["scores"]["merged"]["perplexity"]["n"]
    # linearised shares: the paired means are exactly the corpus word perplexities
    merged, parent = (report["scores"][m]["perplexity"]["value"] for m in ("merged", "parent"))
    assert ppl["candidate_value"] == pytest.approx(merged, rel=1e-9)
    assert ppl["reference_value"] == pytest.approx(parent, rel=1e-9)
    assert ppl["diff"] == pytest.approx(merged - parent, rel=1e-6)
    assert ppl["ci_low"] <= ppl["diff"] <= ppl["ci_high"]
    assert {r["benchmark"] for r in report["regressions"]} >= set(BENCHMARKS)


def test_gates_on_text_metrics_are_evaluated(project):
    _, report = project
    gates = {g["name"]: g for g in report["gates"]}
    merged = report["facts"]["merged"]
    parent_ppl = report["scores"]["parent"]["perplexity"]["value"]
    merged_ppl = report["scores"]["merged"]["perplexity"]["value"]
    expected = {
        "conflict_rate < 5%": merged["conflict_rate"] < 0.05,
        "perplexity <= mean(parents)": merged_ppl <= parent_ppl,
        "bits_per_byte <= parent": merged["bits_per_byte"] <= report["facts"]["parent"]["bits_per_byte"],
    }
    for name, ok in expected.items():
        assert gates[name]["status"] == ("pass" if ok else "fail"), gates[name]
    regression_gate = gates["no regressions on perplexity, consistency"]
    assert regression_gate["status"] in ("pass", "fail"), regression_gate
    assert report["verdict"]["exit_code"] in (0, 1)


def test_reports_render_and_a_second_run_computes_nothing(project, tmp_path):
    root, report = project
    written = write_reports(report, tmp_path)
    assert "Perplexity" in written["md"].read_text()
    saved = json.loads(written["json"].read_text())
    assert {b["name"] for b in saved["benchmarks"]} >= set(BENCHMARKS)

    with Store(root / "results" / "mergeval.db", create=False) as store:
        runs_before = len(store.runs())
    again = run_plan(root / "mergeval.yaml")
    with Store(root / "results" / "mergeval.db", create=False) as store:
        assert len(store.runs()) == runs_before  # everything was in the store: no model was run
    assert again["scores"] == report["scores"]
    assert again["facts"] == report["facts"]


def test_compare_lists_a_model_without_results_and_leaves_its_gates_open(project):
    root, _ = project
    make_tiny_llama(root / "other", seed=3)
    plan = PLAN.replace("  - parent: ./parent\n", "  - parent: ./parent\n  - baseline: ./other\n").replace(
        "  - conflict_rate < 5%\n", "  - conflict_rate < 5%\n  - conflict_rate <= other\n"
    )
    (root / "with-baseline.yaml").write_text(plan)
    report = compare_plan(root / "with-baseline.yaml")  # reads the store only; `other` was never run
    missing = {(m["model"], m["benchmark"]) for m in report["missing"]}
    assert missing == {("other", b) for b in BENCHMARKS}
    assert all(m["detail"] == "not evaluated yet" for m in report["missing"])
    gates = {g["name"]: g for g in report["gates"]}
    assert gates["conflict_rate <= other"]["status"] == "not evaluated"
    assert gates["conflict_rate < 5%"]["status"] in ("pass", "fail")
    assert "other" not in report["facts"]


def test_word_perplexity_shares_average_to_the_corpus_perplexity():
    docs = [(-40.0, 10), (-95.5, 31), (-12.25, 2), (-60.0, 15)]  # (log-likelihood, words)
    rows = [ItemRow(str(i), {"loglikelihood": ll, "n_words": w}) for i, (ll, w) in enumerate(docs)]
    shares = word_perplexity_shares(rows)
    corpus = math.exp(-sum(ll for ll, _ in docs) / sum(w for _, w in docs))
    assert sum(shares.values()) / len(shares) == pytest.approx(corpus, rel=1e-12)
    # a document with more loss per word than the corpus (6.1 nats vs 3.6) has a share above the corpus
    # value, one with less (3.1) below it
    assert shares["2"] > corpus > shares["1"]
    assert word_perplexity_shares([]) == {}


def _plan_with(tmp_path, checks: str, gates: str = "") -> str:
    make_tiny_llama(tmp_path / "m", seed=0)
    text = f"models:\n  - candidate: ./m\nchecks:\n{checks}" + (f"gates:\n{gates}" if gates else "")
    (tmp_path / "mergeval.yaml").write_text(text)
    return text


@pytest.mark.parametrize(
    ("checks", "line", "words"),
    [
        ("  - type: consistency\n    pairs: nowhere.jsonl\n", 5, ["pairs nowhere.jsonl does not exist"]),
        ("  - type: perplexity\n    text: missing_docs/\n", 5, ["text missing_docs/ does not exist"]),
        (
            "  - type: perplexity\n    context_length: 64\n    stride: 128\n",
            4,
            ["stride 128", "context_length 64"],
        ),
        ("  - type: bleu\n    tokenize: klingon\n", 5, ["unknown sacrebleu tokenizer 'klingon'", "13a"]),
        ("  - type: bleu\n    max_new_token: 5\n", 5, ["unknown key 'max_new_token'", "max_new_tokens"]),
    ],
)
def test_bad_text_check_entries_are_plan_errors_with_the_line(tmp_path, checks, line, words):
    _plan_with(tmp_path, checks)
    with pytest.raises(PlanError) as err:
        load_plan(tmp_path / "mergeval.yaml")
    message = str(err.value)
    assert f"mergeval.yaml:{line}:" in message
    for word in words:
        assert word in message


def test_a_second_check_of_a_type_gets_prefixed_names(tmp_path):
    _plan_with(
        tmp_path,
        "  - type: perplexity\n  - type: perplexity\n    name: long\n    context_length: 512\n"
        "  - consistency\n",
        "  - long.bits_per_byte <= 2\n  - conflict_rate < 5%\n",
    )
    plan = load_plan(tmp_path / "mergeval.yaml")
    vocab = plan_vocabulary(plan)
    assert set(vocab.benchmarks) == {"perplexity", "long.perplexity", "consistency"}
    assert set(vocab.facts) == {"bits_per_byte", "long.bits_per_byte", "conflict_rate"}
    with pytest.raises(PlanError, match="unknown task 'perplexity_wiki'"):
        parse_plan(
            "models:\n  - candidate: ./m\nchecks:\n  - perplexity\ngates:\n  - perplexity_wiki <= 10\n",
            source=tmp_path / "mergeval.yaml",
        )
