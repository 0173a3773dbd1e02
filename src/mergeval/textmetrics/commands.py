"""`mergeval perplexity`, `mergeval bleu`, `mergeval consistency`: run a text check on models, print a table.

Thin views over the library: each command resolves the models, calls `run_<check>` for each (only what the
store lacks is computed), then reads the summaries back from the store and renders them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mergeval.models import ModelRef, resolve
from mergeval.store import DEFAULT_STORE, Store

console = Console()

ModelsArg = Annotated[
    list[str], typer.Argument(help="Model folders, hub ids (org/name\\[@rev]) or .gguf files.")
]
StoreOption = Annotated[
    Path, typer.Option("--store", help="Results database (SQLite).", envvar="MERGEVAL_STORE")
]
DtypeOption = Annotated[str, typer.Option(help="auto | float32 | bfloat16 | float16 (part of the check).")]
BatchOption = Annotated[int, typer.Option(min=1, help="Prompts or documents per forward pass.")]
DeviceOption = Annotated[
    str | None, typer.Option(help="cpu | cuda | cuda:1 | mps (default: best available).")
]
TrustOption = Annotated[bool, typer.Option(help="Allow model code from the model folder.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the summaries as JSON instead of a table.")]
MaxNewTokensOption = Annotated[int, typer.Option(min=1, help="Longest answer, in tokens.")]
ChatOption = Annotated[bool, typer.Option(help="Wrap prompts in the model's chat template when it has one.")]
NewlineOption = Annotated[bool, typer.Option(help="Keep only the first line of each answer.")]


def _run_all(
    models: Sequence[str],
    store_path: Path,
    run: Callable[[Store, ModelRef, Any], int],
    summarise: Callable[[Store, ModelRef], Any],
    *,
    dtype: str,
    batch_size: int,
    device: str | None,
    trust_remote_code: bool,
) -> tuple[list[tuple[ModelRef, Any]], int]:
    """Resolve every model first (so a typo fails before any work), then run and summarise each."""
    from mergeval.cli import rich_progress

    refs = [
        resolve(m, dtype=dtype, batch_size=batch_size, device=device, trust_remote_code=trust_remote_code)
        for m in models
    ]
    computed = 0
    with Store(store_path) as store:
        with rich_progress() as progress:
            for ref in refs:
                computed += run(store, ref, progress)
        return [(ref, summarise(store, ref)) for ref in refs], computed


def _footer(computed: int, store_path: Path) -> None:
    if computed:
        console.print(f"[dim]{computed} items computed now; stored in {store_path}.[/dim]")
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
    print(
        json.dumps(
            {ref.name: {"fingerprint": ref.fingerprint, **summary.to_dict()} for ref, summary in rows},
            indent=2,
            default=str,
        )
    )


# -- perplexity -------------------------------------------------------------------------------------------


def perplexity_cmd(
    models: ModelsArg,
    text: Annotated[
        str | None,
        typer.Option(
            help="A .txt/.md/.jsonl file, a folder of them, or 'wikitext' (default: the bundled corpus)."
        ),
    ] = None,
    context_length: Annotated[int, typer.Option(min=2, help="Tokens per window.")] = 2048,
    stride: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="New tokens scored per window (default: the context "
            "length, lm-eval's non-overlapping windows).",
        ),
    ] = None,
    store: StoreOption = DEFAULT_STORE,
    dtype: DtypeOption = "auto",
    batch_size: BatchOption = 8,
    device: DeviceOption = None,
    trust_remote_code: TrustOption = False,
    as_json: JsonOption = False,
) -> None:
    """Sliding-window perplexity: word perplexity and bits per byte (comparable across tokenizers)."""
    from mergeval.textmetrics.perplexity import PerplexityConfig, perplexity_scores, run_perplexity

    config = PerplexityConfig(text=text, context_length=context_length, stride=stride, dtype=dtype)
    config.validate()
    rows, computed = _run_all(
        models,
        store,
        lambda s, r, p: run_perplexity(s, r, config, progress=p),
        lambda s, r: perplexity_scores(s, r, config),
        dtype=dtype,
        batch_size=batch_size,
        device=device,
        trust_remote_code=trust_remote_code,
    )
    if as_json:
        _print_json(rows)
        return
    table = Table(
        title=f"Perplexity · {text or 'bundled corpus'}",
        header_style="bold",
        caption=f"context {config.context_length} tokens, stride {config.window_stride}; lower is better. "
        "Token perplexity compares only models that share a tokenizer.",
    )
    for column in ("Model", "Documents", "Word ppl", "Bits/byte", "Byte ppl", "Token ppl"):
        table.add_column(column, justify="left" if column == "Model" else "right", no_wrap=column == "Model")
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
    _footer(computed, store)


# -- BLEU -------------------------------------------------------------------------------------------------


def bleu_cmd(
    models: ModelsArg,
    data: Annotated[
        str | None,
        typer.Option(
            help="JSONL with prompt, reference (string or list), optional id "
            "(default: a bundled 10-sentence English->French example)."
        ),
    ] = None,
    max_new_tokens: MaxNewTokensOption = 64,
    chat: ChatOption = True,
    stop_at_newline: NewlineOption = True,
    tokenize: Annotated[
        str, typer.Option(help="sacrebleu tokenizer: 13a, intl, zh, ja-mecab, char, ...")
    ] = "13a",
    lowercase: Annotated[bool, typer.Option(help="Case-insensitive BLEU and chrF.")] = False,
    store: StoreOption = DEFAULT_STORE,
    dtype: DtypeOption = "auto",
    batch_size: BatchOption = 8,
    device: DeviceOption = None,
    trust_remote_code: TrustOption = False,
    as_json: JsonOption = False,
) -> None:
    """Generate answers and score them against references: sacrebleu corpus BLEU and chrF."""
    from mergeval.textmetrics.bleu import BleuConfig, bleu_scores, run_bleu

    config = BleuConfig(
        data=data,
        max_new_tokens=max_new_tokens,
        chat=chat,
        stop_at_newline=stop_at_newline,
        tokenize=tokenize,
        lowercase=lowercase,
        dtype=dtype,
    )
    config.validate()
    rows, computed = _run_all(
        models,
        store,
        lambda s, r, p: run_bleu(s, r, config, progress=p),
        lambda s, r: bleu_scores(s, r, config),
        dtype=dtype,
        batch_size=batch_size,
        device=device,
        trust_remote_code=trust_remote_code,
    )
    if as_json:
        _print_json(rows)
        return
    signatures = {s.bleu_signature for _, s in rows if s.bleu_signature} | {
        s.chrf_signature for _, s in rows if s.chrf_signature
    }
    table = Table(title=f"BLEU / chrF · {data or 'bundled en->fr example'}", header_style="bold")
    for column in ("Model", "Items", "BLEU", "chrF"):
        table.add_column(column, justify="left" if column == "Model" else "right", no_wrap=column == "Model")
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
    _footer(computed, store)


# -- consistency ------------------------------------------------------------------------------------------


def consistency_cmd(
    models: ModelsArg,
    pairs: Annotated[
        str | None,
        typer.Option(
            help="JSONL with id, prompt_a, prompt_b, optional answer and "
            "expect (agree|differ) (default: the bundled 26 pairs)."
        ),
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="Highest acceptable conflict rate, exclusive (0.05 = 5%).")
    ] = 0.05,
    similarity_threshold: Annotated[
        float, typer.Option(help="Cosine similarity at or above which two answers agree.")
    ] = 0.7,
    differ_threshold: Annotated[
        float,
        typer.Option(help="Cosine similarity at or above which answers to 'differ' pairs count as the same."),
    ] = 0.9,
    embedding_model: Annotated[
        str,
        typer.Option(
            help="Sentence-embedding model: the bundled all-MiniLM-L6-v2 or a sentence-transformers folder."
        ),
    ] = "all-MiniLM-L6-v2",
    max_new_tokens: MaxNewTokensOption = 48,
    chat: ChatOption = True,
    stop_at_newline: NewlineOption = True,
    details: Annotated[
        bool, typer.Option(help="Also list every conflicting pair with both answers.")
    ] = False,
    store: StoreOption = DEFAULT_STORE,
    dtype: DtypeOption = "auto",
    batch_size: BatchOption = 8,
    device: DeviceOption = None,
    trust_remote_code: TrustOption = False,
    as_json: JsonOption = False,
) -> None:
    """Ask each question two ways and flag answers that conflict; conflict rate vs the threshold."""
    from mergeval.textmetrics.consistency import ConsistencyConfig, consistency_scores, run_consistency

    config = ConsistencyConfig(
        pairs=pairs,
        max_new_tokens=max_new_tokens,
        chat=chat,
        stop_at_newline=stop_at_newline,
        embedding_model=embedding_model,
        dtype=dtype,
        similarity_threshold=similarity_threshold,
        differ_threshold=differ_threshold,
        threshold=threshold,
    )
    config.validate()
    rows, computed = _run_all(
        models,
        store,
        lambda s, r, p: run_consistency(s, r, config, progress=p),
        lambda s, r: consistency_scores(s, r, config),
        dtype=dtype,
        batch_size=batch_size,
        device=device,
        trust_remote_code=trust_remote_code,
    )
    if as_json:
        _print_json(rows)
        return
    table = Table(
        title=f"Consistency · {pairs or 'bundled pairs'}",
        header_style="bold",
        caption=f"conflict rate = conflicting pairs / pairs; passes below {threshold:.1%}. Agreement: "
        f"same answer, or cosine similarity >= {similarity_threshold} ({embedding_model}).",
    )
    for column in ("Model", "Pairs", "Conflicts", "Conflict rate", "Verdict", "Mean similarity"):
        table.add_column(column, justify="left" if column == "Model" else "right", no_wrap=column == "Model")
    for ref, s in rows:
        verdict = (
            "[dim]-[/dim]" if s.passed is None else "[green]pass[/green]" if s.passed else "[red]fail[/red]"
        )
        rate = "[dim]-[/dim]" if s.conflict_rate is None else f"{s.conflict_rate:.1%}"
        table.add_row(ref.name, str(s.n_pairs), str(s.n_conflicts), rate, verdict, _fmt(s.mean_similarity, 3))
    console.print(table)
    if details:
        with Store(store) as db:
            for ref, s in rows:
                _print_conflicts(db, ref, s)
    _footer(computed, store)


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


def register(app: typer.Typer) -> None:
    app.command("perplexity")(perplexity_cmd)
    app.command("bleu")(bleu_cmd)
    app.command("consistency")(consistency_cmd)
