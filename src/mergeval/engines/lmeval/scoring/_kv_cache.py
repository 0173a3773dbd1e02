"""Small helpers around transformers' DynamicCache: build one from per-layer tensors, read it back, and
decide whether a model's KV cache can be cut and reused at all."""

from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache

# Per layer: (keys, values), each shaped [batch, kv_heads, positions, head_dim].
LayerKV = tuple[torch.Tensor, torch.Tensor]


def cache_keyword(model: torch.nn.Module) -> str | None:
    """The name under which the model's forward takes a KV cache (`cache` since transformers 5.x,
    `past_key_values` before), or None if it takes none."""
    params = inspect.signature(model.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    return None


def accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def cache_layers_problem(model: torch.nn.Module) -> str | None:
    """Why this model's cache cannot be sliced and rebuilt as plain full-attention layers, or None.

    Sliding-window, chunked, recurrent (Mamba-style) and shared-KV layers hold something other than "the
    keys and values of every position so far", so a prefix of them is not a reusable state.
    """
    try:
        probe = DynamicCache(config=model.config)
    except Exception as exc:  # noqa: BLE001 - any architecture DynamicCache does not understand
        return f"transformers cannot build a DynamicCache for this model ({type(exc).__name__}: {exc})"
    layers = getattr(probe, "layers", None)
    if layers is None:
        return "this transformers version's DynamicCache has no per-layer API"
    odd = sorted({type(layer).__name__ for layer in layers if type(layer).__name__ != "DynamicLayer"})
    if odd:
        return f"its KV cache has {', '.join(odd)} layers (sliding-window, recurrent or shared KV)"
    return None


def make_cache(past: list[LayerKV] | None, batch: int) -> DynamicCache:
    """A fresh DynamicCache holding `past` (batch 1 or `batch` rows), expanded to `batch` rows.

    The model appends to the cache by concatenation, so `past` itself is never modified.
    """
    cache = DynamicCache()
    for layer_idx, (keys, values) in enumerate(past or []):
        if keys.shape[0] != batch:
            keys, values = keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1)
        cache.update(keys, values, layer_idx)
    return cache


def cache_tensors(cache: DynamicCache) -> list[LayerKV]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def kv_bytes_per_token(past: list[LayerKV]) -> int:
    return sum(k[0, :, :1].numel() * k.element_size() * 2 for k, _ in past)
