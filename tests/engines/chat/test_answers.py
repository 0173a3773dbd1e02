"""Answer generation: local batched generation, endpoints (a real transformers serve and a scripted server),
resume, chat templates, FastChat answer files."""

from __future__ import annotations

import json
import shutil

import pytest

from mergeval.checks.mtbench import (
    answers_check,
    export_fastchat_answers,
    generate_answers,
    import_fastchat_answers,
    stored_answers,
)
from mergeval.engines.chat import GenerationConfig, conversation, load_questions
from mergeval.engines.chat._local import LocalChatModel
from mergeval.errors import UserError
from mergeval.models import resolve
from mergeval.store import Store

GREEDY = GenerationConfig.greedy(max_new_tokens=10)


def _questions(n_per_category: int = 1):
    questions, seen = [], {}
    for q in load_questions():
        seen[q.category] = seen.get(q.category, 0) + 1
        if seen[q.category] <= n_per_category:
            questions.append(q)
    return questions


def test_batched_greedy_answers_equal_one_at_a_time_and_are_stored_per_question(tmp_path, tiny_model_dir):
    questions = _questions()[:6]
    ref = resolve(tiny_model_dir)
    with Store(tmp_path / "batched.db") as batched, Store(tmp_path / "single.db") as single:
        assert generate_answers(batched, ref, questions, generation=GREEDY, batch_size=4) == 6
        assert generate_answers(single, ref, questions, generation=GREEDY, batch_size=1) == 6
        a, b = stored_answers(batched, ref, questions, GREEDY), stored_answers(single, ref, questions, GREEDY)
        assert a == b and len(a) == 6
        items = {i.item_id: i for i in batched.items(ref.fingerprint, answers_check(questions, GREEDY).hash,
                                                      with_data=True)}
        first = items[questions[0].item_id]
        assert 0 < first.metrics["n_tokens_t1"] <= 10 and first.data["category"] == questions[0].category
        assert first.data["question_hash"] == questions[0].content_hash()
        (run,) = batched.runs(ref.fingerprint)
        assert run.status == "done" and run.n_items == 6 and run.provenance["backend"] == "transformers"
        assert run.provenance["chat_template_hash"]


def test_resume_generates_only_missing_questions(tmp_path, tiny_model_dir):
    questions = _questions()[:4]
    ref = resolve(tiny_model_dir)
    with Store(tmp_path / "s.db") as store:
        assert generate_answers(store, ref, questions[:2], generation=GREEDY, batch_size=2) == 2
        before = stored_answers(store, ref, questions, GREEDY)
        assert generate_answers(store, ref, questions, generation=GREEDY, batch_size=2) == 2
        after = stored_answers(store, ref, questions, GREEDY)
        assert len(after) == 4 and all(after[k] == v for k, v in before.items())
        assert generate_answers(store, ref, questions, generation=GREEDY) == 0
        assert len(store.runs(ref.fingerprint)) == 2  # the third call started no run (model never loaded)
        # a different generation config is a different check: nothing is reused
        assert generate_answers(store, ref, questions[:1], generation=GenerationConfig.greedy(5)) == 1


def test_sampled_categories_are_seeded(tmp_path, tiny_model_dir):
    writing = [q for q in load_questions() if q.category in ("writing", "roleplay")][:3]
    config = GenerationConfig(max_new_tokens=8, seed=7)
    assert config.temperature_for("writing") == 0.7 and config.temperature_for("math") == 0.0
    ref = resolve(tiny_model_dir)
    runs = []
    for name in ("a", "b"):
        with Store(tmp_path / f"{name}.db") as store:
            generate_answers(store, ref, writing, generation=config, batch_size=3)
            runs.append(stored_answers(store, ref, writing, config))
            item = store.items(ref.fingerprint, answers_check(writing, config).hash, with_data=True)[0]
            assert item.data["temperature"] == 0.7
    assert runs[0] == runs[1]


def test_a_model_without_chat_template_is_refused_unless_one_is_given(tmp_path, tiny_model_dir):
    bare = tmp_path / "no-template"
    shutil.copytree(tiny_model_dir, bare)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((bare / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(config))
    ref = resolve(bare)
    questions = _questions()[:1]
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(UserError, match="no chat template"):
            generate_answers(store, ref, questions, generation=GREEDY)
        assert stored_answers(store, ref, questions, GREEDY) == {}
        template = "{% for m in messages %}<<{{ m['role'] }}: {{ m['content'] }}>>{% endfor %}<<assistant: "
        given = GenerationConfig.greedy(max_new_tokens=6, chat_template=template)
        assert generate_answers(store, ref, questions, generation=given) == 1


def test_the_given_template_and_the_conversation_are_what_the_model_sees(tiny_model_dir):
    model = LocalChatModel(resolve(tiny_model_dir), chat_template="{% for m in messages %}[{{ m['role'] }}|"
                                                                 "{{ m['content'] }}]{% endfor %}")
    question = _questions()[0]
    prompt = model.render(conversation("Be brief.", question, "MY FIRST ANSWER"))
    assert prompt == (f"[system|Be brief.][user|{question.turns[0]}][assistant|MY FIRST ANSWER]"
                      f"[user|{question.turns[1]}]")
    # the model's own template (ChatML in the tiny model) when none is given
    own = LocalChatModel(resolve(tiny_model_dir)).render(conversation(None, question, None))
    assert own == f"<|im_start|>user\n{question.turns[0]}<|im_end|>\n<|im_start|>assistant\n"


def test_endpoint_turn_two_sees_the_models_own_first_answer(tmp_path, scripted_server):
    questions = [q for q in load_questions() if q.category in ("writing", "math")][:2]

    def reply(body, index):
        return f"reply-{index} to: {body['messages'][-1]['content'][:20]}"

    server = scripted_server(reply)
    ref = resolve(f"openai:served-model@{server.base_url}")
    with Store(tmp_path / "s.db") as store:
        assert generate_answers(store, ref, questions, generation=GenerationConfig(max_new_tokens=32),
                                concurrency=1) == 2
        answers = stored_answers(store, ref, questions, GenerationConfig(max_new_tokens=32))
    assert len(server.requests) == 4
    for question in questions:
        first, second = answers[question.item_id]
        (turn2,) = [r for r in server.requests if r["messages"][-1]["content"] == question.turns[1]]
        assert turn2["messages"] == [
            {"role": "user", "content": question.turns[0]},
            {"role": "assistant", "content": first},
            {"role": "user", "content": question.turns[1]},
        ]
        assert turn2["max_tokens"] == 32 and turn2["model"] == "served-model"
        expected = 0.7 if question.category == "writing" else 0.0
        assert turn2["temperature"] == expected and ("seed" in turn2) == (expected > 0)
        assert second.startswith("reply-")


def test_endpoint_failure_keeps_answers_and_resume_finishes(tmp_path, scripted_server):
    questions = _questions()[:4]
    config = GenerationConfig(max_new_tokens=8)
    down = scripted_server(lambda body, i: "fine" if i < 4 else (500, "model crashed"))
    ref = resolve(f"openai:m@{down.base_url}")
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(UserError, match=r"HTTP 500.*Stopped after answering 2 of 4"):
            generate_answers(store, ref, questions, generation=config, concurrency=1, max_retries=1)
        assert len(stored_answers(store, ref, questions, config)) == 2
        assert [r.status for r in store.runs(ref.fingerprint)] == ["failed"]
        port = down.port
        down.stop()
        back = scripted_server(lambda body, i: "back", port=port)
        assert generate_answers(store, ref, questions, generation=config, concurrency=2) == 2
        assert len(back.requests) == 4  # only the two missing questions, two turns each
        assert len(stored_answers(store, ref, questions, config)) == 4


def test_served_answers_equal_local_answers(tmp_path, served_tiny, tiny_model_dir):
    """transformers serve applies the same chat template and greedy decoding as local generation."""
    questions = _questions()[:3]
    endpoint = resolve(f"openai:{served_tiny.model_dir}@{served_tiny.base_url}")
    local = resolve(tiny_model_dir)
    with Store(tmp_path / "s.db") as store:
        assert generate_answers(store, endpoint, questions, generation=GREEDY, concurrency=2) == 3
        assert generate_answers(store, local, questions, generation=GREEDY, batch_size=3) == 3
        served, here = stored_answers(store, endpoint, questions, GREEDY), stored_answers(store, local, questions, GREEDY)
    assert served == here
    assert any(turn for pair in served.values() for turn in pair)


def test_fastchat_answer_files_round_trip(tmp_path, scripted_server):
    questions = _questions()[:3]
    server = scripted_server(lambda body, i: f"answer {i} {{with braces}}")
    ref = resolve(f"openai:m@{server.base_url}", name="my-merge")
    with Store(tmp_path / "s.db") as store:
        generate_answers(store, ref, questions, generation=GREEDY)
        path = export_fastchat_answers(store, ref, questions, tmp_path / "mt_bench", generation=GREEDY)
        assert path == tmp_path / "mt_bench" / "model_answer" / "my-merge.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert [r["question_id"] for r in records] == sorted(q.question_id for q in questions)
        assert all(r["model_id"] == "my-merge" and len(r["choices"][0]["turns"]) == 2 for r in records)
        imported = import_fastchat_answers(store, path, questions, generation=GREEDY)
        assert imported.kind == "imported" and imported.name == "my-merge"
        assert stored_answers(store, imported, questions, GREEDY) == stored_answers(store, ref, questions, GREEDY)
        # the same file is the same model
        assert import_fastchat_answers(store, path, questions, generation=GREEDY).fingerprint == imported.fingerprint
        # an imported model has nothing to generate more answers with
        with pytest.raises(UserError, match="imported"):
            generate_answers(store, imported, _questions()[:4], generation=GREEDY)


def test_official_fastchat_answer_file_imports(tmp_path, mt_bench_dir):
    questions = load_questions(mt_bench_dir / "question.jsonl")
    with Store(tmp_path / "s.db") as store:
        ref = import_fastchat_answers(store, mt_bench_dir / "reference_answer" / "gpt-4.jsonl", questions)
        answers = stored_answers(store, ref, questions)
    assert ref.name == "gpt-4" and len(answers) == 30
