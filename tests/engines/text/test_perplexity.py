"""Perplexity: parity with lm-eval's loglikelihood_rolling, overlapping windows, normalisation, resume."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest
import torch

from mergeval.checks.perplexity import PerplexityConfig, check_hash, perplexity_scores, run_perplexity
from mergeval.core.progress import NullProgress
from mergeval.engines.text._corpus import load_corpus
from mergeval.engines.text.perplexity import PerplexityTotals, count_bytes, count_words
from mergeval.errors import UserError
from mergeval.models import resolve
from mergeval.store import Store
from mergeval.testing import make_tiny_llama


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_llama(tmp_path_factory.mktemp("ppl") / "tiny", seed=3)


@pytest.fixture()
def ref(model_dir):
    return resolve(model_dir, batch_size=4, device="cpu")


def test_equals_lm_eval_loglikelihood_rolling(model_dir, ref, tmp_path):
    """stride = context length reproduces lm-eval's rolling loglikelihood, document by document."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    context_length = 64  # the bundled documents are 200-300 tokens: 4-5 windows each
    docs = load_corpus(None).documents
    lm = HFLM(pretrained=str(model_dir), max_length=context_length, batch_size=4, device="cpu")
    requests = [Instance("loglikelihood_rolling", {}, (d.text,), i) for i, d in enumerate(docs)]
    expected = lm.loglikelihood_rolling(requests, disable_tqdm=True)

    with Store(tmp_path / "s.db") as store:
        config = PerplexityConfig(context_length=context_length)
        assert run_perplexity(store, ref, config) == len(docs)
        items = {it.item_id: it for it in store.items(ref.fingerprint, check_hash(config, ref), with_data=True)}
        summary = perplexity_scores(store, ref, config)

    assert max(it.data["n_windows"] for it in items.values()) >= 4  # really several windows per document
    for doc, want in zip(docs, expected, strict=True):
        got = items[doc.id].metrics["loglikelihood"]
        assert got == pytest.approx(want, rel=1e-4)
        assert items[doc.id].metrics["n_tokens"] == len(lm.tok_encode(doc.text))
    total = math.fsum(expected)
    assert summary.totals.loglikelihood == pytest.approx(total, rel=1e-4)
    n_words = sum(len(re.split(r"\s+", d.text)) for d in docs)
    n_bytes = sum(len(d.text.encode("utf-8")) for d in docs)
    assert summary.word_perplexity == pytest.approx(math.exp(-total / n_words), rel=1e-4)
    assert summary.bits_per_byte == pytest.approx(-total / n_bytes / math.log(2), rel=1e-4)


def test_stride_one_scores_every_token_with_full_context(model_dir, ref, tmp_path):
    """With stride 1 every token is predicted from the `context_length` tokens before it (the prefix token
    standing in before the first token): checked against one plain transformers forward per token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    text = "The harbour wakes before the town does. By five in the morning the first boats slide out."
    corpus = tmp_path / "one.jsonl"
    corpus.write_text(json.dumps({"id": "doc", "text": text}) + "\n")
    context_length = 12
    with Store(tmp_path / "s.db") as store:
        config = PerplexityConfig(text=str(corpus), context_length=context_length, stride=1)
        run_perplexity(store, ref, config)
        got = perplexity_scores(store, ref, config).totals

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
    prefix = tokenizer.bos_token_id
    sequence = [prefix] + tokens
    expected = 0.0
    with torch.no_grad():
        for j, token in enumerate(tokens):
            context = sequence[max(0, j + 1 - context_length) : j + 1]
            logits = model(torch.tensor([context])).logits[0, -1]
            expected += torch.log_softmax(logits.double(), dim=-1)[token].item()
    assert len(tokens) > 3 * context_length
    assert got.n_tokens == len(tokens)
    assert got.loglikelihood == pytest.approx(expected, rel=1e-4)


def test_overlapping_windows_are_a_different_check_with_better_context(ref, tmp_path):
    with Store(tmp_path / "s.db") as store:
        plain = PerplexityConfig(context_length=32)
        overlap = PerplexityConfig(context_length=32, stride=8)
        assert check_hash(plain) != check_hash(overlap)
        run_perplexity(store, ref, plain)
        run_perplexity(store, ref, overlap)
        a, b = perplexity_scores(store, ref, plain), perplexity_scores(store, ref, overlap)
    assert a.n_documents == b.n_documents == 12
    assert a.totals.n_tokens == b.totals.n_tokens and a.totals.n_bytes == b.totals.n_bytes
    assert a.totals.loglikelihood != pytest.approx(b.totals.loglikelihood, rel=1e-6)


def test_normalisation_math():
    totals = PerplexityTotals(loglikelihood=-100.0, n_tokens=50, n_words=20, n_bytes=120)
    assert totals.token_perplexity == pytest.approx(math.exp(2.0))
    assert totals.word_perplexity == pytest.approx(math.exp(5.0))
    assert totals.byte_perplexity == pytest.approx(math.exp(100 / 120))
    assert totals.bits_per_byte == pytest.approx(100 / 120 / math.log(2))
    both = PerplexityTotals.sum([totals, PerplexityTotals(-20.0, 10, 4, 30)])
    assert both == PerplexityTotals(-120.0, 60, 24, 150)
    assert both.word_perplexity == pytest.approx(math.exp(120 / 24))  # pooled, not a mean of documents
    assert count_words("one  two\nthree\tfour") == 4
    assert count_bytes("café") == 5


def test_word_and_byte_counts_do_not_depend_on_the_tokenizer(ref, tmp_path):
    other = resolve(make_tiny_llama(tmp_path / "other", seed=1, vocab_size=300), batch_size=4, device="cpu")
    config = PerplexityConfig(context_length=128)
    with Store(tmp_path / "s.db") as store:
        run_perplexity(store, ref, config)
        run_perplexity(store, other, config)
        a, b = perplexity_scores(store, ref, config), perplexity_scores(store, other, config)
    assert a.totals.n_tokens != b.totals.n_tokens  # different tokenizers ...
    assert (a.totals.n_words, a.totals.n_bytes) == (b.totals.n_words, b.totals.n_bytes)  # ... same text
    assert set(a.per_item) == set(b.per_item)  # paired by document
    # The per-item score is each document's own bits per byte, from its own sums.
    with Store(tmp_path / "s.db") as store:
        items = {it.item_id: it.metrics for it in store.items(ref.fingerprint, check_hash(config, ref))}
    for item_id, bpb in a.per_item.items():
        m = items[item_id]
        assert bpb == pytest.approx(-m["loglikelihood"] / m["n_bytes"] / math.log(2))
        assert m["bits_per_byte"] == pytest.approx(bpb)


def test_resume_after_an_interruption_computes_only_what_is_missing(ref, tmp_path):
    config = PerplexityConfig(context_length=64)

    class Interrupt(Exception):
        pass

    class StopAfterFirstBatch(NullProgress):
        def advance(self, key: str, n: int = 1) -> None:
            raise Interrupt

    with Store(tmp_path / "s.db") as store:
        with pytest.raises(Interrupt):
            run_perplexity(store, ref, config, progress=StopAfterFirstBatch())
        stored = store.count_items(ref.fingerprint, check_hash(config, ref))
        assert 0 < stored < 12
        assert store.runs()[-1].status == "failed"
        assert run_perplexity(store, ref, config) == 12 - stored
        assert run_perplexity(store, ref, config) == 0  # complete: the model is not even loaded
        resumed = perplexity_scores(store, ref, config)
    with Store(tmp_path / "fresh.db") as fresh:
        run_perplexity(fresh, ref, config)
        straight = perplexity_scores(fresh, ref, config)
    assert resumed.per_item == pytest.approx(straight.per_item, rel=1e-9)


def test_text_sources_and_identity(tmp_path):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("First document.\n")
    (folder / "sub" / "b.md").write_text("# Second\nA markdown document.")
    (folder / "c.jsonl").write_text('{"text": "third"}\n\n{"id": "x", "text": "fourth"}\n{"text": "   "}\n')
    (folder / ".hidden.txt").write_text("not read")
    (folder / "notes.csv").write_text("not read")
    corpus = load_corpus(str(folder))
    assert [d.id for d in corpus.documents] == ["a.txt", "c.jsonl:1", "c.jsonl:x", "sub/b.md"]

    config = PerplexityConfig(text=str(folder), context_length=64)
    moved = tmp_path / "moved"
    shutil.copytree(folder, moved)
    assert check_hash(PerplexityConfig(text=str(moved), context_length=64)) == check_hash(config)
    assert check_hash(PerplexityConfig(text=str(folder), context_length=64, stride=64)) == check_hash(config)
    for changed in (
        PerplexityConfig(text=str(folder), context_length=32),
        PerplexityConfig(text=str(folder), context_length=64, stride=16),
        PerplexityConfig(text=str(folder), context_length=64, dtype="bfloat16"),
        PerplexityConfig(context_length=64),
    ):
        assert check_hash(changed) != check_hash(config)
    (moved / "a.txt").write_text("First document!\n")
    assert check_hash(PerplexityConfig(text=str(moved), context_length=64)) != check_hash(config)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "ok"}\n{"text": "broken"\n', r"bad\.jsonl:2 is not valid JSON"),
        ('{"text": "ok"}\n{"body": "no text"}\n', r"bad\.jsonl:2 has no \"text\" string"),
        ('{"text": "ok"}\n[1, 2]\n', r"bad\.jsonl:2 is a JSON list"),
        ('{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n', r"has the id '1' more than once"),
        ('{"text": "  "}\n', r"is empty"),
    ],
)
def test_bad_text_files_are_reported_with_the_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_corpus(str(path))


def test_bad_options_fail_before_anything_is_stored(ref, tmp_path):
    with pytest.raises(UserError, match="neither a file"):
        check_hash(PerplexityConfig(text=str(tmp_path / "missing.txt")))
    with pytest.raises(UserError, match="stride 128 is larger"):
        PerplexityConfig.from_options(context_length=64, stride=128)
    with pytest.raises(UserError, match="Unknown dtype 'fp8'"):
        PerplexityConfig.from_options(dtype="fp8")
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(UserError, match="longer than the model's maximum length"):
            run_perplexity(store, ref, PerplexityConfig(context_length=100_000))
        assert store.runs() == [] and store.models() == []


def test_cli_prints_a_table_and_reuses_the_store(model_dir, tmp_path):
    from typer.testing import CliRunner

    from mergeval.cli import app

    runner = CliRunner()
    args = [
        "perplexity",
        str(model_dir),
        "--context-length",
        "64",
        "--store",
        str(tmp_path / "s.db"),
        "--device",
        "cpu",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "Bits/byte" in first.output and "12 items computed now" in first.output
    second = runner.invoke(app, [*args, "--json"])
    assert second.exit_code == 0, second.output
    payload = json.loads(second.stdout)
    assert payload["tiny"]["n_documents"] == payload["tiny"]["n_target"] == 12
    assert payload["tiny"]["metric"] == "bits_per_byte" and payload["tiny"]["higher_is_better"] is False
