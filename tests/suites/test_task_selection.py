"""`--tasks` names are checked against the suite's YAML before anything heavy loads, and a name that belongs
to another bundled suite says which one to pick."""

import json
import os
import subprocess
import sys

import pytest

from mergeval.errors import UserError
from mergeval.suites import load_suite

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def test_lm_eval_task_names_of_the_chosen_suite_are_accepted():
    smoke = load_suite("smoke").subset(["smoke_arc", "smoke_mmlu_astronomy", "GSM8K"])
    assert [b.tasks for b in smoke.benchmarks] == [["smoke_arc"], ["smoke_mmlu_astronomy"], ["smoke_gsm8k"]]
    board = load_suite("leaderboard-v1").subset(["arc_challenge", "mmlu_anatomy", "truthfulqa_mc2", "mmlu"])
    assert [b.tasks[:1] for b in board.benchmarks] == [["arc_challenge"], ["mmlu_anatomy"], ["truthfulqa_mc2"],
                                                       ["mmlu_abstract_algebra"]]
    assert len(board.benchmarks[-1].tasks) == 57


@pytest.mark.parametrize(
    ("suite", "tasks", "message"),
    [
        ("smoke", ["arc_challenge"],
         "'arc_challenge' is in the leaderboard-v1 suite, not in smoke (arc, hellaswag, mmlu, truthfulqa, winogrande, gsm8k): add --suite leaderboard-v1."),
        ("smoke", ["mmlu_anatomy", "gsm8k"],
         "'mmlu_anatomy' is in the leaderboard-v1 suite, not in smoke (arc, hellaswag, mmlu, truthfulqa, winogrande, gsm8k): add --suite leaderboard-v1."),
        ("leaderboard-v1", ["smoke_hellaswag"],
         "'smoke_hellaswag' is in the smoke suite, not in leaderboard-v1 (arc, hellaswag, mmlu, truthfulqa, winogrande, gsm8k): add --suite smoke."),
        ("leaderboard-v1", ["smoke_arc", "smoke_gsm8k"], "'smoke_arc', 'smoke_gsm8k' are in the smoke suite"),
    ],
)
def test_a_task_of_another_suite_names_that_suite(suite, tasks, message):
    with pytest.raises(UserError) as raised:
        load_suite(suite).subset(tasks)
    assert message in str(raised.value)


def test_an_unknown_name_lists_the_suite_s_benchmarks_and_a_task_example():
    with pytest.raises(UserError) as raised:
        load_suite("smoke").subset(["arcc"])
    assert str(raised.value) == (
        "Unknown task 'arcc' for suite smoke. Choose from: arc, hellaswag, mmlu, truthfulqa, winogrande, gsm8k "
        "(or a single lm-eval task of the suite, e.g. smoke_mmlu_astronomy)."
    )
    with pytest.raises(UserError, match=r"Unknown task 'arc_challenge', 'nope' for suite smoke\."):
        load_suite("smoke").subset(["arc_challenge", "nope"])  # not all in one other suite: the plain message


def test_the_cli_says_so_before_reading_the_model_or_importing_lm_eval(tmp_path):
    """A wrong name fails with one line and exit 2, nothing is written, and neither lm-eval, torch, transformers
    nor datasets was imported on the way (the check is YAML only), even for a model path that does not exist."""
    script = (
        "import sys\n"
        "from mergeval.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    heavy = [m for m in ('lm_eval', 'torch', 'transformers', 'datasets') if m in sys.modules]\n"
        "    print(__import__('json').dumps({'code': exc.code, 'heavy': heavy}))\n"
    )
    store = tmp_path / "r.db"
    proc = subprocess.run(
        [sys.executable, "-c", script, "eval", str(tmp_path / "no-such-model"), "--tasks", "arc_challenge",
         "--store", str(store)], check=False, capture_output=True, text=True, env=ENV, timeout=600,
    )
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome == {"code": 2, "heavy": []}, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    message = "error: 'arc_challenge' is in the leaderboard-v1 suite, not in smoke (arc, hellaswag, mmlu, truthfulqa, winogrande, gsm8k): add --suite leaderboard-v1."
    assert lines == [message], proc.stderr
    assert not store.exists()
