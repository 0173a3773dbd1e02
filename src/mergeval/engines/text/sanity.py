"""Sanity probes for a merged model: fast, run before anything expensive.

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

Generation is greedy, so results are deterministic; the check type (`mergeval.checks.sanity`) stores them
once per (model, sanity config). The same load also measures the model's size and generation speed (facts
`size_gb`, `params_b`, `tokens_per_second`, for the checklist's size and speed gates).

A tiny random model fails `continuation`, `instruction` and usually `repetition`: that is the point.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mergeval.errors import UserError
from mergeval.models import ModelRef, load_hf

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


# -- running every probe -----------------------------------------------------------------------------------


def _folder_size_gb(folder: Path | None) -> float | None:
    if folder is None or not folder.exists():
        return None
    return (
        sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
        / 1e9
    )


def load_parent_tokenizers(parents: Mapping[str, tuple[str | Path, bool]]) -> dict[str, Any]:
    """name -> tokenizer, for parents given as name -> (model folder, trust_remote_code)."""
    from transformers import AutoTokenizer

    return {
        name: AutoTokenizer.from_pretrained(path, trust_remote_code=trust)
        for name, (path, trust) in parents.items()
    }


def run_probes(
    model: Any,
    tokenizer: Any,
    parent_tokenizers: Mapping[str, Any],
    *,
    folder: Path | None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_repetition: float = DEFAULT_MAX_REPETITION,
    on_probe: Callable[[int, int], None] | None = None,
) -> tuple[list[SanityResult], dict[str, float]]:
    """Every probe on a loaded model; returns (results, facts). The tokenizer and chat-template probes run
    when there are parents' tokenizers to compare with. `folder` (the weights) gives the size fact.
    `on_probe(done, total)` after each probe (progress)."""
    total = 7 if parent_tokenizers else 5
    results: list[SanityResult] = []

    def done(result: SanityResult) -> None:
        results.append(result)
        if on_probe is not None:
            on_probe(len(results), total)

    done(check_weights_finite(model))
    done(check_hello(generate(model, tokenizer, PROMPTS["hello"], max_new_tokens=20, chat=False)))
    done(check_continuation(generate(model, tokenizer, PROMPTS["continuation"], max_new_tokens=24, chat=False)))
    done(check_instruction(generate(model, tokenizer, PROMPTS["instruction"], max_new_tokens=48, chat=True)))
    long = generate(model, tokenizer, PROMPTS["repetition"], max_new_tokens=max_new_tokens, chat=True)
    done(check_repetition(long, max_repetition=max_repetition))
    if parent_tokenizers:
        done(check_tokenizer(tokenizer, model.config, dict(parent_tokenizers)))
        done(check_chat_template(tokenizer, dict(parent_tokenizers)))
    facts = {"params_b": sum(p.numel() for p in model.parameters()) / 1e9}
    size = _folder_size_gb(folder)
    if size is not None:
        facts["size_gb"] = size
    if long.token_ids and long.seconds > 0:
        facts["tokens_per_second"] = len(long.token_ids) / long.seconds
    return results, facts


def require_weights(ref: ModelRef) -> None:
    if ref.path is None and ref.model_object is None:
        raise UserError(f"{ref.name} is an endpoint; sanity checks need local weights.")


def run_sanity(
    ref: ModelRef,
    parents: Sequence[ModelRef] = (),
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_repetition: float = DEFAULT_MAX_REPETITION,
) -> tuple[list[SanityResult], dict[str, float]]:
    """Run every sanity probe on `ref` (loading it once; parents with local files give their tokenizers);
    returns (results, facts). Nothing is stored."""
    require_weights(ref)
    model, tokenizer = load_hf(ref)
    parent_tokenizers = load_parent_tokenizers(
        {p.name: (p.path, p.trust_remote_code) for p in parents if p.path is not None}
    )
    return run_probes(
        model,
        tokenizer,
        parent_tokenizers,
        folder=ref.path,
        max_new_tokens=max_new_tokens,
        max_repetition=max_repetition,
    )


__all__ = [
    "CHECK_ORDER",
    "PROMPTS",
    "SANITY_VERSION",
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
    "load_parent_tokenizers",
    "printable_share",
    "repetition_rate",
    "run_probes",
    "run_sanity",
    "word_share",
]
