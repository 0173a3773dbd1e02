"""Helpers for tests of mergeval and of plugins: tiny random models (see mergeval.tiny).

Production code imports `mergeval.tiny`, never this module."""

from mergeval.tiny import CHAT_TEMPLATE, make_tiny_llama, make_tokenizer, train_tokenizer

__all__ = ["CHAT_TEMPLATE", "make_tiny_llama", "make_tokenizer", "train_tokenizer"]
