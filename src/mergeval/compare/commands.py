"""CLI commands of the comparison: `init`, `run`, `compare`, `gate`, `sanity` (registered into `mergeval`).

Exit codes (all commands): 2 for a user error (bad plan, missing model, ...). `gate` (and `sanity`) also
exit with the checklist's result: 0 every gate passed, 1 a gate failed, 3 no gate failed but some gate is
not evaluated. `run` and `compare` exit 0 when they produced a report, whatever the gates say.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

PlanArg = Annotated[Path, typer.Argument(help="The plan file (mergeval.yaml).")]
StoreOverride = Annotated[
    Path | None,
    typer.Option("--store", help="Results database (default: the plan's `store:`).", envvar="MERGEVAL_STORE"),
]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Folder for report.md/.json/.html (default: the plan's `output:`)."),
]
SubjectsOpt = Annotated[bool, typer.Option(help="Also show per-subject (MMLU) tables.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the report as JSON (for CI) instead of tables.")]
NoWriteOpt = Annotated[bool, typer.Option("--no-write", help="Do not write report files.")]


def _cli():
    from mergeval import cli

    return cli


def _finish(
    report: dict[str, Any],
    plan,
    *,
    out: Path | None,
    no_write: bool,
    as_json: bool,
    subjects: bool,
    gates_only: bool = False,
) -> None:
    from mergeval.compare.console import print_report
    from mergeval.compare.engine import write_reports
    from mergeval.report.jsonreport import render_json

    cli = _cli()
    show_subjects = subjects or plan.settings.subjects
    written = (
        {}
        if no_write
        else write_reports(report, out or plan.resolve_path(plan.output), subjects=show_subjects)
    )
    if as_json:
        sys.stdout.write(render_json(report))
    else:
        print_report(report, cli.console, subjects=show_subjects, gates_only=gates_only)
    if written:
        cli.err_console.print("[dim]Reports: " + ", ".join(str(p) for p in written.values()) + "[/dim]")


def init_cmd(
    path: Annotated[Path, typer.Argument(help="Where to write the example plan.")] = Path("mergeval.yaml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example plan (models + roles, checks, gates) to edit."""
    from mergeval.plan import write_example

    written = write_example(path, force=force)
    _cli().console.print(f"Wrote {written}. Edit the model paths, then: mergeval run {written}")


def run_cmd(
    plan_file: PlanArg,
    store: StoreOverride = None,
    out: OutOpt = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Only run these checks (type or name); the comparison still uses everything stored.",
        ),
    ] = None,
    subjects: SubjectsOpt = False,
    as_json: JsonOpt = False,
    no_write: NoWriteOpt = False,
) -> None:
    """Evaluate what the plan needs that the store lacks (sanity checks first), then compare and report."""
    from mergeval.compare.engine import run_plan
    from mergeval.plan import load_plan

    cli = _cli()
    plan = load_plan(plan_file)
    with cli.rich_progress() as progress:
        report = run_plan(
            plan,
            store=store,
            progress=progress,
            say=lambda msg: cli.err_console.print(f"[dim]{msg}[/dim]"),
            checks=cli._split(only) or None,
        )
    _finish(report, plan, out=out, no_write=no_write, as_json=as_json, subjects=subjects)


def compare_cmd(
    plan_file: PlanArg,
    store: StoreOverride = None,
    out: OutOpt = None,
    subjects: SubjectsOpt = False,
    as_json: JsonOpt = False,
    no_write: NoWriteOpt = False,
) -> None:
    """Compare from the results store only (no model is run); lists the evaluations that are missing."""
    from mergeval.compare.engine import compare_plan
    from mergeval.plan import load_plan

    plan = load_plan(plan_file, check_paths=False)
    report = compare_plan(plan, store=store)
    _finish(report, plan, out=out, no_write=no_write, as_json=as_json, subjects=subjects)


def gate_cmd(
    plan_file: PlanArg,
    store: StoreOverride = None,
    out: OutOpt = None,
    run: Annotated[
        bool, typer.Option("--run", help="Evaluate what is missing first (as `mergeval run`).")
    ] = False,
    as_json: JsonOpt = False,
    no_write: NoWriteOpt = False,
) -> None:
    """The deployment checklist: pass / fail / not evaluated per gate. Exit 0 all pass, 1 a gate failed,
    3 some gate not evaluated, 2 user error."""
    from mergeval.compare.engine import compare_plan, exit_code, run_plan
    from mergeval.plan import load_plan

    cli = _cli()
    if run:
        plan = load_plan(plan_file)
        with cli.rich_progress() as progress:
            report = run_plan(
                plan,
                store=store,
                progress=progress,
                say=lambda msg: cli.err_console.print(f"[dim]{msg}[/dim]"),
            )
    else:
        plan = load_plan(plan_file, check_paths=False)
        store_file = store or plan.resolve_path(plan.store)
        if not Path(store_file).exists():
            from mergeval.errors import UserError

            raise UserError(
                f"No results store at {store_file} yet, so no gate can be evaluated. Run "
                f"`mergeval run {plan_file}` (or `mergeval gate --run {plan_file}`) first."
            )
        report = compare_plan(plan, store=store)
    _finish(report, plan, out=out, no_write=no_write, as_json=as_json, subjects=False, gates_only=True)
    raise typer.Exit(exit_code(report))


def sanity_cmd(
    model: Annotated[str, typer.Argument(help="Model folder, hub id or .gguf file.")],
    parent: Annotated[
        list[str] | None,
        typer.Option(
            "--parent", "-p", help="A parent model (repeat): the tokenizer and chat template must match one."
        ),
    ] = None,
    store: Annotated[Path, typer.Option("--store", help="Results database.", envvar="MERGEVAL_STORE")] = Path(
        "mergeval-results"
    )
    / "mergeval.db",
    dtype: Annotated[str, typer.Option(help="auto | float32 | bfloat16 | float16")] = "auto",
    device: Annotated[str | None, typer.Option(help="cpu | cuda | mps")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=8, help="Length of the long answer.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Fast sanity checks of a (merged) model: generation, repetition, NaN weights, tokenizer vs parents.
    Exit 0 all pass, 1 some check failed."""
    import json

    from rich.table import Table

    from mergeval.models import resolve
    from mergeval.sanity import sanity_into_store, stored_sanity
    from mergeval.store import Store

    cli = _cli()
    ref = resolve(model, dtype=dtype, device=device)
    parents = [resolve(p, dtype=dtype, device=device) for p in cli._split(parent)]
    with Store(store) as db:
        with cli.console.status(f"Sanity checks of {ref.name}..."):
            sanity_into_store(db, ref, parents, max_new_tokens=max_new_tokens)
        stored = stored_sanity(db, ref, parents, max_new_tokens=max_new_tokens)
    assert stored is not None
    results, facts = stored
    failed = [r for r in results if r["status"] != "pass"]
    if as_json:
        sys.stdout.write(
            json.dumps(
                {
                    "model": ref.name,
                    "fingerprint": ref.fingerprint,
                    "checks": results,
                    "facts": facts,
                    "passed": not failed,
                },
                indent=2,
            )
            + "\n"
        )
    else:
        table = Table(title=f"Sanity checks: {ref.name}", header_style="bold")
        table.add_column("Check")
        table.add_column("Status")
        table.add_column("Detail")
        for r in results:
            status = "[bold green]PASS[/bold green]" if r["status"] == "pass" else "[bold red]FAIL[/bold red]"
            table.add_row(r["check"], status, r["detail"].replace("[", "\\["))
        cli.console.print(table)
        shown = ", ".join(f"{k} {v:.3g}" for k, v in facts.items())
        cli.console.print(f"[dim]{shown}; stored in {store}[/dim]")
    raise typer.Exit(1 if failed else 0)


def register(app: typer.Typer) -> None:
    """Add init / run / compare / gate / sanity to the `mergeval` command."""
    app.command("init")(init_cmd)
    app.command("run")(run_cmd)
    app.command("compare")(compare_cmd)
    app.command("gate")(gate_cmd)
    app.command("sanity")(sanity_cmd)
