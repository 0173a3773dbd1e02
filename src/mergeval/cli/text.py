"""`mergeval perplexity`, `mergeval bleu`, `mergeval consistency`: run a text check on models, print a table.

Exit codes: 0, 2 for a user error; `consistency` also exits with its verdict: 1 when some model's conflict
rate is not below the threshold, 3 when none failed but some model has no verdict (no pairs scored).

The options are the check's Config (`mergeval.cli.checks.check_command` derives them); each command resolves
the models, runs the check on each through the runner (only what the store lacks is computed), then reads the
summaries back from the store and renders them.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.table import Table

from mergeval.checks.bleu import bleu_scores, run_bleu
from mergeval.checks.consistency import consistency_scores, run_consistency
from mergeval.checks.perplexity import perplexity_scores, run_perplexity
from mergeval.cli.checks import CheckRun, check_command
from mergeval.cli.options import console
from mergeval.cli.progress import progress_display
from mergeval.engines.text._common import require_local
from mergeval.engines.text.consistency import DEFAULT_CONFLICT_THRESHOLD
from mergeval.errors import UserError
from mergeval.models import ModelRef, check_run_settings, resolve
from mergeval.store import Store

# check type -> (run one model, read its summary back)
_LIBRARY: dict[str, tuple[Callable[..., int], Callable[..., Any]]] = {
    "perplexity": (run_perplexity, perplexity_scores),
    "bleu": (run_bleu, bleu_scores),
    "consistency": (run_consistency, consistency_scores),
}


@dataclass
class TextRun:
    """What a text command's run hands to its table: each model with its summary, and the items computed."""

    rows: list[tuple[ModelRef, Any]]
    computed: int


def run_text_check(run: CheckRun) -> TextRun:
    """Resolve every model first (so a typo fails before any work), then run and summarise each."""
    settings = run.settings
    check_run_settings(dtype=settings.get("dtype"), device=settings.get("device"))
    refs = [
        resolve(
            m,
            dtype=settings.get("dtype", "auto"),
            batch_size=settings.get("batch_size", 8),
            device=settings.get("device"),
            trust_remote_code=settings.get("trust_remote_code", False),
        )
        for m in run.models
    ]
    for ref in refs:
        require_local(ref, run.check.type)
    evaluate, summarise = _LIBRARY[run.check.type]
    extra = {"threshold": run.options["threshold"]} if "threshold" in run.options else {}
    with Store(run.store) as store:
        with progress_display() as progress:
            computed = sum(evaluate(store, ref, run.config, progress=progress) for ref in refs)
        return TextRun([(ref, summarise(store, ref, run.config, **extra)) for ref in refs], computed)


def _footer(run: CheckRun) -> None:
    if run.report.computed:
        console.print(f"[dim]{run.report.computed} items computed now; stored in {run.store}.[/dim]")
    else:
        console.print("[dim]All items came from the store; no model was run.[/dim]")


def _fmt(value: float | None, digits: int = 3, *, bold: bool = False) -> str:
    if value is None:
        return "[dim]-[/dim]"
    text = f"{value:.{digits}f}"
    return f"[bold]{text}[/bold]" if bold else text


def _best(values: list[float | None], lower_is_better: bool) -> float | None:
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return None
    return min(present) if lower_is_better else max(present)


def _print_json(rows: list[tuple[ModelRef, Any]]) -> None:
    payload = {ref.name: {"fingerprint": ref.fingerprint, **summary.to_dict()} for ref, summary in rows}
    print(json.dumps(payload, indent=2, default=str))


def _table(title: str, columns: Sequence[str], **kwargs: Any) -> Table:
    table = Table(title=title, header_style="bold", **kwargs)
    for column in columns:
        table.add_column(column, justify="left" if column == "Model" else "right", no_wrap=column == "Model")
    return table


# -- perplexity -------------------------------------------------------------------------------------------


def show_perplexity(run: CheckRun) -> None:
    rows, config = run.report.rows, run.config
    if run.as_json:
        return _print_json(rows)
    table = _table(
        f"Perplexity · {config.text or 'bundled corpus'}",
        ("Model", "Documents", "Word ppl", "Bits/byte", "Byte ppl", "Token ppl"),
        caption=f"context {config.context_length} tokens, stride {config.window_stride}; lower is better. "
        "Token perplexity compares only models that share a tokenizer.",
    )
    best_bpb = _best([s.bits_per_byte for _, s in rows], lower_is_better=True)
    for ref, s in rows:
        best = best_bpb is not None and s.bits_per_byte == best_bpb
        table.add_row(
            ref.name,
            str(s.n_documents),
            _fmt(s.word_perplexity, 2, bold=best),
            _fmt(s.bits_per_byte, 4, bold=best),
            _fmt(s.byte_perplexity, 4),
            _fmt(s.token_perplexity, 2),
        )
    console.print(table)
    _footer(run)
    return None


# -- BLEU -------------------------------------------------------------------------------------------------


def show_bleu(run: CheckRun) -> None:
    rows = run.report.rows
    if run.as_json:
        return _print_json(rows)
    signatures = {s.bleu_signature for _, s in rows if s.bleu_signature} | {
        s.chrf_signature for _, s in rows if s.chrf_signature
    }
    table = _table(
        f"BLEU / chrF · {run.config.data or 'bundled en->fr example'}", ("Model", "Items", "BLEU", "chrF")
    )
    best_bleu = _best([s.bleu for _, s in rows], lower_is_better=False)
    best_chrf = _best([s.chrf for _, s in rows], lower_is_better=False)
    for ref, s in rows:
        table.add_row(
            ref.name,
            str(s.n_items),
            _fmt(s.bleu, 2, bold=s.bleu == best_bleu),
            _fmt(s.chrf, 2, bold=s.chrf == best_chrf),
        )
    console.print(table)
    for signature in sorted(signatures):
        console.print(f"[dim]sacrebleu {signature}[/dim]", highlight=False)
    _footer(run)
    return None


# -- consistency ------------------------------------------------------------------------------------------


def _verdict_exit_code(passed: Sequence[bool | None]) -> int:
    """Like `mergeval gate`: 0 every model passed, 1 some model failed, 3 none failed but some has no
    verdict."""
    if any(p is False for p in passed):
        return 1
    return 3 if any(p is None for p in passed) else 0


def show_consistency(run: CheckRun) -> int:
    rows, config, threshold = run.report.rows, run.config, run.options["threshold"]
    code = _verdict_exit_code([s.passed for _, s in rows])
    if run.as_json:
        _print_json(rows)
        return code
    table = _table(
        f"Consistency · {config.pairs or 'bundled pairs'}",
        ("Model", "Pairs", "Conflicts", "Conflict rate", "Verdict", "Mean similarity"),
        caption=f"conflict rate = conflicting pairs / pairs; passes below {threshold:.1%}. Agreement: same "
        f"answer, or cosine similarity >= {config.similarity_threshold} ({config.embedding_model}).",
    )
    for ref, s in rows:
        verdict = (
            "[dim]-[/dim]" if s.passed is None else "[green]pass[/green]" if s.passed else "[red]fail[/red]"
        )
        rate = "[dim]-[/dim]" if s.conflict_rate is None else f"{s.conflict_rate:.1%}"
        table.add_row(ref.name, str(s.n_pairs), str(s.n_conflicts), rate, verdict, _fmt(s.mean_similarity, 3))
    console.print(table)
    if run.options["details"]:
        with Store(run.store) as db:
            for ref, s in rows:
                _print_conflicts(db, ref, s)
    _footer(run)
    return code


def _print_conflicts(store: Store, ref: ModelRef, summary: Any) -> None:
    if not summary.conflicts:
        return
    items = {it.item_id: it for it in store.items(ref.fingerprint, summary.check_hash, with_data=True)}
    table = Table(title=f"Conflicts · {ref.name}", header_style="bold", show_lines=True)
    for column in ("Pair", "Why", "Answer a", "Answer b"):
        table.add_column(column, overflow="fold")
    for item_id in summary.conflicts:
        data = items[item_id].data
        table.add_row(item_id, summary.reasons[item_id], data["response_a"], data["response_b"])
    console.print(table)


def _run_consistency(run: CheckRun) -> TextRun:
    threshold = run.options["threshold"]
    if not 0.0 <= threshold <= 1.0:
        raise UserError(f"--threshold is a conflict rate between 0 and 1 (0.05 = 5%); got {threshold}.")
    return run_text_check(run)


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


CONSISTENCY_OPTIONS = [
    _option(
        "threshold",
        Annotated[float, typer.Option(help="Highest acceptable conflict rate, exclusive (0.05 = 5%).")],
        DEFAULT_CONFLICT_THRESHOLD,
    ),
    _option(
        "details",
        Annotated[bool, typer.Option(help="Also list every conflicting pair with both answers.")],
        False,
    ),
]


def register(app: typer.Typer) -> None:
    # The Config's own `dtype` (a check loaded in a dtype of its own) is the command's --dtype run option.
    app.command("perplexity")(
        check_command(
            "perplexity",
            show=show_perplexity,
            run=run_text_check,
            exclude=("dtype",),
            help="Sliding-window perplexity: word perplexity and bits per byte (comparable across "
            "tokenizers).",
        )
    )
    app.command("bleu")(
        check_command(
            "bleu",
            show=show_bleu,
            run=run_text_check,
            exclude=("dtype",),
            help="Generate answers and score them against references: sacrebleu corpus BLEU and chrF.",
        )
    )
    app.command("consistency")(
        check_command(
            "consistency",
            show=show_consistency,
            run=_run_consistency,
            exclude=("dtype",),
            extra=CONSISTENCY_OPTIONS,
            help="Ask each question two ways and flag answers that conflict; conflict rate vs the threshold.",
        )
    )
