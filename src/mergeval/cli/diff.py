"""`mergeval diff CANDIDATE PARENT`: the items where a candidate and a parent disagree, from the store.

    mergeval diff linear arithmetic-parent --task arithmetic --only lost     what the merge lost
    mergeval diff merged parent-a --task mmlu --subject anatomy --json       one MMLU subject, as JSON

The command is the library call `mergeval.analysis.itemdiff.item_diffs`, drawn as a table (nothing is
recomputed; no model is loaded).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mergeval.analysis.itemdiff import NOT_STORED, DiffResult, ItemDiff, Side, item_diffs
from mergeval.cli.options import DEFAULT_STORE, JsonOpt, StoreOpt, console
from mergeval.errors import UserError

_CELL_CHARS = 160  # a text in a table cell is cut here (--json gives everything)


def _short(value: Any, limit: int = _CELL_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\r", "").replace("\n", " ⏎ ").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _choice(index: int, choices: list[str] | None) -> str:
    label = chr(ord("A") + index) if 0 <= index < 26 else str(index)
    return f"{label} {choices[index]}" if choices and index < len(choices) else label


def _side(item: ItemDiff, side: Side) -> str:
    """One model's answer to the item, in a few words."""
    mark = "✓" if side.score == 1 else ("✗" if side.score == 0 else f"{side.score:.3g}")
    if side.loglikelihoods is not None and isinstance(side.answer, int):
        ll = side.loglikelihoods[side.answer]
        return f"{mark} {_short(_choice(side.answer, item.choices), 60)} (ll {ll:.2f})"
    if "turns" in side.detail:  # MT-Bench
        parts = [f"t{t['turn']} {t['rating'] if t['rating'] is not None else '-'}: {_short(t['answer'], 50)}"
                 for t in side.detail["turns"]]
        return f"{mark} " + " | ".join(parts)
    if "status" in side.detail:  # HumanEval
        message = side.detail.get("message") or ""
        return f"{mark} {side.detail['status']}" + (f": {_short(message, 80)}" if message else "")
    if side.extracted is not None or side.answer is not None:
        extracted = "" if side.extracted is None else _short(side.extracted, 40)
        generation = "" if side.answer is None else _short(side.answer, 60)
        if generation.strip() == extracted:  # the whole generation is the answer
            return f"{mark} {extracted}"
        return f"{mark} {extracted} «{generation}»".replace("  ", " ")
    return mark


def _gold(item: ItemDiff) -> str:
    if item.choices and isinstance(item.gold, int):
        return _short(_choice(item.gold, item.choices), 60)
    if isinstance(item.gold, int) and item.gold >= 0 and item.candidate.loglikelihoods is not None:
        return _choice(item.gold, None)
    return "" if item.gold is None else _short(item.gold, 60)


def print_diff(result: DiffResult) -> None:
    for t in result.tasks:
        extra = ""
        if t.n_candidate_only or t.n_parent_only:
            extra = f"; not compared: {t.n_candidate_only} only the candidate has, {t.n_parent_only} only the parent"
        console.print(f"[bold]{escape(t.task)}[/bold] (check {t.check[:12]}, {escape(t.metric)}): {t.n_compared} "
                      f"items compared, [red]{t.n_lost} lost[/red], [green]{t.n_gained} gained[/green]{extra}",
                      soft_wrap=True, highlight=False)
    what = {"lost": "lost", "gained": "gained", None: "lost or gained"}[result.only]
    if not result.items and (result.n_lost if result.only == "lost" else result.n_gained if result.only
                             else result.n_lost + result.n_gained) and not result.subject:
        console.print("No item shown (--limit 0).")
        return
    if not result.items:
        console.print(f"No item {what} by {escape(result.candidate)} against {escape(result.parent)}"
                      + (f" in {escape(result.subject)}" if result.subject else "") + ".", highlight=False)
        return
    multi = len({it.task for it in result.items}) > 1
    groups = any(it.group and it.group != it.task for it in result.items)
    table = Table(title=f"{escape(result.candidate)} vs {escape(result.parent)}: items {what} "
                        f"({len(result.items)} shown)", header_style="bold", show_lines=True, expand=True)
    if multi:
        table.add_column("Task", overflow="fold", ratio=1)
    table.add_column("Item", no_wrap=True)
    if groups:
        table.add_column("Group", overflow="fold", ratio=1)
    table.add_column("", no_wrap=True)
    table.add_column("Question", overflow="fold", ratio=3)
    table.add_column("Gold", overflow="fold", ratio=1)
    table.add_column(escape(result.candidate), overflow="fold", ratio=2)
    table.add_column(escape(result.parent), overflow="fold", ratio=2)
    for it in result.items:
        question = "[dim]not stored[/dim]" if it.question == NOT_STORED else escape(_short(it.question))
        status = "[red]lost[/red]" if it.status == "lost" else "[green]gained[/green]"
        row = [escape(it.task)] if multi else []
        row.append(escape(it.item_id))
        if groups:
            row.append(escape(it.group or ""))
        row += [status, question, escape(_gold(it)), escape(_side(it, it.candidate)), escape(_side(it, it.parent))]
        table.add_row(*row)
    console.print(table)


def diff_cmd(
    candidate: Annotated[str, typer.Argument(help="The merged model: its stored name or fingerprint prefix.",
                                             show_default=False)],
    parent: Annotated[str, typer.Argument(help="The parent to compare with: stored name or fingerprint prefix.",
                                          show_default=False)],
    task: Annotated[str | None, typer.Option("--task", "-t", help="A stored task, or a benchmark of the suite "
                                             "(arithmetic, mmlu, ...). Default: every task both have.")] = None,
    only: Annotated[str | None, typer.Option(help="lost (the candidate wrong where the parent is right) | "
                                             "gained (the reverse). Default: both.")] = None,
    subject: Annotated[str | None, typer.Option(help="Only this MMLU subject, MT-Bench category or HumanEval "
                                                "problem.")] = None,
    limit: Annotated[int | None, typer.Option(min=0, help="Show at most this many items (counts stay "
                                              "complete).")] = None,
    config: Annotated[str | None, typer.Option(help="Which stored configuration, when a task has several: a check "
                                               "hash prefix or settings such as dtype=float32.")] = None,
    as_json: JsonOpt = False,
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """Show the items where a candidate and a parent disagree (from the store; nothing is recomputed)."""
    if only is not None and only not in ("lost", "gained"):
        raise UserError(f"Unknown --only {only!r}; pass --only lost or --only gained.")
    result = item_diffs(store, candidate, parent, task, only, subject=subject, limit=limit,  # type: ignore[arg-type]
                        config=config)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str))
        return
    print_diff(result)


def register(app: typer.Typer) -> None:
    app.command("diff")(diff_cmd)
