"""MT-Bench in plans and on the command line: the `mtbench` and `pairwise` check types, `mergeval mtbench`.

Two tiny random models (a candidate and its parent) answer 3 bundled questions; the judge is a real
OpenAI-compatible HTTP server on 127.0.0.1 (tests/chat_servers.py) whose replies follow fixed rules:
  - single grading: a rating that depends on the length of the prompt (so the models get different scores),
    except the first question's turn 1, which never gets a rating (not even after the format reminder): it
    must be counted as unparsed;
  - A/B: the longer answer wins, equal lengths tie; the rule looks at content only, so the judge is
    position-consistent and both orders must agree.
Every number in the report is checked against the chat library reading the same store.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mergeval.analysis import compare_plan, run_plan, write_reports
from mergeval.analysis.bands import mtbench_band
from mergeval.checks.mtbench import generate_answers, mtbench_scores, stored_answers
from mergeval.checks.pairwise import pairwise_summary
from mergeval.engines.chat import GenerationConfig, OpenAIJudge, fastchat_answers_ref, load_questions
from mergeval.engines.chat.prompts import RATING_REMINDER, VERDICT_REMINDER
from mergeval.errors import UserError
from mergeval.models import resolve
from mergeval.plan import PlanError, parse_plan
from mergeval.store import Store
from mergeval.testing import make_tiny_llama

torch.set_num_threads(1)

KEY_ENV = "MERGEVAL_TEST_JUDGE_KEY"
KEY = "sk-test-7f3a9c1e5b2d4068aa11secret"
QUESTIONS = load_questions()[:3]
UNRATED = QUESTIONS[0]  # its turn-1 judgment never holds a rating

PLAN = """\
title: MT-Bench of a tiny merge
models:
  - candidate: ./merged
  - parent: ./parent
checks:
  - type: mtbench
    limit: 3
    max_new_tokens: 8
    judge: {{model: judge-model, base_url: "{url}", api_key_env: {env}, concurrency: 2}}
  - type: pairwise
    opponent: parent
    limit: 3
    max_new_tokens: 8
    judge: {{model: judge-model, base_url: "{url}", api_key_env: {env}, concurrency: 2}}
gates:
  - win_rate >= 45%
  - mtbench >= mean(parents)
  - mtbench_unparsed <= 0
settings:
  dtype: float32
  n_boot: 200
store: results/mergeval.db
output: results/report
"""


def _section(text: str, start: str, end: str) -> str:
    match = re.search(re.escape(start) + r"(.*?)" + re.escape(end), text, re.DOTALL)
    assert match, f"{start!r} not in the judge prompt"
    return match.group(1)


def judge_script(body: dict, index: int) -> str:
    messages = body["messages"]
    last = messages[-1]["content"]
    if last in (RATING_REMINDER, VERDICT_REMINDER):
        return "I would rather not give a rating."
    text = "\n".join(m["content"] for m in messages)
    if "[Answer of assistant A]" in text or "[Conversation of assistant A]" in text:
        if "[Answer of assistant A]" in text:
            a = _section(text, "[Answer of assistant A]", "[End of answer of assistant A]")
            b = _section(text, "[Answer of assistant B]", "[End of answer of assistant B]")
        else:
            a = _section(text, "[Conversation of assistant A]", "[End of conversation of assistant A]")
            b = _section(text, "[Conversation of assistant B]", "[End of conversation of assistant B]")
        verdict = "A" if len(a) > len(b) else "B" if len(b) > len(a) else "C"
        return f"Comparing both answers. [[{verdict}]]"
    if UNRATED.turns[0] in text and UNRATED.turns[1] not in text:
        return "This answer is hard to assess."
    return f"A fair attempt. Rating: [[{1 + len(text) % 10}]]"


def _judge(url: str) -> OpenAIJudge:
    """The plan's judge, for reading the store through the library (nothing is requested)."""
    return OpenAIJudge("judge-model", url, api_key_env=KEY_ENV, concurrency=2)


@pytest.fixture
def project(tmp_path, scripted_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    server = scripted_server(judge_script)
    make_tiny_llama(tmp_path / "merged", seed=1)
    make_tiny_llama(tmp_path / "parent", seed=2)
    (tmp_path / "mergeval.yaml").write_text(PLAN.format(url=server.base_url, env=KEY_ENV))
    return tmp_path, server


def test_plan_runs_mtbench_and_pairwise_and_gates_on_them(project):
    root, server = project
    report = run_plan(root / "mergeval.yaml")
    assert report["missing"] == []
    # the key reached the judge (and only the judge)
    assert server.headers and all({k.lower(): v for k, v in h.items()}.get("authorization") == f"Bearer {KEY}"
                                  for h in server.headers)

    # -- MT-Bench: the benchmark and facts are the library's numbers
    bench = {b["name"]: b for b in report["benchmarks"]}["mtbench"]
    assert bench["display"] == "MT-Bench" and bench["higher_is_better"]
    generation = GenerationConfig(max_new_tokens=8)
    library = {}
    with Store(root / "results" / "mergeval.db", create=False) as store:
        for model in report["models"]:
            ref = resolve(root / model["name"], dtype="float32")
            assert ref.fingerprint == model["fingerprint"]
            library[model["name"]] = mtbench_scores(store, ref, QUESTIONS, _judge(server.base_url),
                                                    generation=generation)
        pair = pairwise_summary(store, resolve(root / "merged"), resolve(root / "parent"), QUESTIONS,
                                _judge(server.base_url), generation=generation)
    for name, s in library.items():
        assert s.n_questions == 3 and s.n_missing == 0
        assert s.n_unparsed == 1  # the first question's turn 1, after the reminder too
        score = report["scores"][name]["mtbench"]
        assert score["value"] == pytest.approx(s.average.mean)
        assert 1 <= score["value"] <= 10
        assert score["n"] == score["n_target"] == 3
        assert report["bands"][name]["mtbench"] == mtbench_band(score["value"])  # the score band label
        facts = report["facts"][name]
        assert facts["mtbench_turn1"] == pytest.approx(s.turn1.mean)
        assert facts["mtbench_turn2"] == pytest.approx(s.turn2.mean)
        assert facts["mtbench_unparsed"] == 1

    # -- the candidate is paired with its parent question by question
    row = next(c for c in report["comparisons"] if c["benchmark"] == "mtbench" and c["reference"] == "parent")
    assert row["n_paired"] == 3

    # -- A/B: facts per candidate; a content-only judge is position-consistent
    assert pair.n_games == 6 and pair.n_missing == 0 and pair.consistency_rate == 1.0
    merged = report["facts"]["merged"]
    assert merged["win_rate"] == pytest.approx(pair.win_rate)
    assert merged["loss_rate"] == pytest.approx(pair.loss_rate)
    assert merged["tie_rate"] == pytest.approx(pair.ties / 6)
    assert merged["win_rate"] + merged["tie_rate"] + merged["loss_rate"] == pytest.approx(1.0)
    assert merged["position_consistency"] == 1.0
    assert "win_rate" not in report["facts"].get("parent", {})  # the opponent has no win rate against itself

    # -- gates are evaluated (pass or fail as the numbers say), never left open
    gates = {g["name"]: g for g in report["gates"]}
    assert gates["win_rate >= 45%"]["status"] == ("pass" if pair.win_rate >= 0.45 else "fail")
    mtbench_ok = library["merged"].average.mean >= library["parent"].average.mean
    assert gates["mtbench >= mean(parents)"]["status"] == ("pass" if mtbench_ok else "fail")
    assert gates["mtbench_unparsed <= 0"]["status"] == "fail"

    # -- reports render; the key is in neither the store nor the reports
    written = write_reports(report, root / "results" / "report")
    assert "MT-Bench" in written["md"].read_text()
    saved = json.loads(written["json"].read_text())
    assert saved["facts"]["merged"]["win_rate"] == pytest.approx(pair.win_rate)
    stored = [p for p in (root / "results").rglob("*") if p.is_file()]  # database (+ WAL) and the reports
    assert set(written.values()) <= set(stored)
    for path in stored:
        assert KEY.encode() not in path.read_bytes(), path

    # -- a second run asks the judge nothing and reports the same numbers
    requests = len(server.requests)
    again = run_plan(root / "mergeval.yaml")
    assert len(server.requests) == requests
    assert again["facts"] == report["facts"]
    assert again["scores"]["merged"]["mtbench"]["value"] == report["scores"]["merged"]["mtbench"]["value"]


def test_compare_says_what_is_missing_and_leaves_the_gates_open(project):
    """Only the candidate's answers are stored (no judgments): compare lists every gap, asks the judge nothing."""
    root, server = project
    make_tiny_llama(root / "other", seed=3)
    with Store(root / "results" / "mergeval.db") as store:
        generate_answers(store, resolve(root / "merged", dtype="float32"), QUESTIONS,
                         generation=GenerationConfig(max_new_tokens=8))
    plan = (root / "mergeval.yaml").read_text()
    plan = plan.replace("  - parent: ./parent\n", "  - parent: ./parent\n  - baseline: ./other\n")
    plan = plan.replace("  - win_rate >= 45%\n", "  - win_rate >= 45%\n  - mtbench >= other\n")
    (root / "with-baseline.yaml").write_text(plan)
    report = compare_plan(root / "with-baseline.yaml")  # reads the store only
    assert server.requests == []
    missing = {(m["model"], m["check"]): m["detail"] for m in report["missing"]}
    assert missing == {
        ("merged", "mtbench"): "incomplete: judgments stored for 0 of 3 questions",
        ("parent", "mtbench"): "not evaluated yet (no stored answers)",
        ("other", "mtbench"): "not evaluated yet (no stored answers)",
        ("merged", "pairwise"): "opponent parent: not evaluated yet (no stored answers) (vs parent)",
    }
    gates = {g["name"]: g for g in report["gates"]}
    assert gates["win_rate >= 45%"]["status"] == "not evaluated"
    assert gates["mtbench >= other"]["status"] == "not evaluated"
    assert "win_rate" not in report["facts"].get("merged", {})


def test_plan_refuses_a_key_written_where_its_variable_name_belongs(tmp_path):
    make_tiny_llama(tmp_path / "merged", seed=1)
    make_tiny_llama(tmp_path / "parent", seed=2)
    text = PLAN.format(url="http://127.0.0.1:9/v1", env=KEY)
    with pytest.raises(PlanError) as info:
        parse_plan(text, source=tmp_path / "mergeval.yaml")
    assert "NAME of an environment variable" in str(info.value)
    assert KEY not in str(info.value)
    bad = PLAN.format(url="http://127.0.0.1:9/v1", env=KEY_ENV).replace("opponent: parent", "opponent: nobody")
    with pytest.raises((PlanError, Exception)) as info:
        parse_plan(bad, source=tmp_path / "mergeval.yaml")
    assert "nobody" in str(info.value)


def test_cli_mtbench_and_mtbench_pair(tmp_path, scripted_server, monkeypatch):
    from mergeval.cli import app

    monkeypatch.setenv(KEY_ENV, KEY)
    server = scripted_server(judge_script)
    merged, parent = make_tiny_llama(tmp_path / "merged", seed=1), make_tiny_llama(tmp_path / "parent", seed=2)
    store = tmp_path / "cli.db"
    common = ["--judge", f"openai:judge-model@{server.base_url}", "--judge-key-env", KEY_ENV, "--limit", "3",
              "--max-new-tokens", "8", "--dtype", "float32", "--store", str(store)]
    runner = CliRunner()
    result = runner.invoke(app, ["mtbench", str(merged), str(parent), *common], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    judge = _judge(server.base_url)
    generation = GenerationConfig(max_new_tokens=8)
    with Store(store, create=False) as db:
        scores = [mtbench_scores(db, resolve(p, dtype="float32"), QUESTIONS, judge, generation=generation)
                  for p in (merged, parent)]
    for s in scores:
        assert s.n_questions == 3 and s.n_unparsed == 1
        line = next(row for row in result.stdout.splitlines() if row.strip("│ ").startswith(s.model))
        cells = [c.strip() for c in line.split("│") if c.strip()]
        assert cells[1:4] == [f"{s.turn1.mean:.2f}", f"{s.turn2.mean:.2f}", f"{s.average.mean:.2f}"]
        assert cells[5] == "1"  # unparsed

    requests = len(server.requests)
    result = runner.invoke(app, ["mtbench-pair", str(merged), str(parent), *common], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(server.requests) == requests + 12  # 3 questions x 2 turns x 2 orders; answers were stored
    with Store(store, create=False) as db:
        pair = pairwise_summary(db, resolve(merged), resolve(parent), QUESTIONS, judge, generation=generation)
    assert f"{pair.wins} " in result.output and f"{100 * pair.win_rate:.1f}" in result.output  # rates in %
    assert KEY not in result.output and KEY.encode() not in store.read_bytes()


ANSWER_FILES = Path(__file__).parents[1] / "engines" / "chat" / "fixtures" / "model_answer"
FIXTURE_QUESTIONS = ANSWER_FILES.parent / "question.jsonl"


def test_plan_judges_a_fastchat_answer_file_in_place_of_generating(tmp_path, scripted_server, monkeypatch):
    """`answers:` gives the parent FastChat's answer file: its answers are judged (never generated from its
    weights), in both check types, under the file's identity; a second run asks nothing."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    server = scripted_server(judge_script)
    make_tiny_llama(tmp_path / "merged", seed=1)
    make_tiny_llama(tmp_path / "parent", seed=2)
    judge = f'{{model: judge-model, base_url: "{server.base_url}", concurrency: 2}}'
    plan = tmp_path / "mergeval.yaml"
    plan.write_text(f"""\
models:
  - candidate: ./merged
  - parent: ./parent
checks:
  - type: mtbench
    questions: {FIXTURE_QUESTIONS}
    max_new_tokens: 8
    judge: {judge}
    answers:
      parent: {ANSWER_FILES / "beta-7b.jsonl"}
  - type: pairwise
    opponent: parent
    questions: {FIXTURE_QUESTIONS}
    max_new_tokens: 8
    parser: lenient
    judge: {judge}
    answers:
      parent: {ANSWER_FILES / "beta-7b.jsonl"}
settings:
  dtype: float32
  n_boot: 100
store: results/mergeval.db
""")
    report = run_plan(plan)
    assert report["missing"] == []
    questions = load_questions(FIXTURE_QUESTIONS)
    generation = GenerationConfig(max_new_tokens=8)
    imported = fastchat_answers_ref(ANSWER_FILES / "beta-7b.jsonl", "parent")
    file_answers = {str(json.loads(line)["question_id"]): tuple(json.loads(line)["choices"][0]["turns"])
                    for line in (ANSWER_FILES / "beta-7b.jsonl").read_text().splitlines()}
    with Store(tmp_path / "results" / "mergeval.db", create=False) as store:
        assert stored_answers(store, imported, questions, generation) == file_answers
        assert stored_answers(store, resolve(tmp_path / "parent", dtype="float32"), questions, generation) == {}
        parent = mtbench_scores(store, imported, questions, _judge(server.base_url), generation=generation)
        merged = resolve(tmp_path / "merged", dtype="float32")
        pair = pairwise_summary(store, merged, imported, questions, _judge(server.base_url), generation=generation,
                                parser="lenient")
    assert parent.n_questions == 6 and report["scores"]["parent"]["mtbench"]["value"] == pytest.approx(
        parent.average.mean)
    assert pair.n_games == 12 and report["facts"]["merged"]["win_rate"] == pytest.approx(pair.win_rate)
    requests = len(server.requests)
    run_plan(plan)
    assert len(server.requests) == requests

    text = plan.read_text()
    plan.write_text(text.replace(str(ANSWER_FILES / "beta-7b.jsonl"), "gone.jsonl", 1))
    with pytest.raises(UserError, match="answer file for parent, gone.jsonl, does not exist"):
        run_plan(plan)
    with pytest.raises(PlanError, match="parser"):
        parse_plan(text.replace("parser: lenient", "parser: strict"), source=plan)
    with pytest.raises(PlanError, match="unknown model.*nobody"):
        parse_plan(text.replace("      parent: ", "      nobody: ", 1), source=plan)
