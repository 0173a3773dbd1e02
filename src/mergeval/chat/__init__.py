"""MT-Bench-style conversation checks: questions, answer generation, LLM judges, scores, FastChat files.

The flow, each step a library call that writes to (or reads from) the results store:

    questions = load_questions()                       # bundled set, or load_questions("question.jsonl", ...)
    generate_answers(store, ref, questions)            # batched local generation or an endpoint; resumable
    judge = make_judge("openai:gpt-4o@https://api.openai.com/v1", api_key_env="OPENAI_API_KEY")
    judge_single(store, ref, questions, judge)         # 1-10 per turn; cached; unparsed ratings counted
    scores = mtbench_scores(store, ref, questions, judge)
    judge_pairwise(store, merged, parent, questions, judge)
    result = pairwise_summary(store, merged, parent, questions, judge)

See docs/mt-bench.md for the method, the store layout and how it differs from FastChat's llm_judge.
"""

from mergeval.chat._endpoint import EndpointUnavailable
from mergeval.chat.fastchat import (
    FastChatJudgments,
    export_fastchat_answers,
    export_fastchat_judgments,
    fastchat_show_result,
    import_fastchat_answers,
    import_fastchat_judgments,
    mtbench_scores_from_fastchat,
)
from mergeval.chat.generation import (
    DEFAULT_TEMPERATURES,
    GenerationConfig,
    answers_check,
    generate_answers,
    stored_answers,
)
from mergeval.chat.judges import HFJudge, Judge, OpenAIJudge, make_judge
from mergeval.chat.judging import JudgingSummary, judge_pairwise, judge_single, pair_check, single_check
from mergeval.chat.parsing import parse_rating, parse_verdict
from mergeval.chat.progress import NullProgress, Progress
from mergeval.chat.prompts import JudgePrompts, load_judge_prompts
from mergeval.chat.questions import (
    CATEGORIES,
    Question,
    load_questions,
    load_reference_answers,
    pull_official_files,
    with_references,
)
from mergeval.chat.scores import (
    CategoryScores,
    MTBenchScores,
    PairwiseResult,
    ScoreCI,
    mtbench_scores,
    pairwise_summary,
)

__all__ = [
    "CATEGORIES",
    "DEFAULT_TEMPERATURES",
    "CategoryScores",
    "EndpointUnavailable",
    "FastChatJudgments",
    "GenerationConfig",
    "HFJudge",
    "Judge",
    "JudgePrompts",
    "JudgingSummary",
    "MTBenchScores",
    "NullProgress",
    "OpenAIJudge",
    "PairwiseResult",
    "Progress",
    "Question",
    "ScoreCI",
    "answers_check",
    "export_fastchat_answers",
    "export_fastchat_judgments",
    "fastchat_show_result",
    "generate_answers",
    "import_fastchat_answers",
    "import_fastchat_judgments",
    "judge_pairwise",
    "judge_single",
    "load_judge_prompts",
    "load_questions",
    "load_reference_answers",
    "make_judge",
    "mtbench_scores",
    "mtbench_scores_from_fastchat",
    "pair_check",
    "pairwise_summary",
    "parse_rating",
    "parse_verdict",
    "pull_official_files",
    "single_check",
    "stored_answers",
    "with_references",
]
