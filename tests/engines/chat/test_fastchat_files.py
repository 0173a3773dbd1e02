"""FastChat files in and out, through the library and the CLI: answer files named as FastChat names them,
exports FastChat's own loader reads, judging imported answers with a real judge server on 127.0.0.1, reading
judgment files, and judge / endpoint references that are wrong (no scheme, credentials, an HTML page).

The FastChat-format files are tests/engines/chat/fixtures (written for these tests; see its README)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mergeval.analysis import run_plan
from mergeval.checks.mtbench import (
    export_fastchat_answers,
    generate_answers,
    import_fastchat_answers,
    mtbench_scores,
    stored_answers,
)
from mergeval.engines.chat import GenerationConfig, OpenAIJudge, load_questions
from mergeval.engines.chat.fastchat import fastchat_answers_ref
from mergeval.engines.chat.prompts import RATING_REMINDER
from mergeval.errors import UserError
from mergeval.models import resolve
from mergeval.store import Store

FIXTURES = Path(__file__).parent / "fixtures"
QUESTION_FILE = FIXTURES / "question.jsonl"
ANSWERS = FIXTURES / "model_answer"
SINGLE = FIXTURES / "model_judgment" / "gpt-4_single.jsonl"
PAIR = FIXTURES / "model_judgment" / "gpt-4_pair.jsonl"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "400"}  # no wrapping
SECRET = "sk-in-the-url-5f1d0c9e7a"


def mergeval(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mergeval.cli", *map(str, args)], capture_output=True, text=True,
                          env=env or ENV, timeout=900, check=False)


def _user_error(proc, *phrases):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr  # one message (besides a progress bar line), not wrapped
    text = " ".join((proc.stdout + proc.stderr).split())
    for phrase in phrases:
        assert phrase in text, text


def grader(body, index):
    """A judge whose rating depends on the answer's length (so models differ), FastChat's [[N]] format."""
    if body["messages"][-1]["content"] == RATING_REMINDER:
        return "[[5]]"
    text = "\n".join(m["content"] for m in body["messages"])
    return f"Judged. Rating: [[{1 + len(text) % 10}]]"


def _judge(url):
    return OpenAIJudge("judge-model", url)


# -- answer files: FastChat's names, FastChat's layout ------------------------------------------------------------


def test_import_names_a_model_after_its_file_as_fastchat_does(tmp_path):
    from fastchat.llm_judge.common import load_model_answers

    questions = load_questions(QUESTION_FILE)
    fastchat = load_model_answers(str(ANSWERS))
    records = [json.loads(line) for line in (ANSWERS / "alpha-7b.jsonl").read_text().splitlines()]
    assert {r["model_id"] for r in records} == {"org/Alpha-7B-Instruct-Normal"}  # not the file's name
    with Store(tmp_path / "s.db") as store:
        for path in sorted(ANSWERS.glob("*.jsonl")):
            ref = import_fastchat_answers(store, path, questions)
            assert ref.name in fastchat and ref.kind == "imported"
            answers = stored_answers(store, ref, questions)
            assert answers == {str(qid): tuple(a["choices"][0]["turns"]) for qid, a in fastchat[ref.name].items()}
        # a subset of the questions is the same model (identity = the whole file)
        again = import_fastchat_answers(store, ANSWERS / "alpha-7b.jsonl", questions[:2])
        assert again.fingerprint == fastchat_answers_ref(ANSWERS / "alpha-7b.jsonl").fingerprint
        assert import_fastchat_answers(store, ANSWERS / "alpha-7b.jsonl", questions, model_id="a").name == "a"


def test_export_writes_a_flat_file_fastchat_reads(tmp_path, scripted_server):
    from fastchat.llm_judge.common import get_model_list, load_model_answers

    questions = load_questions(QUESTION_FILE)
    server = scripted_server(lambda body, i: f"answer {i}")
    ref = resolve(f"openai:m@{server.base_url}", name="meta-llama/Meta-Llama-3-8B-Instruct")
    generation = GenerationConfig.greedy(8)
    with Store(tmp_path / "s.db") as store:
        generate_answers(store, ref, questions, generation=generation, concurrency=1)
        path = export_fastchat_answers(store, ref, questions, tmp_path / "mt_bench", generation=generation)
        answers = stored_answers(store, ref, questions, generation)
    folder = tmp_path / "mt_bench" / "model_answer"
    assert path == folder / "meta-llama__Meta-Llama-3-8B-Instruct.jsonl"
    assert sorted(p.name for p in folder.iterdir()) == [path.name]  # flat: no subfolder from the "/"
    assert get_model_list(str(folder)) == ["meta-llama__Meta-Llama-3-8B-Instruct"]
    fastchat = load_model_answers(str(folder))["meta-llama__Meta-Llama-3-8B-Instruct"]
    assert {str(q): tuple(a["choices"][0]["turns"]) for q, a in fastchat.items()} == answers
    assert {a["model_id"] for a in fastchat.values()} == {"meta-llama__Meta-Llama-3-8B-Instruct"}


# -- the CLI: judging imported answers, reading judgment files ------------------------------------------------------


def test_cli_judges_imported_answer_files_then_a_plan_reuses_them(tmp_path, scripted_server):
    server = scripted_server(grader)
    store = tmp_path / "r.db"
    judge = ["--judge", f"openai:judge-model@{server.base_url}", "--questions", QUESTION_FILE, "--store", store]
    proc = mergeval("mtbench", "--import-answers", ANSWERS, *judge)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    questions = load_questions(QUESTION_FILE)
    with Store(store, create=False) as db:
        scores = {name: mtbench_scores(db, fastchat_answers_ref(ANSWERS / f"{name}.jsonl"), questions,
                                       _judge(server.base_url))
                  for name in ("alpha-7b", "beta-7b")}
    for name, s in scores.items():
        assert s.n_questions == 6 and s.n_missing == 0
        line = next(row for row in proc.stdout.splitlines() if row.strip("│ ").startswith(name))
        cells = [c.strip() for c in line.split("│") if c.strip()]
        assert cells[1:4] == [f"{s.turn1.mean:.2f}", f"{s.turn2.mean:.2f}", f"{s.average.mean:.2f}"]
    assert len(server.requests) == 2 * 6 * 2  # two models x 6 questions x 2 turns
    assert "org/Alpha-7B-Instruct-Normal" not in proc.stdout  # FastChat's name: the file's

    # one file, another name; again: nothing is asked
    proc = mergeval("mtbench", "--import-answers", ANSWERS / "beta-7b.jsonl", *judge)
    assert proc.returncode == 0, proc.stderr
    assert len(server.requests) == 24

    # mtbench-pair takes answer files as its two models
    pair = mergeval("mtbench-pair", ANSWERS / "alpha-7b.jsonl", ANSWERS / "beta-7b.jsonl", *judge)
    assert pair.returncode == 0, pair.stdout + pair.stderr
    assert "alpha-7b vs beta-7b" in " ".join(pair.stdout.split())
    requests = len(server.requests)

    # a plan names the imported models (known from the store) and compares them without asking the judge
    plan = tmp_path / "mergeval.yaml"
    plan.write_text(f"""\
models:
  - candidate: alpha-7b
  - parent: beta-7b
checks:
  - type: mtbench
    questions: {QUESTION_FILE}
    judge: {{model: judge-model, base_url: "{server.base_url}"}}
store: {store}
settings: {{n_boot: 100}}
""")
    report = run_plan(plan)
    assert len(server.requests) == requests and report["missing"] == []
    for name, s in scores.items():
        assert report["scores"][name]["mtbench"]["value"] == pytest.approx(s.average.mean)


def test_cli_partial_answer_file_and_bad_questions_file(tmp_path, scripted_server):
    server = scripted_server(grader)
    partial = tmp_path / "half-7b.jsonl"
    partial.write_text("".join((ANSWERS / "alpha-7b.jsonl").read_text().splitlines(keepends=True)[:3]))
    judge = ["--judge", f"openai:judge-model@{server.base_url}", "--store", tmp_path / "r.db"]
    _user_error(mergeval("mtbench", "--import-answers", partial, "--questions", QUESTION_FILE, *judge),
                "answers 3 of the 6 questions", "--limit")
    bad = tmp_path / "question.jsonl"
    bad.write_bytes(QUESTION_FILE.read_bytes().replace(b"lighthouse", b"lighth\xffouse"))
    _user_error(mergeval("mtbench", "--import-answers", ANSWERS, "--questions", bad, *judge),
                "line 2: not valid UTF-8")
    assert server.requests == []


def test_cli_reads_a_fastchat_judgment_file():
    proc = mergeval("mtbench", "--import-judgments", SINGLE, "--questions", QUESTION_FILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from mergeval.engines.chat import fastchat_show_result, mtbench_scores_from_fastchat

    shown = fastchat_show_result(SINGLE)
    gamma = mtbench_scores_from_fastchat(SINGLE, "gamma-13b", questions=load_questions(QUESTION_FILE))
    row = next(r for r in proc.stdout.splitlines() if "gamma-13b" in r)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[3] == f"{gamma.average.mean:.2f}" and cells[6] == str(gamma.n_duplicate_rows) == "4"
    assert cells[7] == f"{shown['gamma-13b']['average']:.3f}"
    assert "exact copies" in " ".join(proc.stderr.split())
    alpha = next(r for r in proc.stdout.splitlines() if "alpha-7b" in r)
    assert "same" in alpha

    pair = mergeval("mtbench", "--import-judgments", PAIR, "--baseline-model", "gpt-3.5-turbo")
    assert pair.returncode == 0, pair.stderr
    ours = fastchat_show_result(PAIR)
    row = next(r for r in pair.stdout.splitlines() if "alpha-7b" in r)
    assert f"{100 * ours['alpha-7b']['win_rate_adjusted']:.1f}" in row  # FastChat's fraction, shown in %
    _user_error(mergeval("mtbench", "--import-judgments", PAIR, "--baseline-model", "claude-v1"),
                "baseline model 'claude-v1'", "alpha-7b, beta-7b, gpt-3.5-turbo")


# -- judge and endpoint references ---------------------------------------------------------------------------------


class _HtmlServer:
    """A real HTTP server that answers every POST with HTTP 200 and an HTML page (a wrong base URL)."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                page = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Sign in</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_cli_judge_answering_an_html_page(tmp_path):
    html = _HtmlServer()
    try:
        proc = mergeval("mtbench", "--import-answers", ANSWERS / "alpha-7b.jsonl", "--questions", QUESTION_FILE,
                        "--judge", f"openai:judge-model@{html.url}", "--store", tmp_path / "r.db")
    finally:
        html.stop()
    _user_error(proc, "not a chat completion", "<!DOCTYPE html>", "Check the base URL")


def test_cli_judge_url_without_a_scheme_fails_at_once(tmp_path, scripted_server):
    server = scripted_server(grader)
    no_scheme = server.base_url.removeprefix("http://")
    proc = mergeval("mtbench", "--import-answers", ANSWERS, "--questions", QUESTION_FILE,
                    "--judge", f"openai:judge-model@{no_scheme}", "--store", tmp_path / "r.db")
    _user_error(proc, f"'{no_scheme}'", "has no scheme", f"openai:<model>@http://{no_scheme}")
    proc = mergeval("mtbench", "--import-answers", ANSWERS, "--questions", QUESTION_FILE,
                    "--judge", no_scheme, "--store", tmp_path / "r.db")
    _user_error(proc, "looks like a URL", "openai:<model>@<url>")
    assert server.requests == [] and not (tmp_path / "r.db").exists()


def test_credentials_in_a_url_are_refused_and_never_shown_or_stored(tmp_path, scripted_server):
    server = scripted_server(grader)
    with_key = server.base_url.replace("http://", f"http://user:{SECRET}@")
    store = tmp_path / "r.db"
    for args in (["--import-answers", ANSWERS, "--judge", f"openai:judge-model@{with_key}"],
                 [f"openai:m@{with_key}", "--judge", f"openai:judge-model@{server.base_url}"]):
        proc = mergeval("mtbench", *args, "--questions", QUESTION_FILE, "--store", store)
        _user_error(proc, "carries credentials", "--judge-key-env", server.base_url)
        assert SECRET not in proc.stdout + proc.stderr
    assert server.requests == []
    assert not store.exists() or SECRET.encode() not in store.read_bytes()
    with pytest.raises(UserError) as info:
        resolve(f"openai:m@{with_key}")
    assert SECRET not in str(info.value) and "carries credentials" in str(info.value)
    with pytest.raises(UserError) as info:
        OpenAIJudge("judge-model", with_key)
    assert SECRET not in str(info.value)
    # in a plan too: refused when the plan is read, without the key in the message
    from mergeval.plan import PlanError, parse_plan

    text = f"""\
models:
  - candidate: {tmp_path}
checks:
  - type: mtbench
    judge: {{model: judge-model, base_url: "{with_key}"}}
"""
    with pytest.raises(PlanError) as info:
        parse_plan(text, source=tmp_path / "mergeval.yaml")
    assert "carries credentials" in str(info.value) and SECRET not in str(info.value)
    with pytest.raises(PlanError) as info:
        parse_plan(text.replace(f'{{model: judge-model, base_url: "{with_key}"}}', f'"openai:j@{with_key}"'),
                   source=tmp_path / "mergeval.yaml")
    assert "carries credentials" in str(info.value) and SECRET not in str(info.value)
    with pytest.raises(PlanError) as info:
        parse_plan(text.replace(f'{{model: judge-model, base_url: "{with_key}"}}', f'"{with_key}"'),
                   source=tmp_path / "mergeval.yaml")
    assert "looks like a URL" in str(info.value) and SECRET not in str(info.value)
    # a plan model given as an endpoint with credentials: refused by `run`, nothing written, the key not shown
    plan = tmp_path / "endpoint.yaml"
    plan.write_text(f"""\
models:
  - candidate: openai:m@{with_key}
  - parent: openai:p@{server.base_url}
checks:
  - type: mtbench
    judge: openai:j@{server.base_url}
store: plan-results/mergeval.db
""")
    proc = mergeval("run", plan)
    _user_error(proc, "model 'm'", "carries credentials")
    assert SECRET not in proc.stdout + proc.stderr and not (tmp_path / "plan-results").exists()
