"""The `mergeval` command. Thin: parse arguments, call the library, render. Every command is a library call
that a notebook user can make too."""

from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# lm-eval and datasets draw tqdm bars of their own; ours (rich) replace them. Must be set before tqdm loads.
os.environ.setdefault("TQDM_DISABLE", "1")

from mergeval import __version__  # noqa: E402
from mergeval.errors import UserError

app = typer.Typer(
    name="mergeval",
    help="Is the merged checkpoint better than its parents? Evaluate, compare, gate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Offline data mirrors.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)

StoreOpt = Annotated[Path, typer.Option("--store", help="Results database (SQLite).", envvar="MERGEVAL_STORE")]
DEFAULT_STORE_PATH = Path("mergeval-results") / "mergeval.db"


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


@contextmanager
def rich_progress():
    """A progress display with one bar per (model, task), ETA included; yields harness callbacks."""
    from mergeval.harness import TaskProgress

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=err_console, transient=False) as progress:
        current: dict[str, int] = {}

        def start(model: str, task: str, total: int) -> None:
            current["id"] = progress.add_task(f"{model} · {task}", total=total)

        def advance(n: int) -> None:
            progress.advance(current["id"], n)

        yield TaskProgress(start=start, advance=advance, done=lambda: None)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")
    for noisy in ("lm_eval", "lm-eval", "datasets", "transformers", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        try:
            import transformers

            transformers.utils.logging.disable_progress_bar()
            transformers.utils.logging.set_verbosity_error()
        except Exception:
            pass
        try:
            import datasets

            datasets.disable_progress_bars()
            datasets.logging.set_verbosity_error()
        except Exception:
            pass


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"mergeval {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version_callback, is_eager=True)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show library logs.")] = False,
) -> None:
    _configure_logging(verbose)


@app.command("eval")
def eval_cmd(
    models: Annotated[list[str], typer.Argument(help="Model folders, hub ids (org/name[@rev]) or .gguf files.")],
    suite: Annotated[str, typer.Option(help="leaderboard-v1 | smoke | custom | path/to/suite.yaml")] = "smoke",
    tasks: Annotated[list[str] | None, typer.Option("--tasks", "-t", help="Benchmarks or lm-eval task names, "
                                                     "comma-separated (default: the whole suite).")] = None,
    limit: Annotated[str | None, typer.Option(help="Items per task: a count (50) or a fraction (0.1).")] = None,
    store: StoreOpt = DEFAULT_STORE_PATH,
    data_dir: Annotated[Path | None, typer.Option(help="Local dataset mirror (see `mergeval data pull`).",
                                                  envvar="MERGEVAL_DATA_DIR")] = None,
    include_path: Annotated[list[str] | None, typer.Option(help="Folder of your own lm-eval task YAMLs.")] = None,
    backend: Annotated[str | None, typer.Option(help="mergeval-hf (prefix-sharing, default) | hf (plain lm-eval)")]
    = None,
    dtype: Annotated[str, typer.Option(help="auto | float32 | bfloat16 | float16")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    device: Annotated[str | None, typer.Option(help="cpu | cuda | cuda:1 | mps (default: best available)")] = None,
    trust_remote_code: Annotated[bool, typer.Option(help="Allow model code from the model folder.")] = False,
    subjects: Annotated[bool, typer.Option(help="Also print per-subject tables (MMLU).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of a table.")] = False,
) -> None:
    """Evaluate models on a suite. Only items not already in the store are computed."""
    from mergeval.evaluation import evaluate
    from mergeval.report.terminal import print_eval

    with rich_progress() as progress:
        result = evaluate(
            models, suite=suite, tasks=_split(tasks) or None, limit=limit, store=store, data_dir=data_dir,
            include_paths=include_path or [], backend=backend, dtype=dtype, batch_size=batch_size, device=device,
            trust_remote_code=trust_remote_code, progress=progress,
        )
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        return
    print_eval(result, console, subjects=subjects)
    if result.evaluated_items == 0:
        console.print("[dim]All items came from the store; no model was run.[/dim]")
    else:
        console.print(f"[dim]{result.evaluated_items} items evaluated; stored in {store}.[/dim]")


@app.command("show")
def show_cmd(
    store: StoreOpt = DEFAULT_STORE_PATH,
    suite: Annotated[str, typer.Option(help="Which suite's table to draw.")] = "smoke",
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these models (name or "
                                                     "fingerprint prefix).")] = None,
    tasks: Annotated[list[str] | None, typer.Option("--tasks", "-t")] = None,
    subjects: Annotated[bool, typer.Option(help="Also print per-subject tables (MMLU).")] = False,
) -> None:
    """Print stored results again (no model is loaded, nothing is computed)."""
    from mergeval.evaluation import read_results
    from mergeval.report.terminal import print_eval

    result = read_results(store, suite=suite, models=_split(model) or None, tasks=_split(tasks) or None)
    print_eval(result, console, subjects=subjects)


@app.command("export")
def export_cmd(
    format: Annotated[str, typer.Option("--format", "-f", help="json | csv")] = "json",
    store: StoreOpt = DEFAULT_STORE_PATH,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write (default: stdout).")] = None,
    items: Annotated[bool, typer.Option(help="Export every stored item, not only task scores.")] = False,
) -> None:
    """Export stored results (task scores, or per-item rows with --items) as JSON or CSV."""
    from mergeval.export import export_results

    if format not in ("json", "csv"):
        raise UserError(f"Unknown export format {format!r}. Use --format json or --format csv.")
    text = export_results(store, format=format, items=items)
    if out:
        out.write_text(text)
        err_console.print(f"Wrote {out}")
    else:
        sys.stdout.write(text)


@data_app.command("pull")
def data_pull(
    to: Annotated[Path, typer.Option("--to", help="Mirror folder to create or update.")],
    suite: Annotated[str, typer.Option(help="Suite whose datasets to pull.")] = "leaderboard-v1",
) -> None:
    """Download a suite's datasets from the Hugging Face hub into a local mirror (needs internet)."""
    from mergeval.data import pull_suite

    paths = pull_suite(suite, to, on_dataset=lambda repo: err_console.print(f"pulling {repo} ..."))
    console.print(f"Pulled {len(paths)} datasets into {to}. Use: mergeval eval MODEL --suite {suite} --data-dir {to}")


# Command groups owned by other packages register themselves here (each module: `register(app)`).
_COMMAND_MODULES: list[str] = [
    "mergeval.compare.commands",
    "mergeval.textmetrics.commands",
    "mergeval.merge.commands",
    "mergeval.code.commands",
    "mergeval.chat.commands",
]


def _register_commands() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_commands()


def main() -> None:
    """Entry point: user errors print one clear message and exit non-zero, without a traceback."""
    try:
        # Without standalone mode, click returns (instead of raising) the code of a `typer.Exit(code)`.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserError as exc:
        err_console.print(f"[bold red]error:[/bold red] {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("\n[yellow]Interrupted. Everything evaluated so far is stored; run the same command "
                          "again to resume.[/yellow]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
