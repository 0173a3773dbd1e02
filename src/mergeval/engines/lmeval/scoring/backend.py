"""`mergeval-hf`: lm-eval's HFLM that computes every distinct token prefix once.

lm-eval's HF backend runs each (context, continuation) request as its own full sequence, so a 2,000-token
few-shot context is computed again for every answer choice, and a preamble shared by every document is
computed again for every request. This backend receives exactly the token ids HFLM would run (same
tokenisation, same left truncation, same dropped last token), puts them in a radix tree, and walks the tree
depth first: each node's tokens are run once on top of the KV cache of its ancestors, siblings are batched
together (right-padded, so padding never reaches a real token under causal attention), and only the
positions that are scored are projected onto the vocabulary. A node's KV cache lives only while its
subtree is being scored, so memory is bounded by the path being worked on plus one batch, and
`max_cache_tokens` caps the latter.

Greedy generation (`generate_until`, e.g. GSM8K) uses continuous batching (`_continuous.py`): a row leaves
the batch as soon as its text holds a stop sequence and the next prompt takes its place, instead of the
whole batch decoding until every row wrote the same stop sequence; each prompt is prefilled once, reusing
the previous prompt's longest common prefix. Sampling, thinking models and models whose generation config
adds logits processors go through HFLM's `generate` instead, with one change: when the prompts of a batch
share a long prefix (or share one with the previous batch), that prefix is run once and handed to
`generate` as a prefilled cache.

Where reuse is unsafe (seq2seq models; sliding-window, recurrent or shared-KV caches; a model whose cached
and uncached scores disagree on a probe) the backend logs why and scores exactly like HFLM.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

from mergeval.engines.lmeval.scoring._continuous import StopChecker, continuous_greedy
from mergeval.engines.lmeval.scoring._kv_cache import (
    LayerKV,
    accepts_logits_to_keep,
    cache_keyword,
    cache_layers_problem,
    cache_tensors,
    make_cache,
)
from mergeval.engines.lmeval.scoring._prefix_tree import (
    PrefixNode,
    attach_scored_spans,
    build_prefix_tree,
    iter_nodes,
)
from mergeval.errors import UserError

logger = logging.getLogger(__name__)

# lm-eval hands `_loglikelihood_tokens` ((context, continuation), context ids, continuation ids).
TokenRequest = tuple[tuple[str, str] | None, list[int], list[int]]

DEFAULT_MAX_CACHE_TOKENS = 32768
# Below this many shared tokens a generation batch is not worth a separate prefix pass.
MIN_SHARED_GENERATION_PREFIX = 16
# What one forward call costs beyond its tokens, in token-equivalents (kernel launches, Python, per-layer
# overhead); used to decide when padding a batch is cheaper than another forward.
FORWARD_OVERHEAD_TOKENS = 16
# Rows per forward when lm-eval's batch size is "auto" (HFLM would probe the device for its own).
AUTO_BATCH_ROWS = 16


def _new_stats() -> dict[str, Any]:
    return {
        "requests": 0,  # loglikelihood requests scored
        "plain_tokens": 0,  # tokens plain HFLM would run for them (one full sequence per request)
        "ideal_tokens": 0,  # distinct prefix-tree tokens: the least any exact method must run
        # Tokens this backend's own forward calls ran, padding included: loglikelihood scoring and the shared
        # prefixes of generation batches (the decoding steps inside `generate` are not counted here).
        "forward_tokens": 0,
        "forward_tokens_unpadded": 0,  # the same without padding
        "forward_calls": 0,
        "cache_hit_tokens": 0,  # plain_tokens that were served from a cached prefix instead of recomputed
        "generation_prefix_tokens_reused": 0,  # prompt tokens of generation batches served from a cache
        "generation_prefill_tokens": 0,  # prompt tokens continuous-batching generation ran (no padding)
        "generation_steps": 0,  # decoding forward calls of continuous-batching generation
        "generation_rows": 0,  # rows x decoding steps of those calls
        "generation_fallback_reason": None,  # why the last generate_until used HFLM's generate, or None
        "fallback_reason": None,  # why prefix caching is off for this model, or None
    }


@register_model("mergeval-hf")
class PrefixCachingHFLM(HFLM):
    """HFLM with prefix-shared, KV-cached loglikelihood scoring. Same constructor as HFLM, plus:

    prefix_caching: False scores exactly like HFLM (useful for A/B checks).
    max_cache_tokens: cap on KV positions held for one batch of siblings (rows x positions); the cache of
        the prefix being worked on is always kept, whatever its length.
    """

    def __init__(
        self,
        pretrained: Any,
        *args: Any,
        prefix_caching: bool = True,
        max_cache_tokens: int = DEFAULT_MAX_CACHE_TOKENS,
        **kwargs: Any,
    ) -> None:
        if int(max_cache_tokens) < 1:
            raise UserError(
                f"max_cache_tokens must be a positive number of KV positions, got {max_cache_tokens}; "
                f"leave it unset for the default ({DEFAULT_MAX_CACHE_TOKENS})."
            )
        super().__init__(pretrained, *args, **kwargs)
        self.max_cache_tokens = int(max_cache_tokens)
        self.stats: dict[str, Any] = _new_stats()
        self._cache_kw: str | None = None
        self._keep_kw = False
        self._generation_prefix: tuple[list[int], list[LayerKV]] | None = None
        reason = "disabled by prefix_caching=False" if not prefix_caching else self._prefix_caching_problem()
        if reason is not None:
            logger.warning("mergeval-hf: prefix caching is off, scoring like lm-eval's HFLM: %s", reason)
        self.stats["fallback_reason"] = reason

    @property
    def prefix_caching(self) -> bool:
        return self.stats["fallback_reason"] is None

    def reset_stats(self) -> None:
        reason = self.stats["fallback_reason"]
        self.stats = _new_stats()
        self.stats["fallback_reason"] = reason

    # ------------------------------------------------------------------ safety checks

    def _prefix_caching_problem(self) -> str | None:
        """Why cached-prefix scoring would not reproduce HFLM's numbers for this model, or None."""
        if self.backend != "causal":
            return f"the {self.backend} backend is not a decoder-only model"
        self._cache_kw = cache_keyword(self.model)
        if self._cache_kw is None:
            return "the model's forward takes no KV cache"
        self._keep_kw = accepts_logits_to_keep(self.model)
        problem = cache_layers_problem(self.model)
        if problem is not None:
            return problem
        return self._probe_mismatch()

    def _probe_mismatch(self) -> str | None:
        """Score a few overlapping requests both ways; a model whose cached scores differ is not safe."""
        text_ids = self.tok_encode("The quick brown fox jumps over the lazy dog. Two plus two is four.")
        vocab = self.model.get_input_embeddings().num_embeddings
        ids = [i % vocab for i in (text_ids * 4)[:24]] if text_ids else list(range(24))
        probe: list[TokenRequest] = [
            (None, ids[:10], ids[10:14]),
            (None, ids[:10], ids[10:12] + ids[20:23]),
            (None, ids[:10] + ids[14:17], ids[17:18]),
            (None, ids[:3], ids[3:20]),  # continuation longer than its context
        ]
        try:
            cached = self._score_with_tree(probe, disable_tqdm=True)
        except Exception as exc:  # noqa: BLE001 - any model that cannot run with an injected cache
            return f"a probe with a reused KV cache failed ({type(exc).__name__}: {exc})"
        plain = super()._loglikelihood_tokens(probe, disable_tqdm=True, override_bs=len(probe))
        self.stats = _new_stats()
        tolerance = 1e-3 if self.model.dtype == torch.float32 else 0.25
        worst = max(abs(a[0] - b[0]) for a, b in zip(cached, plain, strict=True))
        if worst > tolerance:
            return f"a probe scored {worst:.4g} nats apart with and without the reused cache"
        return None

    # ------------------------------------------------------------------ loglikelihood

    def _loglikelihood_tokens(
        self,
        requests: list[TokenRequest],
        disable_tqdm: bool = False,
        override_bs: int | None = None,
    ) -> list[tuple[float, bool]]:
        if not self.prefix_caching:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        return self._score_with_tree(requests, disable_tqdm=disable_tqdm)

    def _score_with_tree(self, requests: list[TokenRequest], disable_tqdm: bool) -> list[tuple[float, bool]]:
        sequences: list[list[int]] = []
        targets: list[list[int]] = []
        first_scored: list[int] = []
        for _, context_enc, continuation_enc in requests:
            assert len(context_enc) > 0 and len(continuation_enc) > 0
            assert len(continuation_enc) <= self.max_length
            # Exactly HFLM's input: left-truncate to max_length + 1 tokens, then drop the last token.
            window = (context_enc + continuation_enc)[-(self.max_length + 1) :]
            sequences.append(window[:-1])
            targets.append(continuation_enc)
            first_scored.append(len(window) - 1 - len(continuation_enc))

        root = build_prefix_tree(sequences)
        attach_scored_spans(root, first_scored)
        run = _TreeRun(requests, targets, first_scored)
        self.stats["requests"] += len(requests)
        self.stats["plain_tokens"] += sum(len(s) for s in sequences)
        self.stats["ideal_tokens"] += sum(len(node.tokens) for node in iter_nodes(root))
        unpadded_before = self.stats["forward_tokens_unpadded"]
        with tqdm(
            total=len(requests), disable=disable_tqdm or self.rank != 0, desc="mergeval-hf scoring"
        ) as bar:
            run.progress = bar
            self._score_children(root, None, run)
        run_tokens = self.stats["forward_tokens_unpadded"] - unpadded_before
        self.stats["cache_hit_tokens"] += sum(len(s) for s in sequences) - run_tokens
        return [(float(total), bool(greedy)) for total, greedy in zip(run.totals, run.greedy, strict=True)]

    def _score_children(self, node: PrefixNode, past: list[LayerKV] | None, run: _TreeRun) -> None:
        """Run all children of `node` (whose KV for positions [0, node.end) is `past`) and their subtrees."""
        children = sorted(node.children.values(), key=lambda child: len(child.tokens))
        for group in self._plan_groups(children, node.end):
            rows, width = len(group), len(group[-1].tokens)
            input_ids = torch.full((rows, width), self._pad_id, dtype=torch.long)
            for row, child in enumerate(group):
                input_ids[row, : len(child.tokens)] = torch.tensor(child.tokens, dtype=torch.long)
            # Logits are needed only for the scored suffix of each child; keep the window covering them all.
            first_needed = min(
                (len(child.tokens) - run.scored_suffix(child) for child in group if child.scored),
                default=width,
            )
            keep = max(width - first_needed, 1)
            logits, cache = self._forward(input_ids, past, keep, sum(len(child.tokens) for child in group))
            logprobs = F.log_softmax(logits, dim=-1, dtype=self.softmax_dtype)
            greedy = logprobs.argmax(dim=-1)
            for row, child in enumerate(group):
                run.record(child, logprobs[row], greedy[row], window_start=width - keep)
                for index in child.ends:
                    run.finish(index, self.cache_hook)
            del logits, logprobs, greedy

            inner = [(row, child) for row, child in enumerate(group) if child.children]
            if not inner:
                continue
            layers = cache_tensors(cache)
            if rows == 1:
                # The cache is exactly the child's prefix: hand it down without copying.
                del cache
                self._score_children(inner[0][1], layers, run)
                continue
            # Keep only each inner child's own segment; the shared prefix stays in `past`, once.
            segments = {
                row: [
                    (
                        k[row : row + 1, :, node.end : child.end].clone(),
                        v[row : row + 1, :, node.end : child.end].clone(),
                    )
                    for k, v in layers
                ]
                for row, child in inner
            }
            del cache, layers
            for row, child in inner:
                own = segments.pop(row)
                child_past = (
                    own
                    if past is None
                    else [
                        (torch.cat([pk, sk], dim=-2), torch.cat([pv, sv], dim=-2))
                        for (pk, pv), (sk, sv) in zip(past, own, strict=True)
                    ]
                )
                del own
                self._score_children(child, child_past, run)
                del child_past

    def _plan_groups(self, children: Sequence[PrefixNode], prefix_len: int) -> list[list[PrefixNode]]:
        """Split length-sorted siblings into consecutive batches.

        A batch has at most `batch_size` rows and rows x (prefix + width) KV positions within
        `max_cache_tokens` (a single row is always allowed). Among those splits, pick the one with the least
        padded tokens plus FORWARD_OVERHEAD_TOKENS per forward call (dynamic programming over the sorted
        lengths): padding costs as much as real tokens, and a forward has a fixed cost of its own.
        """
        max_rows = self.batch_size if isinstance(self.batch_size, int) else AUTO_BATCH_ROWS
        lengths = [len(child.tokens) for child in children]
        n = len(lengths)
        best = [0.0] + [float("inf")] * n  # best[i]: cost of batching the first i children
        cut = [0] * (n + 1)
        for end in range(1, n + 1):
            width = lengths[end - 1]  # sorted ascending: the last child of a batch is its widest
            for rows in range(1, min(max(max_rows, 1), end) + 1):
                if rows > 1 and rows * (prefix_len + width) > self.max_cache_tokens:
                    break
                cost = best[end - rows] + FORWARD_OVERHEAD_TOKENS + rows * width
                if cost < best[end]:
                    best[end], cut[end] = cost, end - rows
        groups: list[list[PrefixNode]] = []
        end = n
        while end > 0:
            groups.append(list(children[cut[end] : end]))
            end = cut[end]
        return groups[::-1]

    def _forward(
        self,
        input_ids: torch.Tensor,
        past: list[LayerKV] | None,
        keep: int,
        unpadded: int,
        count: bool = True,
    ) -> tuple[torch.Tensor, Any]:
        """One forward of right-padded `input_ids` (`unpadded` real tokens) on top of `past`; returns the
        last `keep` positions' logits and the cache (past + these positions). `count`: add the call to the
        loglikelihood counters (forward_*)."""
        rows, width = input_ids.shape
        cache = make_cache(past, rows)
        logits = self._call_model(input_ids, cache, keep)
        if logits.shape[1] != keep:
            logits = logits[:, -keep:]
        if count:
            self.stats["forward_calls"] += 1
            self.stats["forward_tokens"] += rows * width
            self.stats["forward_tokens_unpadded"] += unpadded
        return logits, cache

    def _call_model(
        self, input_ids: torch.Tensor, cache: Any, keep: int, **extra: torch.Tensor
    ) -> torch.Tensor:
        """The model's logits for `input_ids` on top of `cache` (which it extends), under HFLM's autocast."""
        kwargs: dict[str, Any] = {self._cache_kw: cache, "use_cache": True}
        kwargs.update({name: tensor.to(self.device) for name, tensor in extra.items()})
        if self._keep_kw:
            kwargs["logits_to_keep"] = keep
        with (
            torch.no_grad(),
            torch.autocast(
                device_type=self.device.type,
                dtype=self.mixed_precision_dtype,
                enabled=self.mixed_precision_dtype is not None,
            ),
        ):
            return self.model(input_ids=input_ids.to(self.device), **kwargs).logits

    @property
    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad) if pad is not None else int(self.eot_token_id or 0)

    # ------------------------------------------------------------------ generation

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Greedy requests: continuous batching (see `_continuous.py`); anything else: HFLM's."""
        problem = self._continuous_generation_problem(requests)
        self.stats["generation_fallback_reason"] = problem
        if problem is not None:
            logger.info("mergeval-hf: generating with HFLM's batches: %s", problem)
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        from lm_eval.models.utils import (
            handle_stop_sequences,
            normalize_gen_kwargs,
            postprocess_generated_text,
        )

        slots = self.batch_size if isinstance(self.batch_size, int) else AUTO_BATCH_ROWS
        eos_text = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        eos_ids = _eos_ids(self.model.generation_config)
        results: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(json.dumps(request.args[1], sort_keys=True, default=str), []).append(i)
        progress = tqdm(
            total=len(requests),
            disable=disable_tqdm or self.rank != 0,
            desc="Running generate_until requests",
        )
        for indices in groups.values():
            gen_kwargs = requests[indices[0]].args[1]
            kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos_text)
            max_gen_toks = int(kwargs.pop("max_gen_toks"))
            # HFLM's order (longest prompt first) and its tokenisation and left truncation, batch by batch.
            order = sorted(
                indices, key=lambda i: (-len(self.tok_encode(requests[i].args[0])), requests[i].args[0])
            )
            prompts: list[list[int]] = []
            for start in range(0, len(order), slots):
                contexts = [requests[i].args[0] for i in order[start : start + slots]]
                ids, mask = self.tok_batch_encode(
                    contexts, left_truncate_len=self.max_length - max_gen_toks, truncation=self.truncation
                )
                for row, row_mask in zip(ids, mask, strict=True):
                    # An empty prompt (HF's generate would attend to padding only) starts from lm-eval's
                    # prefix token, as its loglikelihood requests with an empty context do.
                    prompts.append(row[row_mask.bool()].tolist() or [self.prefix_token_id])

            def done(k: int, tokens: list[int], order=order, until=until, gen_kwargs=gen_kwargs) -> None:
                text = postprocess_generated_text(self.tok_decode(tokens), stop=until, think_end_token=None)
                results[order[k]] = text
                self.cache_hook.add_partial("generate_until", (requests[order[k]].args[0], gen_kwargs), text)
                progress.update(1)

            continuous_greedy(
                prompts,
                max_new_tokens=max_gen_toks,
                slots=slots,
                eos_ids=eos_ids,
                stop=StopChecker(
                    lambda tokens: self.tok_decode(tokens, skip_special_tokens=False), self.tok_encode, until
                ),
                prefill=self._prefill_prompt,
                step=self._decode_step,
                on_done=done,
            )
        progress.close()
        self._generation_prefix = None  # the last prompt's KV: free it (it can be large on a GPU)
        return [r if r is not None else "" for r in results]

    def _continuous_generation_problem(self, requests: list[Any]) -> str | None:
        """Why these requests must go through HFLM's `generate`, or None when greedy decoding here is exact."""
        if not self.prefix_caching:
            return f"prefix caching is off ({self.stats['fallback_reason']})"
        if self.think_end_token is not None:
            return "the model has a think_end_token (the stop sequences apply after it)"
        if self.max_length <= 0:
            return "no usable max_length"
        config = self.model.generation_config
        changed = [
            key
            for key, neutral in _NEUTRAL_GENERATION_CONFIG.items()
            if getattr(config, key, None) not in neutral
        ]
        if changed:
            return f"the model's generation config sets {', '.join(changed)} (logits processors HF's generate applies)"
        from lm_eval.models.utils import normalize_gen_kwargs

        options = {json.dumps(r.args[1], sort_keys=True, default=str): r.args[1] for r in requests}
        for gen_kwargs in options.values():
            kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
            kwargs.pop("until", None)
            max_gen_toks = int(kwargs.pop("max_gen_toks"))
            if not 0 < max_gen_toks < self.max_length:
                return f"max_gen_toks={max_gen_toks} is not between 0 and the model's max_length"
            if kwargs.pop("do_sample", False) or kwargs.pop("temperature", 0.0) not in (0, 0.0, None):
                return "sampling was requested"
            if kwargs:
                return f"generation options {sorted(kwargs)} are passed to HF's generate"
        return None

    def _prefill_prompt(self, tokens: list[int]) -> tuple[torch.Tensor, list[LayerKV]]:
        """Logits after `tokens` and their KV (batch 1), reusing the previous prompt's common prefix."""
        start, reusable = self._reusable_generation_prefix(tokens, limit=len(tokens) - 1)
        if start < MIN_SHARED_GENERATION_PREFIX:  # not worth the slicing
            start, reusable = 0, None
        self.stats["generation_prefix_tokens_reused"] += start
        ids = torch.tensor([tokens[start:]], dtype=torch.long)
        logits, cache = self._forward(ids, reusable, keep=1, unpadded=ids.shape[1], count=False)
        self.stats["generation_prefill_tokens"] += ids.shape[1]
        kv = cache_tensors(cache)
        self._generation_prefix = (list(tokens), kv)
        return logits[0, -1].float(), kv

    def _reusable_generation_prefix(self, tokens: list[int], limit: int) -> tuple[int, list[LayerKV] | None]:
        """How many leading tokens (at most `limit`) the last generation prefix shares with `tokens`, and
        their KV (None when none)."""
        if self._generation_prefix is None:
            return 0, None
        old_tokens, old_kv = self._generation_prefix
        start = len(_common_prefix([old_tokens, tokens], limit=limit))
        if start == 0:
            return 0, None
        return start, [(k[:, :, :start], v[:, :, :start]) for k, v in old_kv]

    def _decode_step(
        self, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any
    ) -> tuple[torch.Tensor, Any]:
        """One decoding step of left-padded rows: the next-token logits [rows, vocab] and the cache."""
        logits = self._call_model(input_ids, cache, 1, attention_mask=mask, position_ids=positions)
        self.stats["generation_steps"] += 1
        self.stats["generation_rows"] += input_ids.shape[0]
        return logits[:, -1].float(), cache

    def _model_generate(self, context: torch.Tensor, max_length: int, stop: list[str], **generation_kwargs):
        """HFLM's generation, with the prompts' shared prefix computed once when that is worth it."""
        mask = generation_kwargs.get("attention_mask")
        if not self.prefix_caching or mask is None:
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        width = context.shape[1]
        lengths = [int(n) for n in mask.sum(dim=1).tolist()]
        rows = [context[j, width - n :].tolist() for j, n in enumerate(lengths)]  # left-padded: real = suffix
        shared = _common_prefix(rows, limit=min(lengths) - 1)  # every row keeps >= 1 token to feed generate
        if len(shared) < MIN_SHARED_GENERATION_PREFIX:
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        prefix_kv = self._generation_prefix_kv(shared)

        # Lay each row out as [shared prefix | padding | rest of the row]: same width as HFLM's layout, so
        # HFLM's slicing of the output and its stop criteria are unchanged; positions come from the mask.
        new_context = torch.full_like(context, self._pad_id)
        new_mask = torch.zeros_like(mask)
        for j, row in enumerate(rows):
            new_context[j, : len(shared)] = torch.tensor(shared)
            new_mask[j, : len(shared)] = 1
            rest = row[len(shared) :]
            new_context[j, width - len(rest) :] = torch.tensor(rest)
            new_mask[j, width - len(rest) :] = 1
        generation_kwargs["attention_mask"] = new_mask
        generation_kwargs[self._cache_kw] = make_cache(prefix_kv, context.shape[0])
        self.stats["generation_prefix_tokens_reused"] += len(shared) * (context.shape[0] - 1)
        return super()._model_generate(new_context, max_length, stop, **generation_kwargs)

    def _generation_prefix_kv(self, shared: list[int]) -> list[LayerKV]:
        """KV of `shared`, reusing the previous batch's prefix as far as it agrees (one entry is kept)."""
        start, reusable = self._reusable_generation_prefix(shared, limit=len(shared))
        self.stats["generation_prefix_tokens_reused"] += start
        if start < len(shared):
            ids = torch.tensor([shared[start:]], dtype=torch.long)
            _, cache = self._forward(ids, reusable, keep=1, unpadded=ids.shape[1])
            kv = cache_tensors(cache)
        else:
            kv = reusable or []
        self._generation_prefix = (list(shared), kv)
        return kv


class _TreeRun:
    """Per-request accumulators for one `_loglikelihood_tokens` call."""

    def __init__(self, requests: list[TokenRequest], targets: list[list[int]], first_scored: list[int]):
        self.requests = requests
        self.targets = targets
        self.first_scored = first_scored
        self.totals = [0.0] * len(requests)
        self.greedy = [True] * len(requests)
        self.progress: tqdm | None = None

    def scored_suffix(self, node: PrefixNode) -> int:
        """How many of the node's last positions some request scores."""
        return max(node.end - max(self.first_scored[i], node.start) for i in node.scored)

    def record(
        self, node: PrefixNode, logprobs: torch.Tensor, greedy: torch.Tensor, window_start: int
    ) -> None:
        """Add this node's scored positions to each request. `logprobs[c]` is the distribution after the
        node's token at relative position `window_start + c`."""
        for index in node.scored:
            first = max(self.first_scored[index], node.start)
            cols = torch.arange(first - node.start - window_start, len(node.tokens) - window_start)
            wanted = self.targets[index][
                first - self.first_scored[index] : node.end - self.first_scored[index]
            ]
            wanted_t = torch.tensor(wanted, dtype=torch.long, device=logprobs.device)
            picked = logprobs[cols.to(logprobs.device)]
            self.totals[index] += float(torch.gather(picked, 1, wanted_t.unsqueeze(1)).sum())
            self.greedy[index] = self.greedy[index] and bool(
                (greedy[cols.to(greedy.device)] == wanted_t).all()
            )

    def finish(self, index: int, cache_hook: Any) -> None:
        request_str = self.requests[index][0]
        if request_str is not None:
            cache_hook.add_partial("loglikelihood", request_str, (self.totals[index], self.greedy[index]))
        if self.progress is not None:
            self.progress.update(1)


# Generation-config fields whose non-neutral values make HF's `generate` add logits processors (or search)
# that plain argmax decoding would skip: with any of them set, generation goes through `generate`.
_NEUTRAL_GENERATION_CONFIG: dict[str, tuple[Any, ...]] = {
    "repetition_penalty": (None, 1, 1.0),
    "encoder_repetition_penalty": (None, 1, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "forced_decoder_ids": (None,),
    "sequence_bias": (None,),
    "exponential_decay_length_penalty": (None,),
    "num_beams": (None, 1),
    "penalty_alpha": (None,),
    "renormalize_logits": (None, False),
    "length_penalty": (None, 1, 1.0),
    "watermarking_config": (None,),
    "assistant_model": (None,),
    "prompt_lookup_num_tokens": (None,),
    "max_new_tokens": (None,),
    "max_time": (None,),
    "stop_strings": (None,),
    "remove_invalid_values": (None, False),
    "guidance_scale": (None, 1, 1.0),
    "dola_layers": (None,),
    "diversity_penalty": (None, 0, 0.0),
    "constraints": (None,),
    "force_words_ids": (None,),
    "token_healing": (None, False),
    "use_mtp": (None, False),
}


def _eos_ids(config: Any) -> set[int]:
    """The token ids that end a row in HF's `generate`: the generation config's eos_token_id(s)."""
    eos = getattr(config, "eos_token_id", None)
    if eos is None:
        return set()
    return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}


def _common_prefix(rows: Sequence[Sequence[int]], limit: int) -> list[int]:
    """The longest prefix shared by all rows, at most `limit` tokens."""
    if not rows or limit <= 0:
        return []
    first = list(rows[0][:limit])
    n = len(first)
    for row in rows[1:]:
        n = min(n, len(row))
        i = 0
        while i < n and row[i] == first[i]:
            i += 1
        n = i
    return first[:n]
