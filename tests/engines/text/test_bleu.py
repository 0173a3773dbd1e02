"""BLEU / chrF: sacrebleu numbers, per-item scores from real generations, data validation, resume."""

from __future__ import annotations

import json

import pytest
import sacrebleu

from mergeval.checks.bleu import BleuConfig, bleu_scores, check_hash, run_bleu
from mergeval.engines.text._generate import GenerationSettings, Generator
from mergeval.engines.text.bleu import corpus_scores, load_items
from mergeval.errors import UserError
from mergeval.models import resolve
from mergeval.store import Store
from mergeval.testing import make_tiny_llama

HYPOTHESES = ["Le chat dort sur le canapé.", "J'achète du pain tous les matins.", "Il pleut beaucoup."]
REFERENCES = [
    ["Le chat dort sur le canapé."],
    ["J'achète du pain frais tous les matins.", "Chaque matin, j'achète du pain frais."],
    ["Il pleut et j'ai oublié mon parapluie."],
]


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    path = make_tiny_llama(tmp_path_factory.mktemp("bleu") / "tiny", seed=5)
    return resolve(path, batch_size=4, device="cpu")


def test_corpus_scores_equal_sacrebleu_called_directly():
    config = BleuConfig()
    got = corpus_scores(HYPOTHESES, REFERENCES, config)
    # sacrebleu's functional API with the references laid out by hand (None where an item has fewer).
    streams = [[r[0] for r in REFERENCES], [None, REFERENCES[1][1], None]]
    assert got.bleu == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, streams).score)
    assert got.chrf == pytest.approx(sacrebleu.corpus_chrf(HYPOTHESES, streams).score)
    assert 30 < got.bleu < 100 and 30 < got.chrf < 100  # a real, non-degenerate number
    assert got.bleu_signature.startswith("nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert got.chrf_signature.startswith("nrefs:var|case:mixed|eff:yes|nc:6|nw:0|space:no|version:")

    lower = corpus_scores([h.upper() for h in HYPOTHESES], REFERENCES, BleuConfig(lowercase=True))
    assert lower.bleu == pytest.approx(got.bleu)
    assert "case:lc" in lower.bleu_signature
    intl = corpus_scores(HYPOTHESES, REFERENCES, BleuConfig(tokenize="intl"))
    assert intl.bleu == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, streams, tokenize="intl").score)


def test_run_stores_sentence_scores_and_summary_matches_sacrebleu(ref, tmp_path):
    data = tmp_path / "data.jsonl"
    rows = [
        {"id": "a", "prompt": "Translate: the cat", "reference": "le chat"},
        {"prompt": "Translate: the dog", "reference": ["le chien", "un chien"]},
        {"id": "c", "prompt": "Say hello.", "reference": "bonjour"},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    config = BleuConfig(data=str(data), max_new_tokens=8)
    with Store(tmp_path / "s.db") as store:
        assert run_bleu(store, ref, config) == 3
        assert run_bleu(store, ref, config) == 0  # resumed: nothing left to do
        items = {it.item_id: it for it in store.items(ref.fingerprint, check_hash(config, ref), with_data=True)}
        summary = bleu_scores(store, ref, config)
        provenance = store.runs(ref.fingerprint, check_hash(config, ref))[-1].provenance

    assert set(items) == {"a", "2", "c"}  # the id field, else the line number
    assert (summary.n_items, summary.n_target) == (3, 3)
    outputs = [items[i].data["output"] for i in ("2", "a", "c")]  # summary order: sorted ids
    references = [items[i].data["references"] for i in ("2", "a", "c")]
    assert all("\n" not in o for o in outputs)
    streams = [[r[0] for r in references], [r[1] if len(r) > 1 else None for r in references]]
    assert summary.bleu == pytest.approx(sacrebleu.corpus_bleu(outputs, streams).score)
    assert summary.chrf == pytest.approx(sacrebleu.corpus_chrf(outputs, streams).score)
    for item_id, it in items.items():
        assert summary.per_item[item_id] == pytest.approx(
            sacrebleu.sentence_bleu(it.data["output"], it.data["references"]).score
        )
        assert summary.per_item_chrf[item_id] == pytest.approx(
            sacrebleu.sentence_chrf(it.data["output"], it.data["references"]).score
        )
    assert provenance["bleu_signature"] == summary.bleu_signature
    assert provenance["chat_template_used"] is True


def test_batched_generation_with_left_padding_equals_one_by_one(ref):
    generator = Generator(ref)
    prompts = [
        "Hi",
        "What is the capital of France? Answer in one word.",
        "Two plus two equals",
        "Hello, how",
    ]
    settings = GenerationSettings(max_new_tokens=6, chat=False, stop_at_newline=False)
    batched = generator.generate(prompts, settings, batch_size=4)
    single = [generator.generate([p], settings, batch_size=1)[0] for p in prompts]
    assert batched == single
    assert any(batched)


def test_chat_template_wraps_the_prompt_when_asked(ref):
    generator = Generator(ref)
    chat = generator.tokenizer.decode(generator._encode(["Bonjour"], chat=True)["input_ids"][0])
    raw = generator.tokenizer.decode(generator._encode(["Bonjour"], chat=False)["input_ids"][0])
    assert chat.startswith("<|im_start|>user\nBonjour<|im_end|>") and chat.endswith("<|im_start|>assistant\n")
    assert raw == "Bonjour"


def test_identity_covers_data_and_generation_settings(tmp_path):
    base = check_hash(BleuConfig())
    assert check_hash(BleuConfig()) == base
    for changed in (
        BleuConfig(max_new_tokens=32),
        BleuConfig(chat=False),
        BleuConfig(stop_at_newline=False),
        BleuConfig(tokenize="intl"),
        BleuConfig(lowercase=True),
        BleuConfig(dtype="float32"),
    ):
        assert check_hash(changed) != base
    items, _ = load_items(None)
    assert len(items) == 10 and all(it.references for it in items)
    copy = tmp_path / "copy.jsonl"
    copy.write_text(
        "".join(
            json.dumps({"id": it.id, "prompt": it.prompt, "reference": it.references[0]}) + "\n"
            for it in items
        )
    )
    assert check_hash(BleuConfig(data=str(copy))) == base  # same content, another path: same check


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "p"}\n', r"data\.jsonl:1 needs a \"reference\""),
        ('{"prompt": "p", "reference": ["ok", ""]}\n', r"data\.jsonl:1 needs a \"reference\""),
        ('{"reference": "r"}\n', r"data\.jsonl:1 has no non-empty text field 'prompt'"),
        ('{"prompt": "p", "reference": "r"}\nnot json\n', r"data\.jsonl:2 is not valid JSON"),
        (
            '{"id": "x", "prompt": "p", "reference": "r"}\n{"id": "x", "prompt": "q", "reference": "s"}\n',
            "has the id 'x' more than once",
        ),
    ],
)
def test_bad_data_is_reported_with_the_line(tmp_path, content, message):
    path = tmp_path / "data.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_items(str(path))


def test_unknown_tokenizer_is_a_user_error():
    with pytest.raises(UserError, match="Unknown sacrebleu tokenizer 'moses'"):
        BleuConfig.from_options(tokenize="moses")
