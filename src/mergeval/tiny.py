"""Tiny random models for tests, examples and the demo (the way mergekit tests itself; tests import them
through `mergeval.testing`).

`make_tiny_llama(path)` writes a complete Hugging Face model folder (config, safetensors weights,
fast tokenizer with a chat template) in well under a second, with no network. The tokenizer is a
byte-level BPE trained on a few hundred words of English, so any text round-trips.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = """
The quick brown fox jumps over the lazy dog. Question: What is the capital of France? Answer: Paris.
The following are multiple choice questions (with answers) about science. A. B. C. D. Answer:
Two plus two equals four. 12 + 30 = 42. #### 42. The sun is a star. Water boils at 100 degrees.
Once upon a time there was a model that merged two parents and kept both of their skills.
Hello, how are you today? I am fine, thank you. Write a short poem about the sea and the sky.
def add(a, b):\n    return a + b\nprint(add(1, 2))\nimport math\nfor i in range(10):\n    pass
0 1 2 3 4 5 6 7 8 9 10 100 1000 + - * / = ( ) [ ] { } , . ; : ? ! ' " # $ % & @ _ < >
"""


def train_tokenizer(corpus: list[str], vocab_size: int, *, split_digits: bool = False):
    """A byte-level BPE tokenizer trained on `corpus` (digits split one by one with `split_digits`), with the
    special tokens and chat template of mergeval's tiny models; deterministic."""
    return _fast(_train(corpus, vocab_size, split_digits))


def _train(corpus: list[str], vocab_size: int, split_digits: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
                         if split_digits else byte_level)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return tok


def _fast(tok):
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@lru_cache(maxsize=4)
def _tokenizer_json(vocab_size: int) -> str:
    return _train([_CORPUS] * 4, vocab_size, split_digits=False).to_str()


def make_tokenizer(vocab_size: int = 400):
    """A fast byte-level BPE tokenizer with a chat template; deterministic for a given vocab size."""
    from tokenizers import Tokenizer

    return _fast(Tokenizer.from_str(_tokenizer_json(vocab_size)))


def make_tiny_llama(
    path: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    intermediate_size: int = 64,
    max_position_embeddings: int = 4096,
    vocab_size: int = 400,
    model=None,
) -> Path:
    """Write a tiny random LlamaForCausalLM (or `model`, if given) plus tokenizer to `path`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    tok = make_tokenizer(vocab_size)
    if model is None:
        config = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            num_key_value_heads=num_kv_heads or num_heads,
            max_position_embeddings=max_position_embeddings,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            tie_word_embeddings=False,
        )
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        # A slightly larger init than the default so tiny models have non-trivial, seed-dependent outputs.
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, 0.2)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path
