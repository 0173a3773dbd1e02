"""Greedy generation with continuous batching, for `mergeval-hf`'s `generate_until`.

HFLM runs generation in fixed batches through `transformers`' `generate`: a batch ends only when every row
has produced the *same* stop sequence (lm-eval's stop criteria are ANDed over rows, per sequence) or the
token limit is reached. On GSM8K a single row that never writes "Question:" keeps all eight rows decoding
for 256 steps, although the other rows' text is cut at their first stop sequence afterwards anyway.

This decoder keeps `slots` rows decoding at once. A row leaves as soon as its text holds a stop sequence or
it produced an end-of-sequence token or its token limit, and the next prompt takes its place; so the
number of decoding steps is about (sum of the rows' useful lengths) / slots instead of (longest row) per
batch. Each prompt is prefilled on its own (no padding), reusing the KV cache of the previous prompt's
longest common prefix; rows are kept left-padded in one KV cache, with positions given explicitly.

What a row produces is what greedy decoding of its prompt produces: argmax at every step, as `generate`
with `do_sample=False` does. The rows it shares a forward call with, and how much padding it gets, differ
from HFLM's fixed batches, which can change the last bits of a logit (as changing HFLM's batch size does);
the parity tests and the benchmark compare the texts with HFLM's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mergeval.engines.lmeval.scoring._kv_cache import LayerKV, cache_tensors, make_cache


@dataclass
class _Row:
    index: int  # into the prompts list
    position: int  # the position of the next token fed (= real tokens in the cache)
    generated: list[int] = field(default_factory=list)
    stop_seen: bool = False  # a stop sequence showed up; from then on the whole text is checked


class StopChecker:
    """Has a row's generated text reached a stop sequence for good?

    The text is decoded with special tokens, as lm-eval's stop criteria do, so a stop such as `<|im_end|>`
    is seen even when it is not an EOS id. Each step looks at the last few tokens only (enough to hold the
    longest stop sequence); once a stop shows there, the whole text is checked, and the row ends only when
    no stop sequence can still begin before the first one found and complete with more text: lm-eval cuts
    the text at the earliest occurrence of any stop, so with `["\n\nQuestion:", "Question"]` a row must not
    end at "\n\nQuestion" before the colon decides which cut applies.
    """

    def __init__(
        self, decode: Callable[[list[int]], str], encode: Callable[[str], list[int]], stops: Sequence[str]
    ):
        self.decode = decode
        self.stops = [s for s in stops if s]
        self.window = max((len(encode(s)) for s in self.stops), default=0) + 4

    def seen(self, tokens: list[int]) -> bool:
        """A stop sequence in the last few tokens (cheap; may be undecided, see `decided`)."""
        if not self.stops:
            return False
        text = self.decode(tokens[-self.window :])
        return any(stop in text for stop in self.stops)

    def decided(self, tokens: list[int]) -> bool:
        """The whole text holds a stop sequence, and no longer one can still start before it."""
        text = self.decode(tokens)
        hits = [text.find(stop) for stop in self.stops if stop in text]
        if not hits:
            return False
        first = min(hits)
        for stop in self.stops:
            for start in range(max(0, len(text) - len(stop) + 1), first):
                if stop.startswith(text[start:]):
                    return False
        return True


def continuous_greedy(
    prompts: Sequence[list[int]],
    *,
    max_new_tokens: int,
    slots: int,
    eos_ids: set[int],
    stop: StopChecker,
    prefill: Callable[[list[int]], tuple[torch.Tensor, list[LayerKV]]],
    step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any], tuple[torch.Tensor, Any]],
    on_done: Callable[[int, list[int]], None],
) -> None:
    """Decode every prompt greedily; call `on_done(index, generated tokens)` as each row finishes.

    prefill(tokens) -> (last position's logits [vocab], KV of the prompt, batch 1).
    step(input_ids [B,1], attention_mask [B,W+1], position_ids [B,1], cache) -> (logits [B,vocab], cache).
    """
    pending = deque(range(len(prompts)))
    rows: list[_Row] = []
    mask: torch.Tensor | None = None  # [B, W]: 1 where the cache holds a real position
    cache: Any = None

    def finished(row: _Row) -> bool:
        if row.generated[-1] in eos_ids or len(row.generated) >= max_new_tokens:
            return True
        row.stop_seen = row.stop_seen or stop.seen(row.generated)
        return row.stop_seen and stop.decided(row.generated)

    while pending or rows:
        # Fill free slots with new prompts, each prefilled alone.
        joining: list[tuple[_Row, list[LayerKV]]] = []
        while len(rows) + len(joining) < slots and pending:
            index = pending.popleft()
            logits, kv = prefill(list(prompts[index]))
            row = _Row(index=index, position=len(prompts[index]), generated=[int(logits.argmax())])
            if finished(row):
                on_done(row.index, row.generated)
            else:
                joining.append((row, kv))
        if joining:
            kv_rows = [kv for _, kv in joining]
            if rows:
                kv_rows.insert(0, cache_tensors(cache))
            masks = [mask] if rows else []
            masks += [torch.ones(1, r.position, dtype=torch.long) for r, _ in joining]
            kv, mask = _stack_left_padded(kv_rows, masks)
            rows += [r for r, _ in joining]
            cache = make_cache(kv, len(rows))
        if not rows:
            continue

        # One decoding step for every active row.
        input_ids = torch.tensor([[r.generated[-1]] for r in rows], dtype=torch.long)
        positions = torch.tensor([[r.position] for r in rows], dtype=torch.long)
        mask = torch.cat([mask, torch.ones(len(rows), 1, dtype=torch.long)], dim=1)
        logits, cache = step(input_ids, mask, positions, cache)
        next_tokens = logits.argmax(dim=-1).tolist()
        keep = []
        for j, (row, token) in enumerate(zip(rows, next_tokens, strict=True)):
            row.position += 1
            row.generated.append(int(token))
            if finished(row):
                on_done(row.index, row.generated)
            else:
                keep.append(j)
        if len(keep) < len(rows):
            rows = [rows[j] for j in keep]
            if rows:
                kv = [(k[keep], v[keep]) for k, v in cache_tensors(cache)]
                mask = mask[keep]
                # Drop the columns that are padding for every remaining row.
                first = int((mask.sum(dim=0) > 0).nonzero()[0])
                if first:
                    kv = [(k[:, :, first:], v[:, :, first:]) for k, v in kv]
                    mask = mask[:, first:]
                cache = make_cache(kv, len(rows))
            else:
                cache, mask = None, None


def _stack_left_padded(
    kv_groups: list[list[LayerKV]], masks: list[torch.Tensor]
) -> tuple[list[LayerKV], torch.Tensor]:
    """Concatenate caches (and their masks) along the batch, left-padding each to the widest."""
    width = max(m.shape[1] for m in masks)
    layers = []
    for layer in range(len(kv_groups[0])):
        keys, values = [], []
        for group in kv_groups:
            k, v = group[layer]
            pad = width - k.shape[2]
            if pad:
                k = torch.cat([k.new_zeros(k.shape[0], k.shape[1], pad, k.shape[3]), k], dim=2)
                v = torch.cat([v.new_zeros(v.shape[0], v.shape[1], pad, v.shape[3]), v], dim=2)
            keys.append(k)
            values.append(v)
        layers.append((torch.cat(keys), torch.cat(values)))
    padded = [torch.cat([m.new_zeros(m.shape[0], width - m.shape[1]), m], dim=1) for m in masks]
    return layers, torch.cat(padded)
