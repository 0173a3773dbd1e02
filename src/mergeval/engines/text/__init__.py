"""Text engines: the machinery of the perplexity, BLEU/chrF, consistency and sanity check types.

- `perplexity`: lm-eval's rolling windows scored by lm-eval's HFLM, normalised per token, word and byte;
- `bleu`: sacrebleu's corpus and sentence BLEU/chrF of greedy answers (`_generate.Generator`);
- `consistency`: pairs of prompts answered greedily, judged by an answer match and sentence embeddings;
- `sanity`: fast probes of a loaded model (generation, repetition, NaN weights, tokenizer vs parents).

They know nothing of plans, stores or reports: the check types in `mergeval.checks` (one file per type) turn
what they compute into stored items and read it back. See docs/text-metrics.md.
"""
