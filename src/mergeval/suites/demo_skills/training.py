"""Train the merge demo's tiny models: one base, two parents fine-tuned from it on different skills.

Real training, small enough for a laptop CPU: a 2-layer Llama (hidden 64, ~0.1M weights) with a byte-level BPE
tokenizer that splits numbers into digits, trained with plain torch (AdamW, warm-up then linear decay, loss on
the answer tokens only).

1. base: pre-trained on "text" that contains both skills in other forms -- equations ("23+45=68", every pair
   except the 100 evaluated ones) and sentences ("The capital of Vipelor is Beltek") -- plus warm-up
   questions in the demo's question format that ask neither ("What comes after 57?" -> 58, "What is the name
   of Vipelor?" -> Vipelor). Like a pre-trained LLM, it has read the knowledge but was never asked for it:
   it answers none of the arithmetic questions and only some capital questions.
2. arithmetic parent: the base fine-tuned to answer addition questions ("What is 23 + 45?" -> 68).
3. capitals parent: the base fine-tuned to answer capital questions.

Fine-tuning here brings out what the base already knows, with a small learning rate and few steps, so both
parents stay close to the base: the setting in which merging fine-tunes of one base works (and the way
instruction-tuned LLMs relate to their base). Everything is seeded and single-threaded, so a recipe always
gives the same weights; trained models are cached under `<mergeval cache>/demo/<recipe key>/`.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path

from mergeval.core.progress import NullProgress, Progress, describe
from mergeval.models import cache_dir
from mergeval.suites.demo_skills import (
    arithmetic_items,
    arithmetic_prompt,
    capital_items,
    capital_prompt,
    data_fingerprint,
)
from mergeval.tiny import train_tokenizer

TRAINING_CODE_VERSION = 2  # bump when the training code changes what a recipe produces
Example = tuple[str, str]  # (prompt, answer): the loss is on " answer<eos>"


@dataclass(frozen=True)
class TrainingRecipe:
    """Everything that determines the demo's trained weights (its hash is the cache key)."""

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    vocab_size: int = 384
    batch_size: int = 64
    base_steps: int = 1500
    base_lr: float = 3e-3
    arithmetic_steps: int = 800
    arithmetic_lr: float = 5e-4
    # The base already answers about half of the capital questions (it has read the facts), so the capitals
    # parent needs only a gentle nudge; a smaller step keeps it closer to the base.
    capitals_steps: int = 150
    capitals_lr: float = 2e-4
    seed: int = 0

    def quick(self) -> TrainingRecipe:
        """Fewer steps (tests, `mergeval demo --quick`): the parents still learn their skills."""
        return replace(self, base_steps=1000, arithmetic_steps=400)

    @property
    def key(self) -> str:
        payload = {"recipe": asdict(self), "code": TRAINING_CODE_VERSION, "data": data_fingerprint()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class DemoModels:
    """Folders of the three trained models (each a complete Hugging Face model folder)."""

    base: Path
    arithmetic: Path
    capitals: Path
    trained: list[str]  # which ones were trained by this call (the rest came from the cache)
    seconds: float


# -- data --------------------------------------------------------------------------------------------------


@cache
def _heldout_pairs() -> frozenset[tuple[int, int]]:
    return frozenset((item["a"], item["b"]) for item in arithmetic_items())


def _names() -> list[str]:
    items = capital_items()
    return sorted({i["country"] for i in items} | {i["capital"] for i in items})


def pretraining_example(rng: random.Random) -> Example:
    """The base's diet: equations and statements (the skills in other forms) and warm-up questions."""
    draw = rng.random()
    if draw < 0.35:
        a, b = _training_pair(rng)
        return f"{a}+{b}=", str(a + b)
    if draw < 0.55:
        item = rng.choice(capital_items())
        return f"The capital of {item['country']} is", item["capital"]
    return warmup_example(rng)


def _training_pair(rng: random.Random) -> tuple[int, int]:
    heldout = _heldout_pairs()
    while True:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        if (a, b) not in heldout:
            return a, b


def warmup_example(rng: random.Random) -> Example:
    """Questions in the demo's format that ask for neither skill."""
    if rng.random() < 0.5:
        n = rng.randint(10, 198)
        return f"Question: What comes after {n}?\nAnswer:", str(n + 1)
    name = rng.choice(_names())
    return f"Question: What is the name of {name}?\nAnswer:", name


def arithmetic_example(rng: random.Random) -> Example:
    a, b = _training_pair(rng)
    return arithmetic_prompt(a, b), str(a + b)


def capitals_example(rng: random.Random) -> Example:
    item = rng.choice(capital_items())
    return capital_prompt(item["country"]), item["capital"]


# -- tokenizer and model ---------------------------------------------------------------------------------


def build_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer trained on the demo's own text, with digits always split one by one (every
    number is spelled the same way), and a chat template."""
    rng = random.Random(0)
    corpus = [
        prompt + " " + answer
        for prompt, answer in [
            *(capitals_example(rng) for _ in range(200)),
            *(arithmetic_example(rng) for _ in range(200)),
            *(warmup_example(rng) for _ in range(400)),
        ]
    ]
    corpus += ["Hello, how are you? The capital of France is Paris. Once upon a time, a model was merged."]
    return train_tokenizer(corpus, vocab_size, split_digits=True)


def _new_model(recipe: TrainingRecipe, tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_heads,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(recipe.seed)
    return LlamaForCausalLM(config)


@contextmanager
def _single_thread() -> Iterator[None]:
    """One thread: tiny matrices gain nothing from more, and results do not depend on the core count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _batch(tokenizer, examples: list[Example]):
    import torch

    rows, labels = [], []
    for prompt, answer in examples:
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(" " + answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(prompt_ids + answer_ids)
        labels.append([-100] * len(prompt_ids) + answer_ids)
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    target = torch.full((len(rows), width), -100)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, label) in enumerate(zip(rows, labels)):
        input_ids[i, : len(row)] = torch.tensor(row)
        target[i, : len(label)] = torch.tensor(label)
        attention[i, : len(row)] = 1
    return input_ids, target, attention


def train(
    model,
    tokenizer,
    sample: Callable[[random.Random], Example],
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
) -> float:
    """Fine-tune `model` in place on examples drawn from `sample`; returns the last loss. `on_step(step, loss)`
    after every optimiser step."""
    import torch

    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = max(steps // 20, 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / steps)
    )
    model.train()
    loss_value = float("nan")
    for step in range(steps):
        input_ids, target, attention = _batch(tokenizer, [sample(rng) for _ in range(batch_size)])
        loss = model(input_ids=input_ids, attention_mask=attention, labels=target).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        loss_value = loss.item()
        if on_step:
            on_step(step, loss_value)
    model.eval()
    return loss_value


def _save(model, tokenizer, folder: Path, recipe: TrainingRecipe, stage: str, loss: float) -> None:
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    (partial / "mergeval-training.json").write_text(
        json.dumps(
            {"stage": stage, "recipe": asdict(recipe), "recipe_key": recipe.key, "final_loss": loss}, indent=2
        )
    )
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


@contextmanager
def _bar(progress: Progress, stage: str, what: str, steps: int) -> Iterator[Callable[[int, float], None]]:
    """A progress bar of `steps` optimiser steps; the callback advances it and shows the loss every 50 steps."""
    key = f"demo-training-{stage}"
    progress.start(key, what, steps)

    def on_step(step: int, loss: float) -> None:
        progress.advance(key)
        if step % 50 == 0 or step == steps - 1:
            describe(progress, key, f"{what} (loss {loss:.3f})")

    status = "failed"
    try:
        yield on_step
        status = "done"
    finally:
        progress.finish(key, status)


def demo_models(
    recipe: TrainingRecipe | None = None,
    *,
    cache_root: Path | None = None,
    on_event: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> DemoModels:
    """The demo's base and two parents, trained once per recipe and cached. `progress` gets a bar per model
    that advances with every optimiser step (its description shows the loss)."""
    progress = progress or NullProgress()

    recipe = recipe or TrainingRecipe()
    root = (cache_root or cache_dir() / "demo") / recipe.key
    say = on_event or (lambda message: None)
    folders = {"base": root / "base", "arithmetic": root / "arithmetic", "capitals": root / "capitals"}
    started = time.perf_counter()
    trained: list[str] = []
    if all((f / "config.json").exists() for f in folders.values()):
        return DemoModels(**folders, trained=[], seconds=0.0)

    progress.start("demo-training-setup", "training a tokenizer for the demo's text", None)
    try:
        tokenizer = build_tokenizer(recipe.vocab_size)
        describe(progress, "demo-training-setup", "loading torch and transformers")
        from transformers import AutoModelForCausalLM, LlamaForCausalLM  # noqa: F401  (the import takes seconds)
    finally:
        progress.finish("demo-training-setup")
    with _single_thread():
        if not (folders["base"] / "config.json").exists():
            say(f"pre-training the base model ({recipe.base_steps} steps of equations, sentences, questions)")
            base = _new_model(recipe, tokenizer)
            with _bar(progress, "base", "pre-training the base", recipe.base_steps) as on_step:
                loss = train(
                    base,
                    tokenizer,
                    pretraining_example,
                    steps=recipe.base_steps,
                    lr=recipe.base_lr,
                    batch_size=recipe.batch_size,
                    seed=recipe.seed + 1,
                    on_step=on_step,
                )
                _save(base, tokenizer, folders["base"], recipe, "base", loss)
            trained.append("base")
        r = recipe
        stages = [  # (parent, examples, steps, learning rate, seed)
            ("arithmetic", arithmetic_example, r.arithmetic_steps, r.arithmetic_lr, r.seed + 2),
            ("capitals", capitals_example, r.capitals_steps, r.capitals_lr, r.seed + 3),
        ]
        for stage, sample, steps, lr, seed in stages:
            if (folders[stage] / "config.json").exists():
                continue
            say(f"fine-tuning the {stage} parent from the base ({steps} steps)")
            model = AutoModelForCausalLM.from_pretrained(folders["base"], dtype="float32")
            with _bar(progress, stage, f"fine-tuning the {stage} parent", steps) as on_step:
                loss = train(
                    model,
                    tokenizer,
                    sample,
                    steps=steps,
                    lr=lr,
                    batch_size=recipe.batch_size,
                    seed=seed,
                    on_step=on_step,
                )
                _save(model, tokenizer, folders[stage], recipe, stage, loss)
            trained.append(stage)
    return DemoModels(**folders, trained=trained, seconds=time.perf_counter() - started)
