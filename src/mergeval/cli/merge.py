"""CLI commands of the merge lab: `merge`, `sweep` and the merge-story `demo` (registered into `mergeval`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mergeval.cli.options import (
    DEFAULT_STORE,
    AddressOpt,
    ExecutorOpt,
    JsonOpt,
    StoreOpt,
    console,
    err_console,
)
from mergeval.cli.progress import progress_display
from mergeval.core.executors import resolve_executor
from mergeval.demo import DEFAULT_OUT, DEMO_STORE, run_demo
from mergeval.errors import UserError
from mergeval.merge import SweepResult, merge, merge_provenance, run_sweep
from mergeval.merge.spec import load_sweep
from mergeval.store import Store


def merge_cmd(
    config: Annotated[Path, typer.Argument(help="A mergekit YAML config.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the merged model to.")],
    store: StoreOpt = DEFAULT_STORE,
    seed: Annotated[int, typer.Option(help="Random seed (DARE/DELLA drop weights at random).")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it already holds files.")] = False,
    allow_crimes: Annotated[bool, typer.Option(help="Let mergekit mix architectures (you know why).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the provenance as JSON.")] = False,
) -> None:
    """Merge with mergekit and record how the result was made (config, seed, parents' fingerprints)."""
    with err_console.status(f"merging {config} with mergekit ..."):
        result = merge(config, out, store=store, seed=seed, overwrite=overwrite, allow_crimes=allow_crimes)
    with Store(store) as db:
        prov = merge_provenance(db, result.fingerprint)
    if as_json:
        payload = {"output": str(result.output_path), **(prov.to_dict() if prov else {})}
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        return
    console.print(f"Merged into [bold]{escape(str(result.output_path))}[/bold] in {result.seconds:.1f} s "
                  f"(fingerprint {result.fingerprint}).")
    if prov:
        console.print(f"How it was made: {escape(prov.summary())}")
    console.print(f"[dim]Provenance stored in {escape(str(store))}. "
                  f"Evaluate it: mergeval eval {escape(str(result.output_path))}[/dim]")


_IN_MEMORY = {None: None, "auto": "auto", "yes": True, "true": True, "no": False, "false": False}


def sweep_cmd(
    sweep_file: Annotated[Path, typer.Argument(help="A sweep YAML (mergekit config + grid + checks).",
                                               show_default=False)],
    store: StoreOpt = DEFAULT_STORE,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Sweep folder (report, kept weights).")] = None,
    keep: Annotated[str | None, typer.Option(help="none | best | all: candidates' weights to keep on disk.")] = None,
    in_memory: Annotated[str | None, typer.Option(help="auto | yes | no: merge small models in memory.")] = None,
    as_json: JsonOpt = False,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
    adaptive: Annotated[bool, typer.Option("--adaptive", help="Race the candidates on the selection items: drop "
                                           "those a survivor beats (confidence bounds), evaluate only the winner "
                                           "in full.")] = False,
) -> None:
    """Merge each candidate of a grid, evaluate it (parents once), rank it on held-out items, report."""
    if keep is not None and keep not in ("none", "best", "all"):
        raise UserError(f"--keep {keep!r}: use none, best or all.")
    if in_memory not in _IN_MEMORY:
        raise UserError(f"--in-memory {in_memory!r}: use auto, yes or no.")
    runs_on = resolve_executor(executor, address, settings=load_sweep(sweep_file).settings)
    with progress_display() as progress:
        result = run_sweep(sweep_file, store=store, out_dir=out, keep=keep, in_memory=_IN_MEMORY[in_memory],
                           on_event=lambda m: err_console.print(escape(m)), progress=progress, executor=runs_on,
                           adaptive=adaptive)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
        return
    console.print(_ranking_table(result))
    for comparison, what in ((result.vs_runner_up, "runner-up"), (result.vs_best_parent, "best parent")):
        if comparison:
            verdict = "significant" if comparison.significant else "not significant"
            console.print(f"Winner vs {what} ({escape(comparison.b)}): {comparison.diff:+.1f} on the report items "
                          f"(95% CI {comparison.ci_low:+.1f} to {comparison.ci_high:+.1f}, "
                          f"p {comparison.p_value:.3g}, {verdict}).")
    if result.racing and result.racing.get("full_evaluations"):
        race = result.racing
        console.print(f"Race ({escape(race['reason'])}): {race['evaluations']} of {race['full_evaluations']} "
                      f"selection item evaluations ({100 * race['evaluations_fraction']:.0f}%).")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    if result.best_path:
        console.print(f"Winner's weights: {escape(result.best_path)}")
    console.print(f"[bold]Sweep report:[/bold] {escape(str(result.report_path))}")


def _ranking_table(result: SweepResult) -> Table:
    table = Table(title=f"Sweep {result.name}: ranked on {result.selection_items} selection items, "
                  f"reported on {result.report_items} others", header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("Candidate")
    table.add_column("Objective\n(selection)", justify="right")
    table.add_column("Objective\n(report)", justify="right")
    for bench in result.benchmarks:
        table.add_column(f"{bench}\n(report)", justify="right")
    table.add_column("Status")
    for rank, row in enumerate([*result.ranked(), *result.parents], start=1):
        name = escape(row.name)
        table.add_row(
            str(rank) if row.role == "candidate" else "",
            f"[bold]{name}[/bold]" if row.name == result.winner else name,
            _num(row.objective_selection),
            _num(row.objective_report),
            *[_num(row.report.get(b)) for b in result.benchmarks],
            row.role if row.role != "candidate" else row.status,
        )
    return table


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def demo_cmd(
    store: StoreOpt = DEMO_STORE,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for merges, plan and reports.")] = DEFAULT_OUT,
    quick: Annotated[bool, typer.Option(help="Shorter training (less reliable parents; for tests).")] = False,
    smoke: Annotated[bool | None, typer.Option(
        "--smoke/--no-smoke", help="Also evaluate on the bundled smoke suite (default: when installed).")] = None,
    model_demo: Annotated[bool, typer.Option(
        "--model-demo", help="Instead: SmolLM2-135M-Instruct on the smoke suite.")] = False,
    limit: Annotated[str | None, typer.Option(help="--model-demo: items per task.")] = None,
) -> None:
    """The merge story, offline on a CPU: two tiny parents with different skills, three mergekit merges, the
    comparison, the gates and an HTML report. Re-runs come from caches and the store."""
    run_demo(store=store, limit=limit, console=console, progress_factory=progress_display, out=out, quick=quick,
             smoke=smoke, model_demo=model_demo)


def register(app: typer.Typer) -> None:
    app.command("merge")(merge_cmd)
    app.command("sweep")(sweep_cmd)
    # The merge story; the single-model SmolLM2 demo is `demo --model-demo`.
    app.command("demo")(demo_cmd)

