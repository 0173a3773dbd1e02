"""Greedy, batched answers from a transformers model, for the BLEU and consistency checks.

- Greedy decoding with a fresh GenerationConfig, so a model's own sampling defaults never leak in: the
  same model and prompts always give the same text, whatever generation_config.json says.
- Left padding (generation continues on the right), prompts sorted by length so a batch wastes little.
- `chat=True` wraps each prompt as one user turn with the model's chat template when it has one; models
  without a template get the raw prompt (recorded in the run's provenance).
- Generation stops at EOS (the model's and the tokenizer's) and, with `stop_at_newline`, at the first
  line break after some text: leading blank lines are skipped, since chat models often start with one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mergeval.engines.lmeval.harness import default_device
from mergeval.models import ModelRef, chat_template_hash, load_hf


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 64
    chat: bool = True
    stop_at_newline: bool = True

    def identity(self) -> dict[str, Any]:
        return {
            "decoding": "greedy",
            "max_new_tokens": self.max_new_tokens,
            "chat": self.chat,
            "stop_at_newline": self.stop_at_newline,
        }


def first_line(text: str) -> str:
    """The first non-blank line of `text`, stripped."""
    return text.lstrip().split("\n", 1)[0].strip()


class _NewlineStop:
    """A per-row stopping criterion: True once the generated text has a line break after some text."""

    def __init__(self, tokenizer: Any, prompt_length: int):
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor(["\n" in t.lstrip() for t in texts], dtype=torch.bool, device=input_ids.device)


class Generator:
    """A loaded model and tokenizer that answers prompts. Load once, call `generate` per batch of prompts."""

    def __init__(self, ref: ModelRef, *, device: str | None = None):
        self.ref = ref
        self.device = device or ref.device or default_device()
        self.model, self.tokenizer = load_hf(dataclasses.replace(ref, device=self.device))
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def provenance(self, chat: bool) -> dict[str, Any]:
        """How the answers were produced: the device and whether the chat template was used (and which)."""
        return {
            "device": self.device,
            "chat_template_used": chat and self.has_chat_template,
            "chat_template_hash": chat_template_hash(self.ref.path),
        }

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        for value in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            for token in value if isinstance(value, list) else [value]:
                if token is not None and token not in ids:
                    ids.append(int(token))
        return ids

    def _encode(self, prompts: Sequence[str], chat: bool) -> Any:
        if chat and self.has_chat_template:
            texts = [
                self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
                )
                for p in prompts
            ]
            # The template already holds any BOS token; adding special tokens again would double it.
            return self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return self.tokenizer(list(prompts), return_tensors="pt", padding=True)

    def generate(self, prompts: Sequence[str], settings: GenerationSettings, *, batch_size: int) -> list[str]:
        """One answer per prompt, in the prompts' order."""
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        lengths = [len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
        eos = self._eos_ids()
        config = GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=eos or None,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        answers: list[str] = [""] * len(prompts)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = self._encode([prompts[i] for i in rows], settings.chat).to(self.device)
            prompt_length = batch["input_ids"].shape[1]
            stops = (
                StoppingCriteriaList([_NewlineStop(self.tokenizer, prompt_length)])
                if settings.stop_at_newline
                else None
            )
            with torch.no_grad():
                output = self.model.generate(**batch, generation_config=config, stopping_criteria=stops)
            texts = self.tokenizer.batch_decode(output[:, prompt_length:], skip_special_tokens=True)
            for i, text in zip(rows, texts, strict=True):
                answers[i] = first_line(text) if settings.stop_at_newline else text.strip()
        return answers
