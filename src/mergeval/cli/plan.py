"""CLI commands of the comparison: `init`, `run`, `compare`, `gate`, `sanity` (registered into `mergeval`).

Exit codes (all commands): 2 for a user error (bad plan, missing model, ...), 130 interrupted. `run` and
`gate` exit with the checklist's verdict: 0 every gate passed, 1 a gate failed, 3 no gate failed but some
gate is not evaluated, 4 some work failed for good on the Ray executor (the rest is stored; run again to retry
it); `sanity` 0 all checks pass, 1 one failed. `compare` exits 0 when it produced a report
(it evaluates nothing, so it reports rather than decides), `init` 0.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mergeval import api
from mergeval.analysis.engine import exit_code, store_path
from mergeval.cli.checks import CheckRun, check_command
from mergeval.cli.options import (
    AddressOpt,
    ExecutorOpt,
    StoreOverride,
    SubjectsOpt,
    console,
    err_console,
    split_list,
)
from mergeval.cli.progress import progress_display, rich_progress
from mergeval.core.executors import resolve_executor
from mergeval.errors import UserError
from mergeval.models import check_run_settings
from mergeval.plan import EXAMPLE_PLAN, PLAN_FILE, Plan, load_plan, write_example
from mergeval.render.console import print_report
from mergeval.render.files import write_reports
from mergeval.render.jsonreport import render_json

PlanArg = Annotated[Path, typer.Argument(help="The plan file (mergeval.yaml).", show_default=False)]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Folder for report.md/.json/.html (default: the plan's `output:`)."),
]
ReportJsonOpt = Annotated[bool, typer.Option("--json", help="Print the report as JSON (for CI) instead of tables.")]
NoWriteOpt = Annotated[bool, typer.Option("--no-write", help="Do not write report files.")]


def _finish(report: dict[str, Any], plan: Plan, *, out: Path | None, no_write: bool, as_json: bool,
            subjects: bool, store: Path | None = None, gates_only: bool = False) -> None:
    show_subjects = subjects or plan.settings.subjects
    written = {} if no_write else write_reports(report, out or plan.resolve_path(plan.output), subjects=show_subjects,
                                                store=store_path(plan, store))
    if as_json:
        sys.stdout.write(render_json(report))
    else:
        print_report(report, console, subjects=show_subjects, gates_only=gates_only)
    if written:
        err_console.print("[dim]Reports: " + ", ".join(str(p) for p in written.values()) + "[/dim]")


def _say(message: str) -> None:
    err_console.print(f"[dim]{message}[/dim]")


def init_cmd(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Where to write the example plan (default: mergeval.yaml; to stdout when stdout is "
            "redirected, as in `mergeval init > mergeval.yaml`; '-' for stdout).", show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example plan (models + roles, checks, gates) to edit."""
    if str(path) == "-" or (path is None and not sys.stdout.isatty()):
        sys.stdout.write(EXAMPLE_PLAN)
        sys.stdout.flush()
        return
    written = write_example(path or Path(PLAN_FILE), force=force)
    console.print(f"Wrote {written}. Edit the model paths, then: mergeval run {written}")


def run_cmd(
    plan_file: PlanArg,
    store: StoreOverride = None,
    out: OutOpt = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Only run these checks (type or name); the comparison still uses everything "
                     "stored."),
    ] = None,
    subjects: SubjectsOpt = False,
    as_json: ReportJsonOpt = False,
    no_write: NoWriteOpt = False,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
    adaptive: Annotated[
        bool | None,
        typer.Option("--adaptive/--full", help="--adaptive: stop each lm-eval benchmark as soon as every gate and "
                     "comparison on it is decided at level alpha (docs/methodology.md); --full: evaluate every "
                     "item, completing an adaptive run from the store (default: the plan's settings.adaptive)."),
    ] = None,
) -> None:
    """Evaluate what the plan needs that the store lacks (sanity checks first), then compare and report."""
    plan = _runnable_plan(plan_file)
    runs_on = resolve_executor(executor, address, settings=plan.settings)  # before anything is opened
    # the core protocol: one bar per key (Ray runs several at once); a spinner until the first one
    with progress_display(preparing="reading the plan, fingerprinting the models, loading the checks") as progress:
        report = api.run(plan, store=store, progress=progress, say=_say, checks=split_list(only),
                         executor=runs_on, adaptive=adaptive)
    _finish(report, plan, out=out, no_write=no_write, as_json=as_json, subjects=subjects, store=store)
    raise typer.Exit(exit_code(report))


def _runnable_plan(plan_file: Path) -> Plan:
    """The plan, validated, with its device checked against this machine (before anything is loaded)."""
    plan = load_plan(plan_file)
    check_run_settings(device=plan.settings.device)
    return plan


def compare_cmd(
    plan_file: PlanArg,
    store: StoreOverride = None,
    out: OutOpt = None,
    subjects: SubjectsOpt = False,
    as_json: ReportJsonOpt = False,
    no_write: NoWriteOpt = False,
) -> None:
    """Compare from the results store only (no model is run); lists the evaluations that are missing."""
    plan = load_plan(plan_file, check_paths=False)
    report = api.compare(plan, store=store)
    _finish(report, plan, out=out, no_write=no_write, as_json=as_json, subjects=subjects, store=store)


def gate_cmd(
    plan_file: PlanArg,
    store: StoreOverride = None,
    out: OutOpt = None,
    run: Annotated[bool, typer.Option("--run", help="Evaluate what is missing first (as `mergeval run`).")] = False,
    as_json: ReportJsonOpt = False,
    no_write: NoWriteOpt = False,
) -> None:
    """The deployment checklist: pass / fail / not evaluated per gate. Exit 0 all pass, 1 a gate failed,
    3 some gate not evaluated, 2 user error."""
    if run:
        plan = _runnable_plan(plan_file)
        with rich_progress() as progress:
            report = api.run(plan, store=store, progress=progress, say=_say)
    else:
        plan = load_plan(plan_file, check_paths=False)
        store_file = store or plan.resolve_path(plan.store)
        if not Path(store_file).exists():
            raise UserError(
                f"No results store at {store_file} yet, so no gate can be evaluated. Run "
                f"`mergeval run {plan_file}` (or `mergeval gate --run {plan_file}`) first."
            )
        report = api.compare(plan, store=store)
    _finish(report, plan, out=out, no_write=no_write, as_json=as_json, subjects=False, store=store,
            gates_only=True)
    raise typer.Exit(exit_code(report))


def show_sanity(run: CheckRun) -> int:
    """`mergeval sanity`: the probes' table (or JSON) of the model; exit 1 when a probe failed."""
    report = run.report
    name = next(m.name for m in report.models if m.role == "candidate")
    fingerprint = next(m.fingerprint for m in report.models if m.name == name)
    results = [{"check": r.check, "status": r.status, "detail": r.detail} for r in report.sanity if r.model == name]
    facts = dict(report.facts.get(name, {}))
    failed = [r for r in results if r["status"] != "pass"]
    if run.as_json:
        sys.stdout.write(json.dumps({"model": name, "fingerprint": fingerprint, "checks": results, "facts": facts,
                                     "passed": not failed}, indent=2) + "\n")
    else:
        _sanity_table(name, results, facts, run.store)
    return 1 if failed else 0


def _sanity_table(name: str, results: list[dict[str, Any]], facts: dict[str, float], store: Path) -> None:
    table = Table(title=f"Sanity checks: {name}", header_style="bold")
    for column in ("Check", "Status", "Detail"):
        table.add_column(column)
    for r in results:
        status = "[bold green]PASS[/bold green]" if r["status"] == "pass" else "[bold red]FAIL[/bold red]"
        table.add_row(r["check"], status, r["detail"].replace("[", "\\["))
    console.print(table)
    shown = ", ".join(f"{k} {v:.3g}" for k, v in facts.items())
    console.print(f"[dim]{shown}; stored in {store}[/dim]")


def register(app: typer.Typer) -> None:
    """Add init / run / compare / gate / sanity to the `mergeval` command."""
    app.command("init")(init_cmd)
    app.command("run")(run_cmd)
    app.command("compare")(compare_cmd)
    app.command("gate")(gate_cmd)
    app.command("sanity")(check_command(
        "sanity", show=show_sanity, one_model=True,
        run_options=("parents", "store", "dtype", "device", "as_json"),
        help="Fast sanity checks of a (merged) model: generation, repetition, NaN weights, tokenizer vs parents. "
             "Exit 0 all pass, 1 some check failed."))
