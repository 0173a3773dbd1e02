"""A real instruct model (SmolLM2-135M-Instruct) through batched generation and as a local judge."""

from __future__ import annotations

import pytest

from mergeval.checks.mtbench import (
    generate_answers,
    judge_single,
    mtbench_scores,
    single_check,
    stored_answers,
)
from mergeval.engines.chat import GenerationConfig, HFJudge, load_questions
from mergeval.store import Store


@pytest.mark.slow
def test_smollm2_batched_generation_and_local_judge(tmp_path, smollm2_ref):
    questions = [next(q for q in load_questions() if q.category == c) for c in ("stem", "writing")]
    greedy = GenerationConfig.greedy(max_new_tokens=16)
    with Store(tmp_path / "batched.db") as batched, Store(tmp_path / "single.db") as single:
        generate_answers(batched, smollm2_ref, questions, generation=greedy, batch_size=2)
        generate_answers(single, smollm2_ref, questions, generation=greedy, batch_size=1)
        a = stored_answers(batched, smollm2_ref, questions, greedy)
        b = stored_answers(single, smollm2_ref, questions, greedy)
        pairs = [(a[q.item_id][t], b[q.item_id][t]) for q in questions for t in (0, 1)]
        # left-padded batches may flip a rare near-tie between two tokens; never more than that
        assert sum(x == y for x, y in pairs) >= len(pairs) - 1
        # a real instruct model writes words, in both turns
        assert all(sum(ch.isalpha() for ch in text) > 10 for pair in a.values() for text in pair)

        judge = HFJudge(smollm2_ref, max_new_tokens=24, name="smollm2-judge")
        summary = judge_single(batched, smollm2_ref, questions[:1], judge, generation=greedy)
        scores = mtbench_scores(batched, smollm2_ref, questions[:1], judge, generation=greedy)
        (item,) = batched.items(smollm2_ref.fingerprint, single_check(questions[:1], judge, generation=greedy).hash,
                                with_data=True)
    # whatever this small judge does, every judgment is accounted for: rated, or retried once and counted
    reminders = sum(1 for turn in item.data["turns"].values() for j in turn["judgments"] if j["reminder_text"])
    assert summary.n_judge_calls == 2 + reminders
    assert scores.n_unparsed == summary.n_unparsed == len(item.data["unparsed_turns"])
    assert scores.n_judgments == 2
