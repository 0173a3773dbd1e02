"""Single grading and pairwise judging against real HTTP servers: a scripted judge on 127.0.0.1 (fixed texts,
500s, hangs), `transformers serve` with a tiny model (a judge that never follows the format), and a local
model as the judge. Caching, resume after failures, secrets, FastChat judgment files."""

from __future__ import annotations

import argparse
import re
import threading
import time

import pytest

from mergeval.checks.mtbench import (
    JUDGMENT_CACHE,
    generate_answers,
    judge_single,
    mtbench_scores,
    single_check,
)
from mergeval.checks.pairwise import export_fastchat_judgments, judge_pairwise, pairwise_summary
from mergeval.engines.chat import GenerationConfig, HFJudge, OpenAIJudge, fastchat_show_result, load_questions
from mergeval.engines.chat.prompts import RATING_REMINDER, VERDICT_REMINDER
from mergeval.errors import UserError
from mergeval.models import resolve
from mergeval.store import Store

GEN = GenerationConfig(max_new_tokens=16)


def _pick(categories=("writing", "math", "coding")):
    return [next(q for q in load_questions() if q.category == c) for c in categories]


def _answered(store, scripted_server, questions, name, make_text):
    """A model 'served' by a scripted endpoint: answers are make_text(question turn text, request index)."""
    server = scripted_server(lambda body, i: make_text(body["messages"][-1]["content"], i))
    ref = resolve(f"openai:{name}@{server.base_url}", name=name)
    generate_answers(store, ref, questions, generation=GEN, concurrency=1)
    return ref


def _user_text(body):
    return "\n".join(m["content"] for m in body["messages"])


def _is_turn2(body):
    return "Conversation" in body["messages"][-1]["content"] or "Conversation" in body["messages"][0]["content"]


def _grader(body, index):
    if body["messages"][-1]["content"] == RATING_REMINDER:
        return "[[5]]"
    return "Second turn is weaker. Rating: [[4]]" if _is_turn2(body) else "Good. [[7]]"


def test_single_grading_end_to_end_and_cached(tmp_path, scripted_server):
    questions = _pick()
    with Store(tmp_path / "s.db") as store:
        ref = _answered(store, scripted_server, questions, "merged", lambda text, i: f"ANSWER-{i}")
        server = scripted_server(_grader)
        judge = OpenAIJudge("judge-model", server.base_url, concurrency=2)
        summary = judge_single(store, ref, questions, judge, generation=GEN)
        assert (summary.n_new, summary.n_judge_calls, summary.n_unparsed) == (3, 6, 0)
        scores = mtbench_scores(store, ref, questions, judge, generation=GEN)
        assert (scores.turn1.mean, scores.turn2.mean, scores.average.mean) == (7, 4, 5.5)
        assert scores.n_questions == 3 and scores.n_missing == 0 and scores.n_unparsed == 0
        assert set(scores.per_category) == {"writing", "math", "coding"}

        # what the judge saw: FastChat's decoding settings, references for math/coding, turn 2 in context
        assert all(r["temperature"] == 0 and r["max_tokens"] == 2048 for r in server.requests)
        math = questions[1]
        math_requests = [r for r in server.requests if math.turns[0] in _user_text(r)]
        assert len(math_requests) == 2 and all(math.reference[0] in _user_text(r) for r in math_requests)
        (turn2,) = [r for r in math_requests if _is_turn2(r)]
        for part in (math.turns[0], math.turns[1], math.reference[1]):
            assert part in _user_text(turn2)
        assert len(re.findall(r"ANSWER-\d+", _user_text(turn2))) == 2  # both of the model's answers
        writing_requests = [r for r in server.requests if questions[0].turns[0] in _user_text(r)]
        assert all("Reference" not in _user_text(r) for r in writing_requests)

        # re-running costs nothing; a second check (repeats=2) reuses the first repeat's judgments
        seen = len(server.requests)
        assert judge_single(store, ref, questions, judge, generation=GEN).n_new == 0
        assert len(server.requests) == seen
        twice = judge_single(store, ref, questions, judge, generation=GEN, repeats=2)
        assert (twice.n_new, twice.n_cache_hits, twice.n_judge_calls) == (3, 6, 6)


def test_unparsed_ratings_get_one_reminder_then_are_counted(tmp_path, scripted_server):
    questions = _pick(("writing", "stem"))
    with Store(tmp_path / "s.db") as store:
        ref = _answered(store, scripted_server, questions, "m", lambda text, i: f"ANSWER-{i}")

        def judge_replies(body, index):
            stubborn = questions[1].turns[0] in _user_text(body)
            if body["messages"][-1]["content"] == RATING_REMINDER:
                return "I really cannot say." if stubborn else "[[6]]"
            return "A thoughtful answer, well organised."  # never a rating on first ask

        server = scripted_server(judge_replies)
        judge = OpenAIJudge("j", server.base_url, concurrency=1)
        summary = judge_single(store, ref, questions, judge, generation=GEN)
        assert summary.n_judge_calls == 8 and summary.n_unparsed == 2
        reminders = [r for r in server.requests if r["messages"][-1]["content"] == RATING_REMINDER]
        assert len(reminders) == 4
        assert reminders[0]["messages"][-2] == {"role": "assistant", "content": "A thoughtful answer, well organised."}
        scores = mtbench_scores(store, ref, questions, judge, generation=GEN)
        assert scores.n_unparsed == 2 and scores.n_unscored_turns == 2 and scores.average.mean == 6
        assert scores.per_category["stem"].average is None
        check = single_check(questions, judge, generation=GEN)
        (stem_item,) = [i for i in store.items(ref.fingerprint, check.hash, with_data=True)
                        if i.item_id == questions[1].item_id]
        assert "score_t1" not in stem_item.metrics and stem_item.data["unparsed_turns"] == [1, 2]
        assert stem_item.data["turns"]["1"]["judgments"][0]["reminder_text"] == "I really cannot say."


def test_transient_500s_are_retried(tmp_path, scripted_server):
    questions = _pick(("roleplay",))
    with Store(tmp_path / "s.db") as store:
        ref = _answered(store, scripted_server, questions, "m", lambda text, i: "hi")
        server = scripted_server(lambda body, i: (503, "overloaded") if i < 2 else _grader(body, i))
        judge = OpenAIJudge("j", server.base_url, concurrency=1, max_retries=3)
        summary = judge_single(store, ref, questions, judge, generation=GEN)
        assert summary.n_new == 1 and len(server.requests) == 2 + 2


def test_dead_judge_stops_the_run_and_resume_does_not_rejudge(tmp_path, scripted_server):
    questions = _pick(("writing", "roleplay", "math", "coding", "stem"))
    with Store(tmp_path / "s.db") as store:
        ref = _answered(store, scripted_server, questions, "m", lambda text, i: f"answer {i}")
        down = scripted_server(lambda body, i: _grader(body, i) if i < 5 else (500, "internal error"))
        judge = OpenAIJudge("j", down.base_url, concurrency=1, max_retries=1)
        with pytest.raises(UserError, match=r"HTTP 500.*Judging stopped: 2 of 5 items"):
            judge_single(store, ref, questions, judge, generation=GEN)
        assert store.cache_count(JUDGMENT_CACHE) == 5
        partial = mtbench_scores(store, ref, questions, judge, generation=GEN)
        assert partial.n_questions == 2 and partial.n_missing == 3
        port = down.port
        down.stop()
        back = scripted_server(_grader, port=port)  # the judge comes back at the same address
        summary = judge_single(store, ref, questions, judge, generation=GEN)
        assert summary.n_new == 3 and summary.n_cache_hits == 1
        assert len(back.requests) == 10 - 5  # only the judgments never made before
        assert mtbench_scores(store, ref, questions, judge, generation=GEN).n_questions == 5


def test_a_hanging_judge_times_out(tmp_path, scripted_server):
    questions = _pick(("extraction",))
    with Store(tmp_path / "s.db") as store:
        ref = _answered(store, scripted_server, questions, "m", lambda text, i: "x")
        hanging = scripted_server(lambda body, i: None)  # None: the server never answers
        judge = OpenAIJudge("j", hanging.base_url, timeout=0.5, max_retries=1, concurrency=1)
        with pytest.raises(UserError, match=r"did not answer within 0.5 s.*Judging stopped: 0 of 1"):
            judge_single(store, ref, questions, judge, generation=GEN)
        assert len(hanging.requests) == 2  # the first attempt and one retry


def test_secret_key_is_sent_but_never_stored_or_shown(tmp_path, scripted_server, monkeypatch):
    secret = "sk-test-9f8e7d6c5b4a-SECRET"
    questions = _pick(("writing",))
    with Store(tmp_path / "s.db") as store:
        ref = _answered(store, scripted_server, questions, "m", lambda text, i: "hello")
        server = scripted_server(_grader)
        judge = OpenAIJudge("j", server.base_url, api_key_env="MERGEVAL_TEST_JUDGE_KEY")
        with pytest.raises(UserError, match="MERGEVAL_TEST_JUDGE_KEY"):
            judge_single(store, ref, questions, judge, generation=GEN)
        monkeypatch.setenv("MERGEVAL_TEST_JUDGE_KEY", secret)
        judge_single(store, ref, questions, judge, generation=GEN)
        assert server.headers and all(
            {k.lower(): v for k, v in h.items()}.get("authorization") == f"Bearer {secret}" for h in server.headers)

        rejecting = scripted_server(lambda body, i: (401, f"Incorrect API key provided: {secret}"))
        other = OpenAIJudge("j2", rejecting.base_url, api_key_env="MERGEVAL_TEST_JUDGE_KEY")
        with pytest.raises(UserError) as info:
            judge_single(store, ref, questions, other, generation=GEN)
        assert "rejected the API key" in str(info.value) and secret not in str(info.value)
    for path in tmp_path.glob("s.db*"):
        assert secret.encode() not in path.read_bytes()


def test_concurrency_is_bounded(tmp_path, scripted_server):
    questions = _pick(("writing", "roleplay", "math", "coding", "stem", "humanities"))
    with Store(tmp_path / "s.db") as store:
        ref = _answered(store, scripted_server, questions, "m", lambda text, i: "x")
        server = scripted_server(_grader, delay=0.2)
        judge = OpenAIJudge("j", server.base_url, concurrency=3)
        assert judge_single(store, ref, questions, judge, generation=GEN).n_judge_calls == 12
        assert 1 < server.max_in_flight <= 3


def test_repeats_measure_the_judges_own_variance(tmp_path, scripted_server):
    questions = _pick(("writing", "stem"))
    with Store(tmp_path / "s.db") as store:
        ref = _answered(store, scripted_server, questions, "m", lambda text, i: "x")
        # a sampling judge whose rating depends on the seed of the repeat
        server = scripted_server(lambda body, i: f"[[{5 + body['seed']}]]")
        judge = OpenAIJudge("j", server.base_url, temperature=0.7)
        assert judge_single(store, ref, questions, judge, generation=GEN, repeats=3).n_judge_calls == 12
        scores = mtbench_scores(store, ref, questions, judge, generation=GEN, repeats=3)
        assert scores.judge_sd == pytest.approx(1.0) and scores.repeat_averages == (5, 6, 7)
        assert scores.average.mean == 6 and scores.repeats == 3


def _fastchat_tables(function, **args):
    from fastchat.llm_judge import show_result

    printed = []
    show_result.print = printed.append
    try:
        function(argparse.Namespace(**args))
    finally:
        del show_result.print
    return [p for p in printed if not isinstance(p, str)]


def test_exported_single_judgments_give_the_same_scores_in_fastchat(tmp_path, scripted_server):
    from fastchat.llm_judge.show_result import display_result_single

    questions = _pick(("writing", "math", "extraction", "humanities"))
    ratings = iter([3, 9, 4, 8, 10, 2, 6, 7])
    with Store(tmp_path / "s.db") as store:
        ref = _answered(store, scripted_server, questions, "merged", lambda text, i: f"a{i}")
        server = scripted_server(lambda body, i: "no rating" if i == 0 else
                                 ("still none" if i == 1 else f"[[{next(ratings)}]]"))
        judge = OpenAIJudge("my-judge", server.base_url, concurrency=1)
        judge_single(store, ref, questions, judge, generation=GEN)
        ours = mtbench_scores(store, ref, questions, judge, generation=GEN)
        path = export_fastchat_judgments(store, ref, questions, judge, tmp_path / "mt_bench", generation=GEN)
    assert path.name == "my-judge_single.jsonl" and ours.n_unparsed == 1
    turn1, turn2, average = _fastchat_tables(display_result_single, input_file=str(path), bench_name="mt_bench",
                                             judge_model="my-judge", model_list=None)
    assert ours.turn1.mean == pytest.approx(turn1.loc[("merged", 1), "score"])
    assert ours.turn2.mean == pytest.approx(turn2.loc[("merged", 2), "score"])
    assert ours.average.mean == pytest.approx(average.loc["merged", "score"])


def _pair_judge(body, index):
    """A consistent judge: the answer containing GOOD wins, wherever it is shown."""
    text = body["messages"][-1]["content"]
    if text == VERDICT_REMINDER:
        return "[[C]]"
    return "[[A]]" if text.index("GOOD") < text.index("BAD") else "[[B]]"


def test_pairwise_both_orders_consistency_and_fastchat_view(tmp_path, scripted_server):
    from fastchat.llm_judge.show_result import display_result_pairwise

    questions = _pick(("writing", "math", "coding"))
    with Store(tmp_path / "s.db") as store:
        merged = _answered(store, scripted_server, questions, "merged", lambda text, i: f"GOOD answer {i}")
        parent = _answered(store, scripted_server, questions, "parent", lambda text, i: f"BAD answer {i}")
        server = scripted_server(_pair_judge)
        judge = OpenAIJudge("fair-judge", server.base_url)
        summary = judge_pairwise(store, merged, parent, questions, judge, generation=GEN)
        assert (summary.n_new, summary.n_judge_calls) == (6, 12)
        result = pairwise_summary(store, merged, parent, questions, judge, generation=GEN)
        assert (result.wins, result.ties, result.losses) == (6, 0, 0)
        assert result.win_rate == 1 and result.consistency_rate == 1 and result.n_unparsed == 0
        # the two orders really were shown: once with the merged answer first, once second
        firsts = [r["messages"][-1]["content"] for r in server.requests]
        assert sum(t.index("GOOD") < t.index("BAD") for t in firsts) == 6

        # the opposite comparison costs nothing: its prompts are the same two orders
        seen = len(server.requests)
        reverse = judge_pairwise(store, parent, merged, questions, judge, generation=GEN)
        assert reverse.n_judge_calls == 0 and reverse.n_cache_hits == 12 and len(server.requests) == seen
        assert pairwise_summary(store, parent, merged, questions, judge, generation=GEN).losses == 6

        # a judge that always prefers the first answer shown: every game is a tie, consistency 0
        biased_server = scripted_server(lambda body, i: "[[A]]")
        biased = OpenAIJudge("first-is-best", biased_server.base_url)
        judge_pairwise(store, merged, parent, questions, biased, generation=GEN)
        biased_result = pairwise_summary(store, merged, parent, questions, biased, generation=GEN)
        assert (biased_result.wins, biased_result.ties, biased_result.consistency_rate) == (0, 6, 0)

        path = export_fastchat_judgments(store, merged, questions, judge, tmp_path / "mt_bench", opponent=parent,
                                         generation=GEN)
    (table,) = _fastchat_tables(display_result_pairwise, input_file=str(path), bench_name="mt_bench",
                                judge_model="fair-judge", baseline_model="parent", model_list=None)
    assert table.loc["merged", "win_rate"] == result.win_rate
    assert fastchat_show_result(path, baseline_model="parent")["merged"]["win"] == 6


def test_pairwise_verdict_missing_in_one_order_is_counted(tmp_path, scripted_server):
    questions = _pick(("stem",))
    with Store(tmp_path / "s.db") as store:
        a = _answered(store, scripted_server, questions, "a", lambda text, i: "GOOD")
        b = _answered(store, scripted_server, questions, "b", lambda text, i: "BAD")
        # verdicts for the order A-first only; the B-first order never gives one, even after the reminder
        def one_sided(body, index):
            text = body["messages"][-1]["content"]
            return "[[A]]" if "GOOD" in text and text.index("GOOD") < text.index("BAD") else "hmm"

        server = scripted_server(one_sided)
        judge = OpenAIJudge("j", server.base_url, concurrency=1)
        summary = judge_pairwise(store, a, b, questions, judge, generation=GEN)
        assert summary.n_unparsed == 2 and summary.n_judge_calls == 2 + 4
        result = pairwise_summary(store, a, b, questions, judge, generation=GEN)
        assert result.n_games == 0 and result.n_unparsed == 2 and result.win_rate is None


def test_pairwise_needs_both_models_answers(tmp_path, scripted_server):
    questions = _pick(("stem",))
    with Store(tmp_path / "s.db") as store:
        a = _answered(store, scripted_server, questions, "a", lambda text, i: "x")
        b = resolve("openai:never-answered@http://127.0.0.1:9/v1")
        judge = OpenAIJudge("j", "http://127.0.0.1:9/v1")
        with pytest.raises(UserError, match="never-answered has no stored answers"):
            judge_pairwise(store, a, b, questions, judge, generation=GEN)


# -- real servers and local judges ------------------------------------------------------------------------------------


def test_tiny_model_served_by_transformers_is_an_honest_unparsed_judge(tmp_path, scripted_server, served_tiny):
    questions = _pick(("writing", "math"))
    with Store(tmp_path / "s.db") as store:
        ref = _answered(store, scripted_server, questions, "m", lambda text, i: "some answer")
        judge = OpenAIJudge(served_tiny.model_dir, served_tiny.base_url, max_tokens=6, concurrency=2, name="tiny")
        summary = judge_single(store, ref, questions, judge, generation=GEN)
        scores = mtbench_scores(store, ref, questions, judge, generation=GEN)
    # a random 2-layer model never writes [[N]]: every judgment is retried once, then counted as unparsed
    assert summary.n_judge_calls == 8 and summary.n_unparsed == 4
    assert scores.n_unparsed == 4 and scores.average is None and scores.n_questions == 2


def test_local_model_as_judge(tmp_path, scripted_server, tiny_model_dir):
    questions = _pick(("humanities",))
    with Store(tmp_path / "s.db") as store:
        ref = _answered(store, scripted_server, questions, "m", lambda text, i: "answer")
        judge = HFJudge(tiny_model_dir, max_new_tokens=5)
        assert judge.identity()["kind"] == "hf" and judge.concurrency == 1
        summary = judge_single(store, ref, questions, judge, generation=GEN)
        assert summary.n_new == 1 and summary.n_judge_calls == 4
        again = judge_single(store, ref, questions, judge, generation=GEN, repeats=1)
        assert again.n_judge_calls == 0


def test_transformers_serve_killed_mid_run_then_resume(tmp_path, scripted_server, serve_process, tiny_model_dir):
    questions = _pick(("writing", "roleplay", "math", "coding", "stem", "humanities"))
    server = serve_process(tiny_model_dir)
    log = server.log_path

    def posts() -> int:
        return log.read_text(errors="replace").count("POST /v1/chat/completions")

    def kill_after(n: int) -> None:
        deadline = time.time() + 120
        while posts() < n and time.time() < deadline:
            time.sleep(0.05)
        server.kill()

    with Store(tmp_path / "s.db") as store:
        ref = _answered(store, scripted_server, questions, "m", lambda text, i: "answer")
        judge = OpenAIJudge(server.model_dir, server.base_url, max_tokens=4, concurrency=1, max_retries=1,
                            timeout=30, name="tiny")
        killer = threading.Thread(target=kill_after, args=(5,))
        killer.start()
        with pytest.raises(UserError, match="could not be reached|did not answer|kept answering"):
            judge_single(store, ref, questions, judge, generation=GEN)
        killer.join()
        cached = store.cache_count(JUDGMENT_CACHE)
        assert cached >= 2  # judgments finished before the kill are kept
        stored_before = mtbench_scores(store, ref, questions, judge, generation=GEN).n_questions
        restarted = serve_process(tiny_model_dir, port=server.port)
        summary = judge_single(store, ref, questions, judge, generation=GEN)
        # every judgment of the tiny judge takes 2 requests (ask + reminder): only the missing ones were sent
        new_posts = restarted.log_path.read_text(errors="replace").count("POST /v1/chat/completions")
        assert new_posts == 2 * (len(questions) * 2 - cached) == summary.n_judge_calls
        assert summary.n_cache_hits == cached - 2 * stored_before  # cached turns of unfinished questions
        assert summary.n_new == len(questions) - stored_before
        assert mtbench_scores(store, ref, questions, judge, generation=GEN).n_questions == len(questions)


def test_the_rating_rule_is_part_of_the_check_and_cached_texts_are_read_again(tmp_path, scripted_server):
    """FastChat's rule reads no rating in "Rating: 8" (a reminder gets [[6]]); the lenient rule reads 8. Each rule
    has its own check; a cached reply is read again with the other rule, and its reminder asked only if needed."""
    questions = _pick(("writing", "stem"))

    def judge_replies(body, index):
        return "[[6]]" if body["messages"][-1]["content"] == RATING_REMINDER else "Clear and correct. Rating: 8"

    for first, second in (("fastchat", "lenient"), ("lenient", "fastchat")):
        with Store(tmp_path / f"{first}.db") as store:
            ref = _answered(store, scripted_server, questions, "m", lambda text, i: f"ANSWER-{i}")
            server = scripted_server(judge_replies)
            judge = OpenAIJudge("j", server.base_url, concurrency=1)
            hashes = {rule: single_check(questions, judge, generation=GEN, parser=rule).hash
                      for rule in ("fastchat", "lenient")}
            assert hashes["fastchat"] != hashes["lenient"]
            value = {"fastchat": 6, "lenient": 8}
            one = judge_single(store, ref, questions, judge, generation=GEN, parser=first)
            assert one.n_judge_calls == (8 if first == "fastchat" else 4)  # 4 turns, with or without a reminder
            two = judge_single(store, ref, questions, judge, generation=GEN, parser=second)
            # lenient reads the cached first reply; fastchat asks only the reminders it never asked
            assert two.n_judge_calls == (0 if second == "lenient" else 4)
            for rule in ("fastchat", "lenient"):
                scores = mtbench_scores(store, ref, questions, judge, generation=GEN, parser=rule)
                assert scores.average.mean == value[rule] and scores.n_unparsed == 0
