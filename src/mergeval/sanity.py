"""Sanity checks for a merged model: fast, run before anything expensive.

A broken merge (wrong tokenizer, NaN weights, a collapsed model that repeats one token) wastes hours of
benchmark time and can still produce plausible-looking accuracy numbers on multiple-choice tasks. These
checks load the model once and take seconds:

  weights_finite     no NaN or Inf in any parameter
  hello              generates non-empty text for "Hello"
  continuation       a coherent continuation of "The capital of France is" (printable, made of words,
                     not repetitive; mentioning Paris counts as coherent)
  instruction        answers "What is the capital of France?" mentioning Paris (through the chat
                     template when the tokenizer has one)
  repetition         no degenerate repetition in a 100-token answer (share of repeated 4-grams of tokens)
  tokenizer          the vocabulary equals a parent's, and the embedding matrix has a row for every token
  chat_template      the chat template equals a parent's

Generation is greedy, so results are deterministic and stored once per (model, sanity config) with check
kind `sanity` in the results store. The same load also measures the model's size and generation speed
(facts `size_gb`, `params_b`, `tokens_per_second`, for the checklist's size and speed gates).

A tiny random model fails `continuation`, `instruction` and usually `repetition`: that is the point.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from mergeval.errors import UserError
from mergeval.models import ModelRef
from mergeval.plan import CheckConfig, Plan
from mergeval.store import ItemRow, Store

CHECK_KIND = "sanity"
SANITY_VERSION = 1
PROMPTS = {
    "hello": "Hello",
    "continuation": "The capital of France is",
    "instruction": "What is the capital of France?",
    "repetition": "Write a short story about a lighthouse keeper and the sea.",
}
CHECK_ORDER = (
    "weights_finite",
    "hello",
    "continuation",
    "instruction",
    "repetition",
    "tokenizer",
    "chat_template",
)
DEFAULT_MAX_NEW_TOKENS = 100
DEFAULT_MAX_REPETITION = 0.5
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


@dataclass
class SanityResult:
    check: str
    passed: bool
    detail: str
    metrics: dict[str, float] = field(default_factory=dict)
    text: str | None = None  # the generated text, when there is one

    def to_item(self) -> ItemRow:
        data = {"detail": self.detail}
        if self.text is not None:
            data["text"] = self.text
        return ItemRow(self.check, {"pass": 1.0 if self.passed else 0.0, **self.metrics}, data)


# -- text heuristics (pure functions, tested on fixed texts) ---------------------------------------------


def repetition_rate(tokens: Sequence[Any], n: int = 4) -> float:
    """Share of the n-grams of `tokens` that repeat an earlier n-gram: 1 - distinct / total.

    0.0 for text with no repeated n-gram; close to 1 for a loop ("the the the ..."). Below n + 1 tokens
    there is nothing to repeat and the rate is 0."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if len(grams) < 2:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


_WORD = re.compile(r"^[\"'(\[*_-]*(?:[A-Za-z][A-Za-z'’-]*|\d+(?:[.,:/-]\d+)*%?)[\"')\].,;:!?*_-]*$")


def printable_share(text: str) -> float:
    """Share of characters that are printable (or plain whitespace) and not the U+FFFD replacement char."""
    if not text:
        return 0.0
    good = sum(
        1
        for ch in text
        if ch in " \n\t"
        or (ch.isprintable() and ch != "\ufffd" and unicodedata.category(ch) not in ("Cc", "Cs", "Co"))
    )
    return good / len(text)


def word_share(text: str) -> float:
    """Share of whitespace-separated tokens that look like words or numbers (with punctuation around)."""
    words = text.split()
    if not words:
        return 0.0
    return sum(1 for w in words if len(w) <= 24 and _WORD.match(w)) / len(words)


def coherence_problems(text: str, *, min_words: int = 3) -> list[str]:
    """Why `text` is not a coherent continuation ([] when it is). Mentioning Paris is always coherent here.

    Heuristics, chosen to fail byte soup and loops and to pass ordinary prose: at least `min_words`
    words, >= 95% printable characters, >= 70% word-like tokens, at most half the word 3-grams repeated."""
    if "paris" in text.lower():
        return []
    problems = []
    words = text.split()
    if len(words) < min_words:
        problems.append(f"only {len(words)} word(s)")
    printable = printable_share(text)
    if printable < 0.95:
        problems.append(f"{1 - printable:.0%} unprintable characters")
    share = word_share(text)
    if words and share < 0.7:
        problems.append(f"only {share:.0%} of tokens look like words")
    rate = repetition_rate([w.lower() for w in words], n=3)
    if rate > 0.5:
        problems.append(f"{rate:.0%} of word 3-grams repeated")
    return problems


def _show(text: str, limit: int = 80) -> str:
    shown = text.strip().replace("\n", " ")
    return repr(shown if len(shown) <= limit else shown[:limit] + "...")


# -- checks on a loaded model ------------------------------------------------------------------------------


def check_weights_finite(model) -> SanityResult:
    import torch

    bad = []
    n_params = 0
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        n_params += tensor.numel()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad.append(name)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        return SanityResult(
            "weights_finite",
            False,
            f"NaN or Inf in {len(bad)} tensor(s): {shown}",
            {"bad_tensors": float(len(bad))},
        )
    return SanityResult("weights_finite", True, f"all {n_params:,} values finite", {"bad_tensors": 0.0})


@dataclass
class Generation:
    text: str
    token_ids: list[int]
    seconds: float
    prompt: str  # what was fed to the model (after the chat template)


def generate(model, tokenizer, prompt: str, *, max_new_tokens: int, chat: bool) -> Generation:
    """Greedy generation; through the chat template when `chat` and the tokenizer has one."""
    import torch

    use_template = chat and bool(getattr(tokenizer, "chat_template", None))
    if use_template:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        encoded = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    else:
        text = prompt if not chat else f"Question: {prompt}\nAnswer:"
        encoded = tokenizer(text, return_tensors="pt")
    device = next(model.parameters()).device
    encoded = {k: v.to(device) for k, v in encoded.items()}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    started = time.perf_counter()
    with torch.no_grad():
        out = model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            temperature=None,
            top_p=None,
            top_k=None,
        )
    seconds = time.perf_counter() - started
    new_ids = out[0, encoded["input_ids"].shape[1] :].tolist()
    return Generation(tokenizer.decode(new_ids, skip_special_tokens=True), new_ids, seconds, text)


def check_hello(gen: Generation) -> SanityResult:
    ok = bool(gen.text.strip())
    return SanityResult(
        "hello",
        ok,
        f"generated {_show(gen.text)}"
        if ok
        else f"no text for 'Hello' ({len(gen.token_ids)} tokens, all special or whitespace)",
        text=gen.text,
    )


def check_continuation(gen: Generation) -> SanityResult:
    problems = coherence_problems(gen.text)
    detail = f"{PROMPTS['continuation']!r} -> {_show(gen.text)}"
    return SanityResult(
        "continuation",
        not problems,
        detail + ("" if not problems else f": not coherent ({'; '.join(problems)})"),
        {"word_share": word_share(gen.text), "printable_share": printable_share(gen.text)},
        text=gen.text,
    )


def check_instruction(gen: Generation) -> SanityResult:
    ok = "paris" in gen.text.lower()
    return SanityResult(
        "instruction",
        ok,
        f"answer {_show(gen.text)}" + ("" if ok else " does not mention Paris"),
        text=gen.text,
    )


def check_repetition(gen: Generation, *, max_repetition: float) -> SanityResult:
    rate = repetition_rate(gen.token_ids, n=4)
    ok = rate <= max_repetition
    detail = (
        f"{rate:.0%} of token 4-grams repeated in a {len(gen.token_ids)}-token answer "
        f"({'<=' if ok else '>'} {max_repetition:.0%}): {_show(gen.text, 60)}"
    )
    return SanityResult(
        "repetition",
        ok,
        detail,
        {"repetition_rate": rate, "tokens": float(len(gen.token_ids))},
        text=gen.text,
    )


def check_tokenizer(tokenizer, model_config, parents: dict[str, Any]) -> SanityResult:
    """Vocabulary equal to a parent's (any, when parents differ) and no token without an embedding row."""
    vocab = tokenizer.get_vocab()
    problems = []
    embedding_rows = getattr(model_config, "vocab_size", None)
    if embedding_rows is not None and len(tokenizer) > embedding_rows:
        problems.append(
            f"the tokenizer has {len(tokenizer)} tokens but the embedding only {embedding_rows} rows"
        )
    matches = []
    differences = []
    for name, parent_tok in parents.items():
        parent_vocab = parent_tok.get_vocab()
        if parent_vocab == vocab:
            matches.append(name)
            continue
        only_here = sorted(set(vocab) - set(parent_vocab))
        only_there = sorted(set(parent_vocab) - set(vocab))
        moved = sum(1 for t in set(vocab) & set(parent_vocab) if vocab[t] != parent_vocab[t])
        parts = [f"{len(vocab)} vs {len(parent_vocab)} tokens"]
        if only_here:
            parts.append(f"{len(only_here)} only in the merge (e.g. {only_here[:3]})")
        if only_there:
            parts.append(f"{len(only_there)} only in {name} (e.g. {only_there[:3]})")
        if moved:
            parts.append(f"{moved} with other ids")
        differences.append(f"{name}: {', '.join(parts)}")
    if parents and not matches:
        problems.append("vocabulary differs from every parent (" + "; ".join(differences) + ")")
    if problems:
        return SanityResult("tokenizer", False, "; ".join(problems), {"vocab_size": float(len(vocab))})
    same = f"same vocabulary as {', '.join(matches)}" if matches else "no parent to compare with"
    return SanityResult("tokenizer", True, f"{len(vocab)} tokens, {same}", {"vocab_size": float(len(vocab))})


def _template(tokenizer) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates
        return json.dumps(template, sort_keys=True)
    return template or None


def check_chat_template(tokenizer, parents: dict[str, Any]) -> SanityResult:
    mine = _template(tokenizer)
    theirs = {name: _template(tok) for name, tok in parents.items()}
    same = [name for name, t in theirs.items() if t == mine]
    if same:
        what = "no chat template, like" if mine is None else "same chat template as"
        return SanityResult("chat_template", True, f"{what} {', '.join(same)}")
    if mine is None:
        return SanityResult(
            "chat_template",
            False,
            "the merge has no chat template but the parents have one; "
            "copy the tokenizer files of the parent whose template you want",
        )
    has = [n for n, t in theirs.items() if t is not None]
    return SanityResult(
        "chat_template",
        False,
        "the chat template differs from every parent's"
        + (f" ({', '.join(has)} have one)" if has else " (the parents have none)"),
    )


# -- running and storing -----------------------------------------------------------------------------------


def _folder_size_gb(folder: Path | None) -> float | None:
    if folder is None or not folder.exists():
        return None
    return (
        sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
        / 1e9
    )


def run_sanity(
    ref: ModelRef,
    parents: Sequence[ModelRef] = (),
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_repetition: float = DEFAULT_MAX_REPETITION,
) -> tuple[list[SanityResult], dict[str, float]]:
    """Run every sanity check on `ref` (loading it once); returns (results, facts). Nothing is stored."""
    from transformers import AutoTokenizer

    from mergeval.models import load_hf

    if ref.path is None and ref.model_object is None:
        raise UserError(f"{ref.name} is an endpoint; sanity checks need local weights.")
    model, tokenizer = load_hf(ref)
    results = [check_weights_finite(model)]
    results.append(check_hello(generate(model, tokenizer, PROMPTS["hello"], max_new_tokens=20, chat=False)))
    results.append(
        check_continuation(generate(model, tokenizer, PROMPTS["continuation"], max_new_tokens=24, chat=False))
    )
    results.append(
        check_instruction(generate(model, tokenizer, PROMPTS["instruction"], max_new_tokens=48, chat=True))
    )
    long = generate(model, tokenizer, PROMPTS["repetition"], max_new_tokens=max_new_tokens, chat=True)
    results.append(check_repetition(long, max_repetition=max_repetition))
    local_parents = {p.name: p for p in parents if p.path is not None}
    if local_parents:
        parent_toks = {
            name: AutoTokenizer.from_pretrained(p.path, trust_remote_code=p.trust_remote_code)
            for name, p in local_parents.items()
        }
        results.append(check_tokenizer(tokenizer, model.config, parent_toks))
        results.append(check_chat_template(tokenizer, parent_toks))
    facts = {"params_b": sum(p.numel() for p in model.parameters()) / 1e9}
    size = _folder_size_gb(ref.path)
    if size is not None:
        facts["size_gb"] = size
    if long.token_ids and long.seconds > 0:
        facts["tokens_per_second"] = len(long.token_ids) / long.seconds
    del model
    return results, facts


def sanity_config(
    ref: ModelRef, parents: Sequence[ModelRef], *, max_new_tokens: int, max_repetition: float
) -> dict[str, Any]:
    """What identifies a sanity run (its hash is the store's check hash)."""
    return {
        "engine": CHECK_KIND,
        "version": SANITY_VERSION,
        "prompts": PROMPTS,
        "max_new_tokens": max_new_tokens,
        "max_repetition": max_repetition,
        "dtype": ref.dtype,
        "parents": sorted(p.fingerprint for p in parents if p.path is not None),
    }


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:24]


def sanity_into_store(
    store: Store,
    ref: ModelRef,
    parents: Sequence[ModelRef] = (),
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_repetition: float = DEFAULT_MAX_REPETITION,
) -> tuple[str, bool]:
    """Run the sanity checks unless the store has them; returns (check hash, whether they ran now)."""
    import torch

    config = sanity_config(ref, parents, max_new_tokens=max_new_tokens, max_repetition=max_repetition)
    check_hash = config_hash(config)
    if store.count_items(ref.fingerprint, check_hash):
        return check_hash, False
    store.upsert_model(
        ref.fingerprint, name=ref.name, reference=ref.reference, kind=ref.kind, metadata=ref.describe()
    )
    store.upsert_check(check_hash, kind=CHECK_KIND, name="sanity", config=config)
    from mergeval.models import chat_template_hash

    provenance = {
        "torch_version": torch.__version__,
        "dtype": ref.dtype,
        "device": ref.device or "cpu",
        "chat_template_hash": chat_template_hash(ref.path),
        "parents": [p.name for p in parents],
    }
    run_id = store.start_run(ref.fingerprint, check_hash, provenance)
    status = "failed"
    try:
        results, facts = run_sanity(
            ref, parents, max_new_tokens=max_new_tokens, max_repetition=max_repetition
        )
        items = [r.to_item() for r in results] + [ItemRow("footprint", facts, {})]
        store.add_items(ref.fingerprint, check_hash, run_id, items)
        status = "done"
    finally:
        store.finish_run(run_id, status=status)
    return check_hash, True


def stored_sanity(
    store: Store,
    ref: ModelRef,
    parents: Sequence[ModelRef] = (),
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_repetition: float = DEFAULT_MAX_REPETITION,
) -> tuple[list[dict[str, Any]], dict[str, float]] | None:
    """The stored sanity results of `ref` as ([{check, status, detail}], facts); None when not run yet."""
    config = sanity_config(ref, parents, max_new_tokens=max_new_tokens, max_repetition=max_repetition)
    rows = store.items(ref.fingerprint, config_hash(config), with_data=True)
    if not rows:
        return None
    facts: dict[str, float] = {}
    results = []
    for row in rows:
        if row.item_id == "footprint":
            facts = {k: float(v) for k, v in row.metrics.items()}
            continue
        results.append(
            {
                "check": row.item_id,
                "status": "pass" if row.metrics.get("pass") else "fail",
                "detail": row.data.get("detail", ""),
            }
        )
    order = {c: i for i, c in enumerate(CHECK_ORDER)}
    results.sort(key=lambda r: order.get(r["check"], len(order)))
    return results, facts


# -- the plan check type -----------------------------------------------------------------------------------


class SanityCheck(CheckConfig):
    """`- type: sanity` in a plan: the checks above for the candidates (or `models: all`, or a list)."""

    type: Literal["sanity"] = "sanity"
    models: Literal["candidates", "all"] | list[str] = Field(
        "candidates", description="which models to check"
    )
    max_new_tokens: int = Field(
        DEFAULT_MAX_NEW_TOKENS, ge=8, le=2048, description="length of the long answer"
    )
    max_repetition: float = Field(
        DEFAULT_MAX_REPETITION, gt=0, le=1, description="largest acceptable share of repeated token 4-grams"
    )


def _parents_for(model, ctx) -> list[ModelRef]:
    return [p.ref for p in ctx.by_role("parent")] if model.role == "candidate" else []


def _run(check: SanityCheck, ctx) -> None:
    for m in ctx.select(check.models):
        if not m.runnable:
            ctx.say(f"sanity: {m.name} has no local weights, skipped")
            continue
        options = {"max_new_tokens": check.max_new_tokens, "max_repetition": check.max_repetition}
        _, ran = sanity_into_store(ctx.store, m.ref, _parents_for(m, ctx), **options)
        if not ran:
            continue
        stored = stored_sanity(ctx.store, m.ref, _parents_for(m, ctx), **options)
        failed = [r["check"] for r in (stored[0] if stored else []) if r["status"] != "pass"]
        # Said before the expensive checks start, so a broken merge can be stopped early (Ctrl-C).
        ctx.say(f"sanity checks of {m.name}: " + (f"FAILED {', '.join(failed)}" if failed else "all pass"))


def _collect(check: SanityCheck, ctx):
    from mergeval.compare.registry import CheckData, Missing

    data = CheckData(check=check.label, type="sanity")
    for m in ctx.select(check.models):
        stored = stored_sanity(
            ctx.store,
            m.ref,
            _parents_for(m, ctx),
            max_new_tokens=check.max_new_tokens,
            max_repetition=check.max_repetition,
        )
        if stored is None:
            data.missing.append(Missing(m.name, data.check, None, "sanity checks not run yet"))
            continue
        results, facts = stored
        data.sanity += [{"model": m.name, **r} for r in results]
        data.facts[m.name] = facts
    data.provenance = {"version": SANITY_VERSION, "prompts": PROMPTS, "config": check.model_dump(mode="json")}
    return data


def _provides(check: SanityCheck, plan: Plan):
    from mergeval.compare.registry import Provides

    if isinstance(check.models, list):
        unknown = [n for n in check.models if n not in {m.name for m in plan.models}]
        if unknown:
            raise UserError(
                f"the sanity check names unknown model(s) {', '.join(unknown)}; use names from "
                "`models:`, `candidates` or `all`"
            )
    return Provides(facts=["size_gb", "params_b", "tokens_per_second"])


def _register() -> None:
    from mergeval.compare.registry import CheckType, register_check

    register_check(
        CheckType(
            name="sanity",
            config=SanityCheck,
            run=_run,
            collect=_collect,
            provides=_provides,
            description="fast generation and weight checks of the merged model",
            metrics=("size_gb", "params_b", "tokens_per_second"),
        )
    )


_register()

__all__ = [
    "CHECK_KIND",
    "PROMPTS",
    "SanityCheck",
    "SanityResult",
    "check_chat_template",
    "check_continuation",
    "check_hello",
    "check_instruction",
    "check_repetition",
    "check_tokenizer",
    "check_weights_finite",
    "coherence_problems",
    "generate",
    "printable_share",
    "repetition_rate",
    "run_sanity",
    "sanity_into_store",
    "stored_sanity",
    "word_share",
]
