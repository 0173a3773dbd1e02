"""Score aggregation, pairwise rules and FastChat show_result compatibility, on fixed judgments.

FastChat's own show_result.py (the `fschat` package) computes the reference numbers here: its functions are
run on the same files and the DataFrames they print are captured.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import pytest

from mergeval.engines.chat import (
    fastchat_show_result,
    import_fastchat_judgments,
    mtbench_scores_from_fastchat,
)
from mergeval.engines.chat.judging import game_outcome
from mergeval.engines.chat.scores import Game, QuestionRatings, result_from_games, scores_from_ratings
from mergeval.errors import UserError


def _rows(spec):
    return [QuestionRatings(str(i), category, {1: t1, 2: t2}) for i, (category, t1, t2) in enumerate(spec)]


def test_turn_scores_average_and_categories():
    rows = _rows([
        ("writing", [8], [6]),
        ("writing", [10], [None]),  # unparsed turn 2: left out, counted
        ("math", [2], [4]),
        ("math", [None], [None]),  # both unparsed
    ])
    scores = scores_from_ratings(rows, model="m", judge="j", n_boot=500)
    assert scores.turn1.mean == pytest.approx((8 + 10 + 2) / 3) and scores.turn1.n == 3
    assert scores.turn2.mean == pytest.approx((6 + 4) / 2) and scores.turn2.n == 2
    # FastChat's average: the mean of all valid turn scores, not the mean of the two turn means
    assert scores.average.mean == pytest.approx((8 + 6 + 10 + 2 + 4) / 5)
    assert scores.n_unparsed == 3 and scores.n_unscored_turns == 3 and scores.n_judgments == 8
    assert scores.per_category["writing"].turn1 == 9 and scores.per_category["writing"].turn2 == 6
    assert scores.per_category["math"].average.mean == 3
    assert list(scores.per_category) == ["writing", "math"]  # MT-Bench's category order


def test_bootstrap_ci_brackets_the_mean_and_shrinks_with_more_questions():
    rng = random.Random(0)
    few = _rows([("stem", [rng.randint(1, 10)], [rng.randint(1, 10)]) for _ in range(10)])
    many = _rows([("stem", [rng.randint(1, 10)], [rng.randint(1, 10)]) for _ in range(400)])
    small, large = (scores_from_ratings(r, model="m", judge="j", n_boot=1000).average for r in (few, many))
    for ci in (small, large):
        assert ci.ci_low <= ci.mean <= ci.ci_high
    assert (large.ci_high - large.ci_low) < (small.ci_high - small.ci_low)
    constant = scores_from_ratings(_rows([("stem", [5], [5])] * 6), model="m", judge="j", n_boot=200).average
    assert constant.ci_low == constant.ci_high == 5
    # deterministic for a seed
    again = scores_from_ratings(few, model="m", judge="j", n_boot=1000).average
    assert again == small


def test_repeats_give_the_judges_own_variance():
    rows = _rows([("writing", [6, 8], [5, 5]), ("stem", [7, 7], [3, 5])])
    scores = scores_from_ratings(rows, model="m", judge="j", repeats=2, n_boot=200)
    # per (question, turn) sample variances: 2, 0, 0, 2 -> pooled SD 1
    assert scores.judge_sd == pytest.approx(1.0)
    assert scores.repeat_averages == pytest.approx(((6 + 5 + 7 + 3) / 4, (8 + 5 + 7 + 5) / 4))
    assert scores.turn1.mean == pytest.approx((7 + 7) / 2)


def test_game_rule_both_orders_must_agree():
    assert game_outcome("model_a", "model_a") == {"win": 1, "tie": 0, "loss": 0, "consistent": 1}
    assert game_outcome("model_b", "model_b") == {"win": 0, "tie": 0, "loss": 1, "consistent": 1}
    assert game_outcome("model_a", "model_b") == {"win": 0, "tie": 1, "loss": 0, "consistent": 0}
    assert game_outcome("tie", "tie") == {"win": 0, "tie": 1, "loss": 0, "consistent": 1}
    assert game_outcome("tie", "model_a") == {"win": 0, "tie": 1, "loss": 0, "consistent": 0}
    assert game_outcome("model_a", "tie") == {"win": 0, "tie": 1, "loss": 0, "consistent": 0}
    assert game_outcome(None, "model_a") is None


def test_pairwise_result_counts_rates_and_consistency():
    outcomes = [("model_a", "model_a")] * 5 + [("model_b", "model_b")] * 2 + [("model_a", "model_b")] * 2 + \
        [("tie", "tie")] + [(None, "model_a")]
    games = [Game(str(i // 2), i % 2 + 1, game_outcome(*o)) for i, o in enumerate(outcomes)]
    result = result_from_games(games, model_a="merged", model_b="parent", judge="j", n_boot=500)
    assert (result.wins, result.ties, result.losses, result.n_games, result.n_unparsed) == (5, 3, 2, 10, 1)
    assert result.win_rate == 0.5 and result.loss_rate == 0.2
    assert result.win_rate_adjusted.mean == pytest.approx((5 + 1.5) / 10)
    assert result.consistency_rate == pytest.approx(8 / 10)
    assert result.per_turn[1]["win"] + result.per_turn[2]["win"] == 5
    assert result.win_rate_adjusted.ci_low <= 0.65 <= result.win_rate_adjusted.ci_high


# -- FastChat compatibility ---------------------------------------------------------------------------------------


def _fastchat_tables(function, **args):
    """Run one of FastChat's show_result functions and capture the DataFrames it prints."""
    from fastchat.llm_judge import show_result

    printed = []
    show_result.print = printed.append  # module-level name lookup: shadows the builtin inside show_result
    try:
        function(argparse.Namespace(**args))
    finally:
        del show_result.print
    return [p for p in printed if not isinstance(p, str)]


def _single_file(tmp_path, seed=0):
    rng = random.Random(seed)
    rows = []
    for model in ("merged", "parent-a", "parent-b"):
        for qid in range(81, 101):
            for turn in (1, 2):
                score = rng.choice([-1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 7.5])
                rows.append({"question_id": qid, "model": model, "judge": ["gpt-4", "single-v1"],
                             "user_prompt": "...", "judgment": f"... [[{score}]]", "score": score, "turn": turn,
                             "tstamp": 0.0})
    rows.append({**rows[0], "turn": 2, "score": 9})  # a duplicate row: show_result counts it again
    path = tmp_path / "gpt-4_single.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def test_single_results_match_fastchat_show_result(tmp_path):
    from fastchat.llm_judge.show_result import display_result_single

    path, _ = _single_file(tmp_path)
    for model_list in (None, ["merged", "parent-b"]):
        turn1, turn2, average = _fastchat_tables(
            display_result_single, input_file=str(path), bench_name="mt_bench", judge_model="gpt-4",
            model_list=model_list)
        ours = fastchat_show_result(path, model_list=model_list)
        assert set(ours) == set(average.index)
        for model in ours:
            assert ours[model]["turn1"] == pytest.approx(turn1.loc[(model, 1), "score"])
            assert ours[model]["turn2"] == pytest.approx(turn2.loc[(model, 2), "score"])
            assert ours[model]["average"] == pytest.approx(average.loc[model, "score"])


def test_mergeval_view_of_a_fastchat_file_counts_what_show_result_drops(tmp_path):
    path, rows = _single_file(tmp_path, seed=1)
    judgments = import_fastchat_judgments(path)
    assert judgments.kind == "single" and len(judgments.rows) == len(rows)
    scores = mtbench_scores_from_fastchat(judgments, "parent-a", n_boot=300)
    dropped = sum(1 for r in rows if r["model"] == "parent-a" and r["score"] == -1)
    assert scores.n_unparsed == dropped > 0
    fastchat = fastchat_show_result(judgments)["parent-a"]
    assert scores.turn1.mean == pytest.approx(fastchat["turn1"])
    assert scores.turn2.mean == pytest.approx(fastchat["turn2"])
    assert scores.average.mean == pytest.approx(fastchat["average"])


def _pair_file(tmp_path, seed=0):
    rng = random.Random(seed)
    winners = ["model_1", "model_2", "tie", "error"]
    rows = []
    for model in ("merged", "parent-a"):
        for qid in range(81, 111):
            for turn in (1, 2):
                model_1, model_2 = (model, "gpt-3.5-turbo") if rng.random() < 0.8 else ("gpt-3.5-turbo", model)
                rows.append({"question_id": qid, "model_1": model_1, "model_2": model_2,
                             "g1_winner": rng.choice(winners), "g2_winner": rng.choice(winners),
                             "judge": ["gpt-4", "pair-v2"], "turn": turn, "tstamp": 0.0})
    rows.append({"question_id": 81, "model_1": "merged", "model_2": "parent-a", "g1_winner": "model_1",
                 "g2_winner": "model_1", "judge": ["gpt-4", "pair-v2"], "turn": 1, "tstamp": 0.0})
    path = tmp_path / "gpt-4_pair.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(("mode", "baseline"), [("pairwise-baseline", "gpt-3.5-turbo"), ("pairwise-all", None)])
def test_pairwise_results_match_fastchat_show_result(tmp_path, mode, baseline):
    from fastchat.llm_judge.show_result import display_result_pairwise

    path = _pair_file(tmp_path)
    for model_list in (None, ["merged"]):
        (table,) = _fastchat_tables(display_result_pairwise, input_file=str(path), bench_name="mt_bench",
                                    judge_model="gpt-4", baseline_model=baseline, model_list=model_list)
        ours = fastchat_show_result(path, mode=mode, baseline_model="gpt-3.5-turbo", model_list=model_list)
        assert set(ours) == set(table.index)
        for model, row in ours.items():
            for column in ("win", "loss", "tie", "win_rate", "loss_rate", "win_rate_adjusted"):
                assert row[column] == pytest.approx(float(table.loc[model, column])), (model, column)


# -- FastChat-format fixture files (tests/engines/chat/fixtures, written for these tests) ---------------------------------

FIXTURES = Path(__file__).parent / "fixtures"
SINGLE = FIXTURES / "model_judgment" / "gpt-4_single.jsonl"
PAIR = FIXTURES / "model_judgment" / "gpt-4_pair.jsonl"


def test_fixture_scores_are_what_fastchats_rule_reads():
    from mergeval.engines.chat import parse_rating

    for line in SINGLE.read_text().splitlines():
        row = json.loads(line)
        assert parse_rating(row["judgment"]) == (None if row["score"] == -1 else row["score"]), row["judgment"]


def test_exact_duplicate_rows_are_not_repeats_and_fastchats_number_is_reported(caplog):
    import pandas as pd
    from fastchat.llm_judge.show_result import display_result_single

    turn1, turn2, average = _fastchat_tables(display_result_single, input_file=str(SINGLE), bench_name="mt_bench",
                                             judge_model="gpt-4", model_list=None)
    lines = [line for line in SINGLE.read_text().splitlines() if json.loads(line)["model"] == "gamma-13b"]
    n_copies = len(lines) - len(set(lines))
    assert n_copies > 0

    with caplog.at_level("WARNING"):
        scores = mtbench_scores_from_fastchat(SINGLE, "gamma-13b", n_boot=200)
    assert scores.n_duplicate_rows == n_copies
    assert scores.repeats == 1 and scores.judge_sd is None and scores.repeat_averages == ()  # no invented noise
    # mergeval: each distinct row once (computed here with pandas' drop_duplicates on the whole row)
    unique = pd.read_json(SINGLE, lines=True).astype({"judge": str}).drop_duplicates()
    unique = unique[(unique["model"] == "gamma-13b") & (unique["score"] != -1)]
    assert scores.average.mean == pytest.approx(unique["score"].mean())
    assert scores.turn1.mean == pytest.approx(unique[unique["turn"] == 1]["score"].mean())
    # FastChat's show_result, run for real, counts every row: reported beside
    assert scores.fastchat["average"] == pytest.approx(average.loc["gamma-13b", "score"])
    assert scores.fastchat["turn1"] == pytest.approx(turn1.loc[("gamma-13b", 1), "score"])
    assert scores.fastchat["turn2"] == pytest.approx(turn2.loc[("gamma-13b", 2), "score"])
    assert scores.fastchat["average"] != pytest.approx(scores.average.mean)
    (warning,) = scores.warnings
    assert f"{n_copies} judgment row(s) of gamma-13b are exact copies" in warning
    assert f"average {scores.fastchat['average']:.3f}" in warning and f"average {scores.average.mean:.3f}" in warning
    assert "exact copies" in caplog.text

    clean = mtbench_scores_from_fastchat(SINGLE, "alpha-7b", n_boot=200)
    assert clean.n_duplicate_rows == 0 and clean.fastchat is None and clean.warnings == ()
    assert clean.average.mean == pytest.approx(average.loc["alpha-7b", "score"])


def test_different_judgments_of_one_turn_are_still_repeats(tmp_path):
    rows = [json.loads(line) for line in SINGLE.read_text().splitlines() if '"alpha-7b"' in line]
    again = [{**r, "judgment": r["judgment"] + " (second look)"} for r in rows]
    path = tmp_path / "gpt-4_single.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + again))
    scores = mtbench_scores_from_fastchat(path, "alpha-7b", n_boot=100)
    assert scores.repeats == 2 and scores.n_duplicate_rows == 0 and scores.judge_sd == 0.0


def test_pairwise_file_without_the_baseline_is_an_error_as_in_fastchat():
    from fastchat.llm_judge.show_result import display_result_pairwise

    with pytest.raises(KeyError):  # FastChat's show_result fails on it (nothing to group)
        _fastchat_tables(display_result_pairwise, input_file=str(PAIR), bench_name="mt_bench", judge_model="gpt-4",
                         baseline_model="claude-v1", model_list=None)
    with pytest.raises(UserError, match="baseline model 'claude-v1'.*alpha-7b, beta-7b, gpt-3.5-turbo"):
        fastchat_show_result(PAIR, baseline_model="claude-v1")
    (table,) = _fastchat_tables(display_result_pairwise, input_file=str(PAIR), bench_name="mt_bench",
                                judge_model="gpt-4", baseline_model="gpt-3.5-turbo", model_list=None)
    ours = fastchat_show_result(PAIR)
    assert set(ours) == set(table.index) == {"alpha-7b", "beta-7b"}
    for model, row in ours.items():
        for column in ("win", "loss", "tie", "win_rate", "loss_rate", "win_rate_adjusted"):
            assert row[column] == pytest.approx(float(table.loc[model, column]))
