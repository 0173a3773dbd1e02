"""Chat generation with a local Hugging Face model: the model's own chat template, batched, left-padded.

FastChat picks a conversation template by matching the model's *name*, which silently formats a merge called
"my-merge-v3" as the wrong model family. mergeval always uses the template stored with the tokenizer (or one
the user passes explicitly) and refuses to guess when there is none.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from mergeval.errors import UserError
from mergeval.models import ModelRef, load_hf

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Generated:
    text: str
    n_tokens: int  # generated tokens before the end-of-turn token
    truncated: bool  # stopped by max_new_tokens, not by the model


class LocalChatModel:
    """A local model + tokenizer, loaded on first use, that answers batches of conversations."""

    def __init__(self, ref: ModelRef, *, chat_template: str | None = None):
        self.ref = ref
        self.chat_template_override = chat_template
        self._model = None
        self._tokenizer = None
        self._template: str | None = None
        self._lock = threading.Lock()  # generate() is not re-entrant; judges may call from pool threads

    def load_weights(self) -> None:
        """Load the weights and the tokenizer (the slow part, and where a broken model folder fails)."""
        if self._model is not None:
            return
        model, tokenizer = load_hf(self.ref)
        tokenizer.padding_side = "left"  # decoder-only batching: prompts end where generation starts
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._model, self._tokenizer = model, tokenizer

    def load(self) -> None:
        """Load the model and settle its chat template: a UserError when it has none and none was given."""
        self.load_weights()
        if self._template is not None:
            return
        template = self.chat_template_override or getattr(self._tokenizer, "chat_template", None)
        if not template:
            raise UserError(
                f"{self.ref.name} has no chat template (its tokenizer_config.json / chat_template.jinja defines "
                "none), so mergeval cannot know how to format a conversation for it. Pass a template explicitly "
                "(chat_template: in the plan, a Jinja string) — mergeval never guesses one from the model's name."
            )
        self._template = template

    def use_template(self, chat_template: str | None) -> None:
        """Format conversations with `chat_template` from now on (None: the tokenizer's own)."""
        if chat_template != self.chat_template_override:
            self.chat_template_override = chat_template
            self._template = None

    @property
    def tokenizer(self):
        self.load()
        return self._tokenizer

    def render(self, messages: Messages) -> str:
        """The prompt text for `messages`, ending with the assistant's turn header."""
        self.load()
        try:
            return self._tokenizer.apply_chat_template(
                messages, chat_template=self._template, tokenize=False, add_generation_prompt=True
            )
        except Exception as exc:
            # Some templates (Gemma, Mistral v1, ...) reject a system message: fold it into the first user turn.
            if messages and messages[0]["role"] == "system" and len(messages) > 1:
                folded = [{"role": messages[1]["role"], "content": messages[0]["content"] + "\n\n" +
                           messages[1]["content"]}] + list(messages[2:])
                return self.render(folded)
            raise UserError(f"The chat template of {self.ref.name} failed on a conversation: {exc}") from exc

    def _end_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (self._model.generation_config.eos_token_id, self._tokenizer.eos_token_id):
            if isinstance(source, int):
                ids.add(source)
            elif source:
                ids.update(int(i) for i in source)
        return ids

    def generate(
        self, conversations: Sequence[Messages], *, temperature: float, max_new_tokens: int, seed: int = 0
    ) -> list[Generated]:
        """Answer every conversation in one batched `generate` call (greedy when temperature is 0)."""
        import torch

        self.load()
        prompts = [self.render(conv) for conv in conversations]
        with self._lock:
            # The template already holds any BOS token; adding special tokens again would double it.
            encoded = self._tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            encoded = encoded.to(self._model.device)
            sampling = temperature > 1e-4  # FastChat's threshold for greedy
            options = {"do_sample": True, "temperature": temperature} if sampling else {"do_sample": False}
            if sampling:
                torch.manual_seed(seed)
            with torch.inference_mode():
                output = self._model.generate(
                    **encoded, max_new_tokens=max_new_tokens, pad_token_id=self._tokenizer.pad_token_id,
                    **options,
                )
        new_tokens = output[:, encoded["input_ids"].shape[1]:].tolist()
        end_ids = self._end_ids()
        results = []
        for row in new_tokens:
            end = next((i for i, token in enumerate(row) if token in end_ids), None)
            kept = row if end is None else row[:end]
            text = self._tokenizer.decode(kept, skip_special_tokens=True).strip()
            results.append(Generated(text=text, n_tokens=len(kept), truncated=end is None))
        return results
