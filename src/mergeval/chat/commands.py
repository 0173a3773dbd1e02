"""`mergeval mtbench` and `mergeval mtbench-pair`: MT-Bench answers + judgments outside a plan.

    mergeval mtbench ./merged ./parent-a --judge openai:gpt-4o@https://api.openai.com/v1 \
        --judge-key-env OPENAI_API_KEY
    mergeval mtbench-pair ./merged ./parent-a --judge openai:gpt-4o@https://api.openai.com/v1 \
        --judge-key-env OPENAI_API_KEY

Answers and judgments are stored question by question, so a second run costs nothing and an interrupted
one resumes. The API key is read from the variable named by --judge-key-env and never printed or stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mergeval.errors import UserError


def _cli():
    from mergeval import cli

    return cli


JudgeOpt = Annotated[str, typer.Option("--judge", help="openai:MODEL@URL (an OpenAI-compatible endpoint) or a "
                                                       "local model folder.")]
KeyEnvOpt = Annotated[str | None, typer.Option("--judge-key-env", help="NAME of the environment variable with "
                                                                       "the judge's API key.")]
QuestionsOpt = Annotated[Path | None, typer.Option("--questions", help="FastChat question.jsonl (default: the "
                                                                       "bundled 24 questions).")]
RefsOpt = Annotated[Path | None, typer.Option("--reference-answers", help="FastChat reference_answer/*.jsonl.")]
PromptsOpt = Annotated[Path | None, typer.Option("--judge-prompts", help="FastChat judge_prompts.jsonl.")]
TokensOpt = Annotated[int, typer.Option("--max-new-tokens", min=1, help="New tokens per answer turn.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N questions.")]
StoreOpt = Annotated[Path, typer.Option("--store", help="Results database (SQLite).", envvar="MERGEVAL_STORE")]
DEFAULT_STORE = Path("mergeval-results") / "mergeval.db"


class _RichProgress:
    """The chat engine's progress hooks drawn by `mergeval.cli.rich_progress` (one bar per step)."""

    def __init__(self, task_progress):
        self.task_progress = task_progress

    def start(self, label: str, total: int) -> None:
        self.task_progress.start("mt-bench", label, total)

    def advance(self, n: int = 1) -> None:
        self.task_progress.advance(n)

    def done(self) -> None:
        self.task_progress.done()


def _setup(judge: str, judge_key_env: str | None, questions: Path | None, reference_answers: Path | None,
           judge_prompts: Path | None, limit: int | None):
    from mergeval.chat import load_judge_prompts, load_questions, make_judge

    if judge_key_env is not None and not judge_key_env.replace("_", "a").isalnum():
        raise UserError("--judge-key-env takes the NAME of an environment variable (e.g. OPENAI_API_KEY), not "
                        "the key itself. Export the key in that variable and pass its name.")
    question_list = load_questions(questions, reference_answers=reference_answers)
    if limit:
        question_list = question_list[:limit]
    return question_list, load_judge_prompts(judge_prompts), make_judge(judge, api_key_env=judge_key_env)


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def mtbench_cmd(
    models: Annotated[list[str], typer.Argument(help="Model folders, hub ids, .gguf files or openai:MODEL@URL.")],
    judge: JudgeOpt,
    judge_key_env: KeyEnvOpt = None,
    questions: QuestionsOpt = None,
    reference_answers: RefsOpt = None,
    judge_prompts: PromptsOpt = None,
    max_new_tokens: TokensOpt = 1024,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Judgments per turn (judge noise).")] = 1,
    limit: LimitOpt = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Questions per generation batch.")] = 8,
    dtype: Annotated[str, typer.Option(help="auto | float32 | bfloat16 | float16")] = "auto",
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """MT-Bench single grading: generate answers, judge them 1-10, print turn 1 / turn 2 / average."""
    from mergeval.chat import GenerationConfig, generate_answers, judge_single, mtbench_scores
    from mergeval.compare.bands import mtbench_band
    from mergeval.models import resolve
    from mergeval.store import Store

    cli = _cli()
    question_list, prompts, the_judge = _setup(judge, judge_key_env, questions, reference_answers,
                                               judge_prompts, limit)
    generation = GenerationConfig(max_new_tokens=max_new_tokens)
    refs = [resolve(m, dtype=dtype, batch_size=batch_size) for m in models]
    store.parent.mkdir(parents=True, exist_ok=True)
    with Store(store) as db, cli.rich_progress() as task_progress:
        progress = _RichProgress(task_progress)
        for ref in refs:
            generate_answers(db, ref, question_list, generation=generation, progress=progress)
            judge_single(db, ref, question_list, the_judge, generation=generation, prompts=prompts,
                         repeats=repeats, progress=progress)
        results = [mtbench_scores(db, ref, question_list, the_judge, generation=generation, prompts=prompts,
                                  repeats=repeats) for ref in refs]
    table = Table(title=f"MT-Bench ({len(question_list)} questions, judge {the_judge.name})")
    for column in ("model", "turn 1", "turn 2", "average", "95% CI", "unparsed", "band"):
        table.add_column(column, justify="left" if column in ("model", "band") else "right")
    for s in results:
        average = s.average.mean if s.average else None
        ci = f"{s.average.ci_low:.2f}-{s.average.ci_high:.2f}" if s.average else "-"
        table.add_row(s.model, _fmt(s.turn1.mean if s.turn1 else None), _fmt(s.turn2.mean if s.turn2 else None),
                      _fmt(average), ci, str(s.n_unparsed), mtbench_band(average) if average is not None else "-")
    cli.console.print(table)
    cli.console.print(f"[dim]Stored in {store}. Unparsed = judgments without a rating even after a format "
                      "reminder (left out of the means).[/dim]")


def mtbench_pair_cmd(
    model_a: Annotated[str, typer.Argument(help="The candidate (e.g. the merge).")],
    model_b: Annotated[str, typer.Argument(help="The opponent (e.g. a parent).")],
    judge: JudgeOpt,
    judge_key_env: KeyEnvOpt = None,
    questions: QuestionsOpt = None,
    reference_answers: RefsOpt = None,
    judge_prompts: PromptsOpt = None,
    max_new_tokens: TokensOpt = 1024,
    limit: LimitOpt = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Questions per generation batch.")] = 8,
    dtype: Annotated[str, typer.Option(help="auto | float32 | bfloat16 | float16")] = "auto",
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """MT-Bench A/B: A against B in both answer orders; prints win / tie / loss and the judge's consistency."""
    from mergeval.chat import GenerationConfig, generate_answers, judge_pairwise, pairwise_summary
    from mergeval.models import resolve
    from mergeval.store import Store

    cli = _cli()
    question_list, prompts, the_judge = _setup(judge, judge_key_env, questions, reference_answers,
                                               judge_prompts, limit)
    generation = GenerationConfig(max_new_tokens=max_new_tokens)
    ref_a, ref_b = (resolve(m, dtype=dtype, batch_size=batch_size) for m in (model_a, model_b))
    store.parent.mkdir(parents=True, exist_ok=True)
    with Store(store) as db, cli.rich_progress() as task_progress:
        progress = _RichProgress(task_progress)
        for ref in (ref_a, ref_b):
            generate_answers(db, ref, question_list, generation=generation, progress=progress)
        judge_pairwise(db, ref_a, ref_b, question_list, the_judge, generation=generation, prompts=prompts,
                       progress=progress)
        r = pairwise_summary(db, ref_a, ref_b, question_list, the_judge, generation=generation, prompts=prompts)
    table = Table(title=f"{r.model_a} vs {r.model_b} ({r.n_games} games, judge {the_judge.name})")
    for column in ("wins", "ties", "losses", "win rate", "loss rate", "adjusted win rate (95% CI)",
                   "position consistency", "unparsed"):
        table.add_column(column, justify="right")
    adjusted = r.win_rate_adjusted
    table.add_row(str(r.wins), str(r.ties), str(r.losses), _fmt(r.win_rate, 3), _fmt(r.loss_rate, 3),
                  f"{adjusted.mean:.3f} ({adjusted.ci_low:.3f}-{adjusted.ci_high:.3f})" if adjusted else "-",
                  _fmt(r.consistency_rate, 3), str(r.n_unparsed))
    cli.console.print(table)
    cli.console.print("[dim]A win counts only when both answer orders agree; disagreeing orders are ties.[/dim]")


def register(app: typer.Typer) -> None:
    """Add `mtbench` and `mtbench-pair` to the `mergeval` command."""
    app.command("mtbench")(mtbench_cmd)
    app.command("mtbench-pair")(mtbench_pair_cmd)
