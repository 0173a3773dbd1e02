"""`mergeval mtbench` and `mergeval mtbench-pair`: MT-Bench answers + judgments outside a plan.

    mergeval mtbench ./merged ./parent-a --judge openai:gpt-4o@https://api.openai.com/v1 \
        --judge-key-env OPENAI_API_KEY
    mergeval mtbench-pair ./merged ./parent-a --judge openai:gpt-4o@https://api.openai.com/v1 \
        --judge-key-env OPENAI_API_KEY
    mergeval mtbench --import-answers data/mt_bench/model_answer/ --questions question.jsonl --judge ...
    mergeval mtbench --import-judgments data/mt_bench/model_judgment/gpt-4_single.jsonl

Each command builds the check's Config (`mtbench` / `pairwise`) from its options and runs it on the models
through the runner, as a plan would; then it reads the scores back from the store and prints them. FastChat
answer files (--import-answers FILE_OR_FOLDER, or a .jsonl MODEL argument) are models whose answers are the
file's (the Config's `answers:`), named after the file as FastChat names them. --import-judgments prints
scores from a FastChat judgment file: mergeval's view beside FastChat's show_result numbers.

Answers and judgments are stored question by question, so a second run costs nothing and an interrupted
one resumes. The API key is read from the variable named by --judge-key-env and never printed or stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mergeval.checks._chat import ChatConfig, ChatInputs
from mergeval.checks.mtbench import MTBenchConfig, model_scores, mtbench_metrics
from mergeval.checks.pairwise import PairwiseConfig, pairwise_summary
from mergeval.cli.options import DEFAULT_STORE, StoreOpt, console, err_console
from mergeval.cli.progress import progress_display
from mergeval.core.context import CheckContext, PlanModel, RunEnv
from mergeval.core.registry import get_check
from mergeval.core.runner import Entry, run_entries
from mergeval.engines.chat import (
    MTBenchScores,
    answer_records,
    fastchat_answer_files,
    fastchat_answers_ref,
    fastchat_show_result,
    import_fastchat_judgments,
    load_questions,
    mtbench_scores_from_fastchat,
)
from mergeval.engines.chat.fastchat import fastchat_name_of_file
from mergeval.errors import UserError
from mergeval.models import resolve
from mergeval.plan import ModelSpec
from mergeval.store import Store

JudgeOpt = Annotated[str, typer.Option("--judge", help="openai:MODEL@URL (an OpenAI-compatible endpoint) or a "
                                                       "local model folder.")]
OptionalJudgeOpt = Annotated[str | None, typer.Option("--judge", help="openai:MODEL@URL (an OpenAI-compatible "
                                                                      "endpoint) or a local model folder.")]
ParserOpt = Annotated[str, typer.Option("--parser", help="How ratings are read: fastchat (FastChat's exact rule) "
                                                         "or lenient.")]
KeyEnvOpt = Annotated[str | None, typer.Option("--judge-key-env", help="NAME of the environment variable with "
                                                                       "the judge's API key.")]
QuestionsOpt = Annotated[Path | None, typer.Option("--questions", help="FastChat question.jsonl (default: the "
                                                                       "bundled 24 questions).")]
RefsOpt = Annotated[Path | None, typer.Option("--reference-answers", help="FastChat reference_answer/*.jsonl.")]
PromptsOpt = Annotated[Path | None, typer.Option("--judge-prompts", help="FastChat judge_prompts.jsonl.")]
TokensOpt = Annotated[int, typer.Option("--max-new-tokens", min=1, help="New tokens per answer turn.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N questions.")]
BatchSizeOpt = Annotated[int, typer.Option(min=1, help="Questions per generation batch.")]
DtypeOpt = Annotated[str, typer.Option(help="auto | float32 | bfloat16 | float16")]

MTBENCH = mtbench_metrics()[0]  # the benchmark's spec: its bands label the averages


def _config(config_cls: type[ChatConfig], judge: str, judge_key_env: str | None, **options: Any) -> ChatConfig:
    """The check's Config from the command's options (a bad value is one sentence). A local judge gets 1024
    new tokens per judgment, as `mergeval mtbench` always gave it."""
    if judge_key_env is not None and not judge_key_env.replace("_", "a").isalnum():
        raise UserError("--judge-key-env takes the NAME of an environment variable (e.g. OPENAI_API_KEY), not "
                        "the key itself. Export the key in that variable and pass its name.")
    spec: dict[str, Any] = {"model": judge, "api_key_env": judge_key_env}
    if not judge.startswith("openai:"):
        spec["max_tokens"] = 1024
    options = {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}
    return config_cls.from_options(judge={k: v for k, v in spec.items() if v is not None}, **options)


def _is_answer_file(model: str) -> bool:
    return model.endswith(".jsonl") and Path(model).is_file()


def _answer_file_model(path: Path, name: str | None, questions: list) -> PlanModel:
    """The model a FastChat answer file is (named after the file, or `name`); it must answer every question."""
    records = answer_records(path)
    have = sum(1 for q in questions if q.item_id in records)
    if not have:
        raise UserError(f"{path} has no answers to any of the {len(questions)} questions given (its question ids "
                        f"start {', '.join(list(records)[:3])}); pass the question file they answer (--questions).")
    if have < len(questions):
        raise UserError(f"{path} answers {have} of the {len(questions)} questions; judge it on the question file it "
                        "answers (--questions question.jsonl) or on fewer questions (--limit).")
    ref = fastchat_answers_ref(path, name, records=records)
    return PlanModel(ModelSpec(name=ref.name, path=str(path), role="candidate"), ref)


def _models(config: ChatConfig, inputs: ChatInputs, models: list[str], answer_files: list[Path],
            model_name: str | None, **settings: Any) -> tuple[list[PlanModel], ChatConfig]:
    """The MODEL arguments (in order) and the files of --import-answers as plan models, and the config with the
    FastChat answer files as its `answers:` (so the check takes their answers instead of generating)."""
    files = [f for path in answer_files for f in fastchat_answer_files(path)]
    if model_name and len(files) + sum(map(_is_answer_file, models)) != 1:
        raise UserError(f"--model-name names one imported answer file; {len(files) + sum(map(_is_answer_file, models))} "
                        "were given (without it each model is named after its file, as FastChat does).")
    out, answers = [], {}
    for m in [*models, *files]:
        if _is_answer_file(str(m)):
            path = Path(m)
            model = _answer_file_model(path, model_name or fastchat_name_of_file(path), inputs.questions)
            answers[model.name] = str(path)
        else:
            ref = resolve(m, **settings)
            model = PlanModel(ModelSpec(name=ref.name, path=m, role="candidate"), ref)
        out.append(model)
    return out, config.model_copy(update={"answers": answers})


def _run(check_type: str, config: ChatConfig, models: list[PlanModel], db: Store, batch_size: int) -> None:
    """Run the check on `models` through the runner, as a plan would (only what the store lacks)."""
    with progress_display() as progress:
        ctx = CheckContext(plan=None, store=db, models=models, env=RunEnv(batch_size=batch_size), progress=progress)
        run_entries([Entry(get_check(check_type), config)], ctx)


def _pct(x: float | None) -> str:
    """A rate (0-1) on the terminal's one scale: percent, one decimal."""
    return "-" if x is None else f"{100 * x:.1f}"


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def mtbench_cmd(
    models: Annotated[list[str] | None, typer.Argument(help="Model folders, hub ids, .gguf files, openai:MODEL@URL "
                                                             "or FastChat answer files (.jsonl).")] = None,
    judge: OptionalJudgeOpt = None,
    judge_key_env: KeyEnvOpt = None,
    questions: QuestionsOpt = None,
    reference_answers: RefsOpt = None,
    judge_prompts: PromptsOpt = None,
    max_new_tokens: TokensOpt = 1024,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Judgments per turn (judge noise).")] = 1,
    limit: LimitOpt = None,
    batch_size: BatchSizeOpt = 8,
    dtype: DtypeOpt = "auto",
    parser: ParserOpt = "fastchat",
    import_answers: Annotated[list[Path] | None, typer.Option(
        "--import-answers", help="A FastChat answer file, or a model_answer/ folder: judge these answers (each "
                                 "file is a model named after the file). Repeatable.")] = None,
    model_name: Annotated[str | None, typer.Option(
        "--model-name", help="With one imported file: the model's name (default: the file name, as FastChat).")] = None,
    import_judgments: Annotated[Path | None, typer.Option(
        "--import-judgments", help="Print the scores of a FastChat judgment file (*_single.jsonl or *_pair.jsonl); "
                                   "nothing is judged.")] = None,
    baseline_model: Annotated[str | None, typer.Option(
        "--baseline-model", help="With a pairwise --import-judgments file: FastChat's baseline (default: all "
                                 "pairs).")] = None,
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """MT-Bench single grading: generate (or import) answers, judge them 1-10, print turn 1 / turn 2 / average."""
    models, import_answers = list(models or []), list(import_answers or [])
    if import_judgments is not None:
        if models or import_answers or judge:
            raise UserError("--import-judgments reads scores from a FastChat judgment file; it takes no MODEL, "
                            "--import-answers or --judge (run those separately).")
        _show_judgments(import_judgments, questions, reference_answers, model_name, baseline_model)
        return
    if not models and not import_answers:
        raise UserError("Name the model(s) to grade (mergeval mtbench MODEL... --judge ...), or FastChat answers "
                        "with --import-answers FILE_OR_FOLDER, or read a judgment file with --import-judgments FILE.")
    if not judge:
        raise UserError("Give the judge: --judge openai:MODEL@URL (an OpenAI-compatible endpoint, with "
                        "--judge-key-env NAME for its key) or --judge MODEL_FOLDER.")
    config = _config(MTBenchConfig, judge, judge_key_env, questions=questions, reference_answers=reference_answers,
                     judge_prompts=judge_prompts, limit=limit, max_new_tokens=max_new_tokens, repeats=repeats,
                     parser=parser)
    inputs = ChatInputs.load(config, Path)
    plan_models, config = _models(config, inputs, models, import_answers, model_name, dtype=dtype,
                                  batch_size=batch_size)
    store.parent.mkdir(parents=True, exist_ok=True)
    with Store(store) as db:
        _run("mtbench", config, plan_models, db, batch_size)
        results = [model_scores(db, m.ref, inputs, config)[0] for m in plan_models]
    _print_scores(results, f"MT-Bench ({len(inputs.questions)} questions, judge {inputs.judge.name})")
    console.print(f"[dim]Stored in {store}. Unparsed = judgments without a rating even after a format "
                  "reminder (left out of the means).[/dim]")


def _print_scores(results: list[MTBenchScores], title: str) -> None:
    table = Table(title=title)
    for column in ("model", "turn 1", "turn 2", "average", "95% CI", "unparsed", "band"):
        table.add_column(column, justify="left" if column in ("model", "band") else "right")
    for s in results:
        average = s.average.mean if s.average else None
        ci = f"{s.average.ci_low:.2f}-{s.average.ci_high:.2f}" if s.average else "-"
        table.add_row(s.model, _fmt(s.turn1.mean if s.turn1 else None), _fmt(s.turn2.mean if s.turn2 else None),
                      _fmt(average), ci, str(s.n_unparsed), MTBENCH.band(average) or "-")
    console.print(table)


def mtbench_pair_cmd(
    model_a: Annotated[str, typer.Argument(help="The candidate (e.g. the merge), or a FastChat answer file.")],
    model_b: Annotated[str, typer.Argument(help="The opponent (e.g. a parent), or a FastChat answer file.")],
    judge: JudgeOpt,
    judge_key_env: KeyEnvOpt = None,
    questions: QuestionsOpt = None,
    reference_answers: RefsOpt = None,
    judge_prompts: PromptsOpt = None,
    max_new_tokens: TokensOpt = 1024,
    limit: LimitOpt = None,
    batch_size: BatchSizeOpt = 8,
    dtype: DtypeOpt = "auto",
    parser: ParserOpt = "fastchat",
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """MT-Bench A/B: A against B in both answer orders; prints win / tie / loss and the judge's consistency."""
    config = _config(PairwiseConfig, judge, judge_key_env, opponent="b", questions=questions,
                     reference_answers=reference_answers, judge_prompts=judge_prompts, limit=limit,
                     max_new_tokens=max_new_tokens, parser=parser)
    inputs = ChatInputs.load(config, Path)
    (a, b), config = _models(config, inputs, [model_a, model_b], [], None, dtype=dtype, batch_size=batch_size)
    if a.name == b.name:
        raise UserError(f"Both models are named {a.name!r}; give them different folder or file names.")
    config = config.model_copy(update={"opponent": b.name, "models": [a.name]})
    store.parent.mkdir(parents=True, exist_ok=True)
    with Store(store) as db:
        _run("pairwise", config, [a, b], db, batch_size)
        r = pairwise_summary(db, a.ref, b.ref, inputs.questions, inputs.judge, generation=inputs.generation,
                             prompts=inputs.prompts, parser=config.parser)
    table = Table(title=f"{r.model_a} vs {r.model_b} ({r.n_games} games, judge {inputs.judge.name})")
    # Rates x100 under "(%)" headers, the scale of every other table.
    for column in ("wins", "ties", "losses", "win rate (%)", "loss rate (%)", "adjusted win rate (%) (95% CI)",
                   "position consistency (%)", "unparsed"):
        table.add_column(column, justify="right")
    adjusted = r.win_rate_adjusted
    table.add_row(str(r.wins), str(r.ties), str(r.losses), _pct(r.win_rate), _pct(r.loss_rate),
                  f"{_pct(adjusted.mean)} ({_pct(adjusted.ci_low)}-{_pct(adjusted.ci_high)})" if adjusted else "-",
                  _pct(r.consistency_rate), str(r.n_unparsed))
    console.print(table)
    console.print("[dim]A win counts only when both answer orders agree; disagreeing orders are ties.[/dim]")


def _show_pairwise_file(path: Path, judgments: Any, model_name: str | None, baseline_model: str | None) -> None:
    mode = "pairwise-all" if baseline_model is None else "pairwise-baseline"
    shown = fastchat_show_result(judgments, mode=mode, baseline_model=baseline_model,
                                 model_list=[model_name] if model_name else None)
    table = Table(title=f"{path.name}: FastChat show_result, {mode}"
                        + (f" (baseline {baseline_model})" if baseline_model else ""))
    rates = ("win_rate", "loss_rate", "win_rate_adjusted")  # fractions in FastChat; x100 here, as everywhere
    for column in ("model", "win", "loss", "tie", *(f"{c} (%)" for c in rates)):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model, row in sorted(shown.items(), key=lambda kv: -kv[1]["win_rate_adjusted"]):
        table.add_row(model, *(f"{row[c]:.0f}" for c in ("win", "loss", "tie")), *(_pct(row[c]) for c in rates))
    console.print(table)


def _show_judgments(path: Path, questions: Path | None, reference_answers: Path | None,
                    model_name: str | None, baseline_model: str | None) -> None:
    """`mtbench --import-judgments FILE`: a FastChat judgment file's scores, mergeval's and show_result's."""
    judgments = import_fastchat_judgments(path)
    if judgments.kind == "pair":
        _show_pairwise_file(path, judgments, model_name, baseline_model)
        return
    question_list = load_questions(questions, reference_answers=reference_answers) if questions else None
    names = sorted({str(r["model"]) for r in judgments.rows})
    if model_name is not None:
        if model_name not in names:
            raise UserError(f"{path} has no judgments of a model named {model_name!r}; it has {', '.join(names)}.")
        names = [model_name]
    results = [mtbench_scores_from_fastchat(judgments, name, questions=question_list) for name in names]
    table = Table(title=f"{path.name}: MT-Bench ({len(judgments.rows)} judgment rows)")
    for column in ("model", "turn 1", "turn 2", "average", "95% CI", "unparsed", "duplicate rows",
                   "show_result average", "band"):
        table.add_column(column, justify="left" if column in ("model", "band") else "right")
    for s in sorted(results, key=lambda s: -(s.average.mean if s.average else 0)):
        average = s.average.mean if s.average else None
        ci = f"{s.average.ci_low:.2f}-{s.average.ci_high:.2f}" if s.average else "-"
        theirs = (s.fastchat or {}).get("average")
        table.add_row(s.model, _fmt(s.turn1.mean if s.turn1 else None), _fmt(s.turn2.mean if s.turn2 else None),
                      _fmt(average), ci, str(s.n_unparsed), str(s.n_duplicate_rows),
                      _fmt(theirs, 3) if theirs is not None and theirs != average else "same",
                      MTBENCH.band(average) or "-")
    console.print(table)
    for s in results:
        for warning in s.warnings:
            err_console.print(f"Warning: {warning}", markup=False, highlight=False)
    console.print("[dim]Unparsed = rows with score -1 (show_result drops them). Exact duplicate rows are "
                  "counted once here; show_result counts every row.[/dim]")


def register(app: typer.Typer) -> None:
    """Add `mtbench` and `mtbench-pair` to the `mergeval` command."""
    app.command("mtbench")(mtbench_cmd)
    app.command("mtbench-pair")(mtbench_pair_cmd)
