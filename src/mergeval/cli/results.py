"""`mergeval eval`, `show`, `export`, `data pull`, `convert`: evaluate models on a suite, read the store back,
mirror datasets, convert GGUF files. Each is one library call and a view of its result."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from mergeval import api
from mergeval.cli.options import (
    DEFAULT_STORE,
    AddressOpt,
    BackendOpt,
    DataDirOpt,
    DeviceOpt,
    ExecutorOpt,
    JsonOpt,
    ModelsArg,
    StoreOpt,
    SubjectsOpt,
    TrustOpt,
    console,
    err_console,
    split_list,
)
from mergeval.cli.progress import progress_display
from mergeval.core.executors import resolve_executor
from mergeval.data import pull_suite
from mergeval.engines.lmeval.harness import CHECK_KIND, parse_limit
from mergeval.errors import UserError
from mergeval.export import check_output_file, export_results, write_output
from mergeval.models import check_run_settings, convert_gguf
from mergeval.render.terminal import print_eval

TasksOpt = Annotated[list[str] | None, typer.Option("--tasks", "-t", help="Benchmarks or lm-eval task names, "
                                                    "comma-separated (default: the whole suite).")]


def eval_cmd(
    models: ModelsArg,
    suite: Annotated[str, typer.Option(help="leaderboard-v1 | leaderboard-v2 | smoke | custom | path/to/suite.yaml")]
    = "smoke",
    tasks: TasksOpt = None,
    limit: Annotated[str | None, typer.Option(help="Items per task: a count (50) or a fraction (0.1).")] = None,
    store: StoreOpt = DEFAULT_STORE,
    data_dir: DataDirOpt = None,
    include_path: Annotated[list[str] | None, typer.Option(help="Folder of your own lm-eval task YAMLs.")] = None,
    backend: BackendOpt = None,
    dtype: Annotated[str, typer.Option(help="auto | float32 | bfloat16 | float16")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    device: DeviceOpt = None,
    trust_remote_code: TrustOpt = False,
    subjects: SubjectsOpt = False,
    as_json: JsonOpt = False,
    chat_template: Annotated[bool, typer.Option(
        "--chat-template/--no-chat-template",
        help="Prompts through each model's chat template, few-shot examples as turns (lm-eval "
             "--apply_chat_template --fewshot_as_multiturn; the leaderboard-v2 setting for chat models).")] = False,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
) -> None:
    """Evaluate models on a suite. Only items not already in the store are computed."""
    parse_limit(limit)  # bad settings fail before the progress display starts
    check_run_settings(dtype=dtype, device=device, backend=backend)
    runs_on = resolve_executor(executor, address)
    # the core protocol: one bar per key (Ray runs several at once); a spinner until the first one
    with progress_display(preparing="loading the models' identities, lm-eval and the tasks") as progress:
        result = api.evaluate(
            models, suite=suite, tasks=split_list(tasks) or None, limit=limit, store=store, data_dir=data_dir,
            include_paths=include_path or [], backend=backend, dtype=dtype, batch_size=batch_size, device=device,
            trust_remote_code=trust_remote_code, progress=progress, chat_template=chat_template, executor=runs_on,
        )
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        return
    print_eval(result, console, subjects=subjects, sizes=dataset_sizes(store, result))
    if result.evaluated_items == 0:
        console.print("[dim]All items came from the store; no model was run.[/dim]")
    else:
        console.print(f"[dim]{result.evaluated_items} items evaluated; stored in {store}.[/dim]")


def show_cmd(
    store: StoreOpt = DEFAULT_STORE,
    suite: Annotated[str, typer.Option(help="Which suite's table to draw.")] = "smoke",
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these models (name or "
                                                     "fingerprint prefix).")] = None,
    tasks: Annotated[list[str] | None, typer.Option("--tasks", "-t")] = None,
    subjects: SubjectsOpt = False,
) -> None:
    """Print stored results again (no model is loaded, nothing is computed)."""
    result = api.read_results(store, suite=suite, models=split_list(model) or None, tasks=split_list(tasks) or None)
    print_eval(result, console, subjects=subjects, sizes=dataset_sizes(store, result))


def dataset_sizes(store: Path, result) -> dict[str, int]:
    """Each benchmark's whole dataset (items), from the task facts runs store beside the items: what the
    `n=10 of 1,172` under a header counts against. Benchmarks with a task whose size is unknown are left out."""
    from mergeval.checks.lmeval import TASK_FACTS
    from mergeval.store import Store

    sizes: dict[str, int] = {}
    if not result.models or not Path(store).exists():
        return sizes
    with Store(store, readonly=True) as db:
        n_docs: dict[str, int] = {}
        for check in db.checks(CHECK_KIND):
            facts = db.cache_get(TASK_FACTS, check.hash) or {}
            if isinstance(facts.get("n_docs"), int):
                n_docs[check.name] = max(n_docs.get(check.name, 0), facts["n_docs"])
    for bench in result.benchmarks:
        tasks = {t for m in result.models if (s := m.scores.get(bench["name"])) for t in s.tasks}
        if tasks and all(t in n_docs for t in tasks):
            sizes[bench["name"]] = sum(n_docs[t] for t in tasks)
    return sizes


def export_cmd(
    format: Annotated[str, typer.Option("--format", "-f", help="json | csv")] = "json",
    store: StoreOpt = DEFAULT_STORE,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write (default: stdout).")] = None,
    items: Annotated[bool, typer.Option(help="Export every stored item, not only task scores.")] = False,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these models (name or "
                                                     "fingerprint prefix; repeat or comma-separate).")] = None,
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="Only these tasks (as stored, e.g. "
                                                    "arc_challenge; repeat or comma-separate).")] = None,
) -> None:
    """Export stored results (task scores, or per-item rows with --items) as JSON or CSV."""
    if format not in ("json", "csv"):
        raise UserError(f"Unknown export format {format!r}. Use --format json or --format csv.")
    if out:
        check_output_file(out)  # before reading the store: a wrong --out fails at once
    text = export_results(store, format=format, items=items, models=split_list(model) or None,
                          tasks=split_list(task) or None)
    if out:
        write_output(text, out)
        err_console.print(f"Wrote {out}")
    else:
        sys.stdout.write(text)


def data_pull_cmd(
    to: Annotated[Path, typer.Option("--to", help="Mirror folder to create or update.")],
    suite: Annotated[str, typer.Option(help="Suite whose datasets to pull.")] = "leaderboard-v1",
) -> None:
    """Download a suite's datasets from the Hugging Face hub into a local mirror (needs internet)."""
    paths = pull_suite(suite, to, on_dataset=lambda repo: err_console.print(f"pulling {repo} ..."),
                       on_skip=lambda reason: err_console.print(f"[yellow]{reason}[/yellow]"))
    console.print(f"Pulled {len(paths)} datasets into {to}. Use: mergeval eval MODEL --suite {suite} --data-dir {to}")


def convert_cmd(
    gguf: Annotated[Path, typer.Argument(help="A .gguf model file.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write (new, or empty).")],
) -> None:
    """Turn a GGUF file into a plain model folder (dequantised safetensors, config, tokenizer) for mergekit,
    lm-eval or transformers."""
    folder = convert_gguf(gguf, out, on_start=lambda: err_console.print(f"Converting {gguf} ...", soft_wrap=True))
    console.print(f"Wrote the model folder {folder}; use it in a mergekit config or with `mergeval eval {folder}`.",
                  soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
    app.command("show")(show_cmd)
    app.command("export")(export_cmd)
    data_app = typer.Typer(help="Offline data mirrors.", no_args_is_help=True)
    data_app.command("pull")(data_pull_cmd)
    app.add_typer(data_app, name="data")
    app.command("convert")(convert_cmd)
