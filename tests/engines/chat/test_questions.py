"""Question sets, reference answers and judge prompts: bundled files, FastChat's files, bad input."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from fractions import Fraction

import pytest

from mergeval.engines.chat import (
    CATEGORIES,
    load_judge_prompts,
    load_questions,
    load_reference_answers,
    pull_official_files,
    with_references,
)
from mergeval.engines.chat.prompts import pairwise_messages, single_messages
from mergeval.engines.chat.questions import reference_source_of
from mergeval.errors import UserError


def test_bundled_set_covers_the_eight_categories_with_two_turns_and_references():
    questions = load_questions()
    counts = Counter(q.category for q in questions)
    assert set(counts) == set(CATEGORIES)
    assert all(n >= 3 for n in counts.values())
    assert all(len(q.turns) == 2 and all(t.strip() for t in q.turns) for q in questions)
    for q in questions:
        if q.category in ("math", "reasoning", "coding"):
            assert q.reference is not None and len(q.reference) == 2, q.question_id
    assert len({q.item_id for q in questions}) == len(questions)
    assert len({q.set_id for q in questions}) == 1 and questions[0].set_id.startswith("mergeval-v1:")


def _reference(question_id: int) -> tuple[str, ...]:
    (question,) = [q for q in load_questions() if q.question_id == question_id]
    return question.reference


def test_bundled_math_references_are_correct():
    # Computed independently here, then looked for in the reference text.
    assert "x = 4" in _reference(1010)[0] and (4 ** 2 - 3 * 4 + 2) == 6 and "= 6" in _reference(1010)[1]
    width = 36 / 2 / 3
    area, new_area = width * 2 * width, (width * 2 + 3) * (width + 3)
    assert f"{area:g} square" in _reference(1011)[0]
    assert f"{(new_area - area) / area * 100:g}%" in _reference(1011)[1]
    rolls = list(itertools.product(range(1, 7), repeat=2))
    p_eight = Fraction(sum(a + b == 8 for a, b in rolls), len(rolls))
    with_three = [r for r in rolls if 3 in r]
    p_given = Fraction(sum(a + b == 8 for a, b in with_three), len(with_three))
    assert f"{p_eight.numerator}/{p_eight.denominator}" in _reference(1012)[0]
    assert f"{p_given.numerator}/{p_given.denominator}" in _reference(1012)[1]


def _code(text: str) -> str:
    return re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)


def test_bundled_coding_references_run_correctly():
    # Executing the project's own reference code (not model output) is the point of this test.
    first, second = _reference(1013)
    namespace: dict = {}
    exec(_code(first), namespace)  # noqa: S102
    exec(_code(second), namespace)  # noqa: S102
    assert namespace["is_palindrome"]("A man, a plan, a canal: Panama!")
    assert not namespace["is_palindrome"]("mergeval")

    def brute(s: str) -> str:
        palindromes = (s[i:j] for i in range(len(s)) for j in range(i + 1, len(s) + 1) if s[i:j] == s[i:j][::-1])
        return max(palindromes, key=len, default="")

    for text in ["babad", "cbbd", "abacdfgdcaba", "a", "", "forgeeksskeegfor", "abcd"]:
        assert namespace["longest_palindromic_substring"](text) == brute(text), text

    first, second = _reference(1015)
    question = next(q for q in load_questions() if q.question_id == 1015)
    snippet = re.search(r"```python\n(.*?)```", question.turns[0], re.DOTALL).group(1)
    printed: list = []
    exec(snippet, {"print": printed.append})  # noqa: S102
    assert f"`{printed[0]}`" in first and f"`{printed[1]}`" in first
    fixed: dict = {}
    exec(_code(second), fixed)  # noqa: S102
    assert fixed["add_item"](1) == [1] and fixed["add_item"](2) == [2]


def test_bundled_sql_reference_runs_on_sqlite():
    import sqlite3

    first, second = _reference(1014)
    db = sqlite3.connect(":memory:")
    db.executescript("""
        CREATE TABLE customers (id INTEGER, name TEXT);
        CREATE TABLE orders (id INTEGER, customer_id INTEGER, order_date TEXT);
        INSERT INTO customers VALUES (1, 'Ada'), (2, 'Bo'), (3, 'Cy');
    """)
    orders = [(1, "2023-01-05")] * 4 + [(1, "2022-12-31")] + [(2, "2023-03-01")] * 3 + [(3, "2023-12-31")] * 5
    db.executemany("INSERT INTO orders VALUES (NULL, ?, ?)", orders)

    def sql(text: str) -> str:
        return re.search(r"```sql\n(.*?)```", text, re.DOTALL).group(1)

    assert sorted(db.execute(sql(first)).fetchall()) == [("Ada",), ("Cy",)]
    assert db.execute(sql(second)).fetchall() == [("Cy", 5), ("Ada", 4)]


def test_official_questions_and_reference_file(mt_bench_dir):
    questions = load_questions(mt_bench_dir / "question.jsonl")
    assert len(questions) == 80
    assert Counter(q.category for q in questions) == {c: 10 for c in CATEGORIES}
    assert reference_source_of(questions) == "embedded"
    refs = load_reference_answers(mt_bench_dir / "reference_answer")  # a folder with one file works too
    assert len(refs) == 30
    with_file = load_questions(mt_bench_dir / "question.jsonl",
                               reference_answers=mt_bench_dir / "reference_answer" / "gpt-4.jsonl")
    by_id = {q.question_id: q for q in with_file}
    assert by_id[111].reference == refs["111"]  # the file wins over the embedded short reference
    assert by_id[101].reference != {q.question_id: q for q in questions}[101].reference
    # one source for the whole set, so subsets share judging checks
    assert reference_source_of(with_file) == reference_source_of(with_file[:3]) != "embedded"


def test_subset_keeps_the_set_identity(mt_bench_dir):
    questions = load_questions(mt_bench_dir / "question.jsonl")
    assert questions[:3][0].set_id == questions[-1].set_id


def test_bad_question_files_name_the_line(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"question_id": 1, "category": "math", "turns": ["a", "b"]}\n{"question_id": 2,\n')
    with pytest.raises(UserError, match="line 2"):
        load_questions(bad)
    bad.write_text('{"question_id": 1, "category": "math", "turns": ["only one"]}\n')
    with pytest.raises(UserError, match="exactly 2"):
        load_questions(bad)
    bad.write_text('{"question_id": 1, "turns": ["a", "b"]}\n')
    with pytest.raises(UserError, match="missing category"):
        load_questions(bad)
    bad.write_text('{"question_id": 1, "category": "x", "turns": ["a", "b"]}\n' * 2)
    with pytest.raises(UserError, match="appears twice"):
        load_questions(bad)
    with pytest.raises(UserError, match="does not exist"):
        load_questions(tmp_path / "missing.jsonl")


def test_references_from_a_mapping():
    questions = [q for q in load_questions() if q.category == "math"]
    replaced = with_references(questions, {"1010": ["four", "six"]})
    assert replaced[0].reference == ("four", "six")
    assert replaced[1].reference == questions[1].reference
    assert reference_source_of(replaced).startswith("mapping:")


def test_bundled_and_official_judge_prompts(mt_bench_dir):
    ours = load_judge_prompts()
    theirs = load_judge_prompts(mt_bench_dir / "judge_prompts.jsonl")
    assert ours.hash != theirs.hash and ours.source == "bundled"
    question = next(q for q in load_questions() if q.category == "math")
    for prompts in (ours, theirs):
        turn1 = single_messages(prompts, question, ("ANSWER-ONE", "ANSWER-TWO"), 1)
        assert "ANSWER-ONE" in turn1[-1]["content"] and question.reference[0] in turn1[-1]["content"]
        assert "ANSWER-TWO" not in turn1[-1]["content"]
        turn2 = single_messages(prompts, question, ("ANSWER-ONE", "ANSWER-TWO"), 2)
        text = "\n".join(m["content"] for m in turn2)
        for part in (*question.turns, "ANSWER-ONE", "ANSWER-TWO", *question.reference):
            assert part in text  # turn 2 is judged with the whole conversation and both references
        pair = pairwise_messages(prompts, question, ("A1", "A2"), ("B1", "B2"), 1)[-1]["content"]
        assert pair.index("A1") < pair.index("B1")
    writing = load_questions()[0]
    assert "[Reference" not in single_messages(ours, writing, ("x", "y"), 1)[-1]["content"]
    # answers containing braces are inserted literally, not treated as format fields
    assert "{weird}" in single_messages(ours, writing, ("{weird}", "y"), 1)[-1]["content"]


def test_judge_prompt_file_must_be_complete(tmp_path, mt_bench_dir):
    lines = (mt_bench_dir / "judge_prompts.jsonl").read_text().splitlines()
    partial = tmp_path / "prompts.jsonl"
    partial.write_text("\n".join(line for line in lines if '"single-math-v1"' not in line) + "\n")
    with pytest.raises(UserError, match="single-math-v1"):
        load_judge_prompts(partial)
    broken = [json.loads(line) for line in lines]
    for row in broken:
        if row["name"] == "single-v1":
            row["prompt_template"] = row["prompt_template"].replace("{answer}", "{response}")
    partial.write_text("\n".join(json.dumps(row) for row in broken) + "\n")
    with pytest.raises(UserError, match="answer"):
        load_judge_prompts(partial)


def test_missing_reference_is_reported_before_judging():
    from mergeval.engines.chat.prompts import check_references

    questions = [q for q in load_questions() if q.category == "coding"]
    stripped = with_references(questions, {})
    check_references(stripped)  # embedded references are kept
    from dataclasses import replace

    with pytest.raises(UserError, match="reference answer"):
        check_references([replace(stripped[0], reference=None)])


def test_pull_fails_fast_and_clearly_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="offline"):
        pull_official_files(tmp_path / "mt_bench")
    assert not (tmp_path / "mt_bench" / "question.jsonl").exists()
