"""The chat engine: MT-Bench-style conversations, answered by a model and judged by an LLM. No store, no plan.

    questions = load_questions()                       # bundled set, or load_questions("question.jsonl", ...)
    answerer = make_answerer(ref); answerer.load()     # a local model (batched) or an endpoint (concurrent)
    for answers in answer_all(answerer, questions, GenerationConfig()): ...
    judge = make_judge("openai:gpt-4o@https://api.openai.com/v1", api_key_env="OPENAI_API_KEY")
    for step in Judging(SingleGrading(questions, load_judge_prompts()), judge, answers, ids, cached): ...
    scores_from_ratings(question_ratings(rows, questions), model=..., judge=...)

The MT-Bench and pairwise check types (`mergeval.checks.mtbench`, `mergeval.checks.pairwise`) run this through
the core runner, which stores every answer and judgment as it is made; they also hold the library calls that
work on a store (generate_answers, judge_single, mtbench_scores, ...). See docs/mt-bench.md.
"""

from mergeval.engines.chat._endpoint import EndpointUnavailable
from mergeval.engines.chat.fastchat import (
    FastChatJudgments,
    answer_records,
    fastchat_answer_files,
    fastchat_answers_ref,
    fastchat_model_name,
    fastchat_show_result,
    import_fastchat_judgments,
    mtbench_scores_from_fastchat,
    write_fastchat_answers,
    write_fastchat_pair_judgments,
    write_fastchat_single_judgments,
)
from mergeval.engines.chat.generation import (
    DEFAULT_TEMPERATURES,
    Answer,
    GenerationConfig,
    answer_all,
    conversation,
    imported_answers,
    make_answerer,
)
from mergeval.engines.chat.judges import HFJudge, Judge, OpenAIJudge, judge_from_spec, make_judge
from mergeval.engines.chat.judging import Judging, PairwiseGrading, SingleGrading, game_outcome, pair_item_id
from mergeval.engines.chat.parsing import parse_rating, parse_verdict
from mergeval.engines.chat.prompts import JudgePrompts, load_judge_prompts
from mergeval.engines.chat.questions import (
    CATEGORIES,
    Question,
    load_questions,
    load_reference_answers,
    pull_official_files,
    with_references,
)
from mergeval.engines.chat.scores import (
    CategoryScores,
    MTBenchScores,
    PairwiseResult,
    ScoreCI,
    games,
    question_ratings,
    result_from_games,
    scores_from_ratings,
)

__all__ = [
    "CATEGORIES",
    "DEFAULT_TEMPERATURES",
    "Answer",
    "CategoryScores",
    "EndpointUnavailable",
    "FastChatJudgments",
    "GenerationConfig",
    "HFJudge",
    "Judge",
    "JudgePrompts",
    "Judging",
    "MTBenchScores",
    "OpenAIJudge",
    "PairwiseGrading",
    "PairwiseResult",
    "Question",
    "ScoreCI",
    "SingleGrading",
    "answer_all",
    "answer_records",
    "conversation",
    "fastchat_answer_files",
    "fastchat_answers_ref",
    "fastchat_model_name",
    "fastchat_show_result",
    "game_outcome",
    "games",
    "import_fastchat_judgments",
    "imported_answers",
    "judge_from_spec",
    "load_judge_prompts",
    "load_questions",
    "load_reference_answers",
    "make_answerer",
    "make_judge",
    "mtbench_scores_from_fastchat",
    "pair_item_id",
    "parse_rating",
    "parse_verdict",
    "pull_official_files",
    "question_ratings",
    "result_from_games",
    "scores_from_ratings",
    "with_references",
    "write_fastchat_answers",
    "write_fastchat_pair_judgments",
    "write_fastchat_single_judgments",
]
