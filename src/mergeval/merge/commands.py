"""CLI commands of the merge lab: `merge`, `sweep` and the merge-story `demo` (registered into `mergeval`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

StoreOpt = Annotated[
    Path, typer.Option("--store", help="Results database (SQLite).", envvar="MERGEVAL_STORE")
]


def _cli():
    from mergeval import cli

    return cli


def merge_cmd(
    config: Annotated[Path, typer.Argument(help="A mergekit YAML config.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the merged model to.")],
    store: StoreOpt = Path("mergeval-results") / "mergeval.db",
    seed: Annotated[int, typer.Option(help="Random seed (DARE/DELLA drop weights at random).")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it already holds files.")] = False,
    allow_crimes: Annotated[
        bool, typer.Option(help="Let mergekit mix architectures (you know why).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the provenance as JSON.")] = False,
) -> None:
    """Merge with mergekit and record how the result was made (config, seed, parents' fingerprints)."""
    from rich.markup import escape

    from mergeval.merge import merge, merge_provenance
    from mergeval.store import Store

    cli = _cli()
    with cli.err_console.status(f"merging {config} with mergekit ..."):
        result = merge(config, out, store=store, seed=seed, overwrite=overwrite, allow_crimes=allow_crimes)
    with Store(store) as db:
        prov = merge_provenance(db, result.fingerprint)
    if as_json:
        sys.stdout.write(
            json.dumps(
                {"output": str(result.output_path), **(prov.to_dict() if prov else {})}, indent=2, default=str
            )
            + "\n"
        )
        return
    cli.console.print(
        f"Merged into [bold]{escape(str(result.output_path))}[/bold] in {result.seconds:.1f} s "
        f"(fingerprint {result.fingerprint})."
    )
    if prov:
        cli.console.print(f"How it was made: {escape(prov.summary())}")
    cli.console.print(
        f"[dim]Provenance stored in {escape(str(store))}. "
        f"Evaluate it: mergeval eval {escape(str(result.output_path))}[/dim]"
    )


def sweep_cmd(
    sweep_file: Annotated[Path, typer.Argument(help="A sweep YAML (mergekit config + grid + checks).")],
    store: StoreOpt = Path("mergeval-results") / "mergeval.db",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Sweep folder (report, kept weights).")
    ] = None,
    keep: Annotated[
        str | None, typer.Option(help="none | best | all: candidates' weights to keep on disk.")
    ] = None,
    in_memory: Annotated[
        str | None, typer.Option(help="auto | yes | no: merge small models in memory.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Merge each candidate of a grid, evaluate it (parents once), rank it on held-out items, report."""
    from rich.markup import escape
    from rich.table import Table

    from mergeval.errors import UserError
    from mergeval.merge import run_sweep

    cli = _cli()
    if keep is not None and keep not in ("none", "best", "all"):
        raise UserError(f"--keep {keep!r}: use none, best or all.")
    memory = {None: None, "auto": "auto", "yes": True, "true": True, "no": False, "false": False}
    if in_memory not in memory:
        raise UserError(f"--in-memory {in_memory!r}: use auto, yes or no.")
    with cli.rich_progress() as progress:
        result = run_sweep(
            sweep_file,
            store=store,
            out_dir=out,
            keep=keep,
            in_memory=memory[in_memory],
            on_event=lambda m: cli.err_console.print(escape(m)),
            progress=progress,
        )
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
        return
    table = Table(
        title=f"Sweep {result.name}: ranked on {result.selection_items} selection items, "
        f"reported on {result.report_items} others",
        header_style="bold",
    )
    table.add_column("#", justify="right")
    table.add_column("Candidate")
    table.add_column("Objective\n(selection)", justify="right")
    table.add_column("Objective\n(report)", justify="right")
    for bench in result.benchmarks:
        table.add_column(f"{bench}\n(report)", justify="right")
    table.add_column("Status")
    ranked = sorted(result.candidates, key=lambda c: -(c.objective_selection or -1e9))
    for rank, row in enumerate([*ranked, *result.parents], start=1):
        name = escape(row.name)
        cells = [
            str(rank) if row.role == "candidate" else "",
            f"[bold]{name}[/bold]" if row.name == result.winner else name,
            _num(row.objective_selection),
            _num(row.objective_report),
            *[_num(row.report.get(b)) for b in result.benchmarks],
            row.role if row.role != "candidate" else row.status,
        ]
        table.add_row(*cells)
    cli.console.print(table)
    for comparison, what in ((result.vs_runner_up, "runner-up"), (result.vs_best_parent, "best parent")):
        if comparison:
            verdict = "significant" if comparison.significant else "not significant"
            cli.console.print(
                f"Winner vs {what} ({escape(comparison.b)}): {comparison.diff:+.1f} points on the report "
                "items "
                f"(95% CI {comparison.ci_low:+.1f} to {comparison.ci_high:+.1f}, "
                f"p {comparison.p_value:.3g}, {verdict})."
            )
    for warning in result.warnings:
        cli.console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    if result.best_path:
        cli.console.print(f"Winner's weights: {escape(result.best_path)}")
    cli.console.print(f"[bold]Sweep report:[/bold] {escape(str(result.report_path))}")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def demo_cmd(
    store: StoreOpt = Path("mergeval-results") / "demo.db",
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for merges, plan and reports.")] = Path(
        "mergeval-results"
    )
    / "demo",
    quick: Annotated[bool, typer.Option(help="Shorter training (less reliable parents; for tests).")] = False,
    smoke: Annotated[
        bool | None,
        typer.Option(
            "--smoke/--no-smoke", help="Also evaluate on the bundled smoke suite (default: when installed)."
        ),
    ] = None,
    model_demo: Annotated[
        bool, typer.Option("--model-demo", help="Instead: SmolLM2-135M-Instruct on the smoke suite.")
    ] = False,
    limit: Annotated[str | None, typer.Option(help="--model-demo: items per task.")] = None,
) -> None:
    """The merge story, offline on a CPU: two tiny parents with different skills, three mergekit merges, the
    comparison, the gates and an HTML report. Re-runs come from caches and the store."""
    from mergeval.demo import run_demo

    cli = _cli()
    run_demo(
        store=store,
        limit=limit,
        console=cli.console,
        progress_factory=cli.rich_progress,
        out=out,
        quick=quick,
        smoke=smoke,
        model_demo=model_demo,
    )


def register(app: typer.Typer) -> None:
    app.command("merge")(merge_cmd)
    app.command("sweep")(sweep_cmd)
    # The merge story; the single-model SmolLM2 demo is `demo --model-demo`.
    app.command("demo")(demo_cmd)
