"""Prompt construction for smoke_winogrande: the same as lm-eval's winogrande task
(tasks/winogrande/preprocess_winogrande.py).

Winogrande is scored "partially": each choice is the sentence up to the blank with one option filled in, and
the target is the rest of the sentence after the blank, so `doc_to_text` returns the gold choice's index."""


def doc_to_text(doc: dict) -> int:
    answer_to_num = {"1": 0, "2": 1}
    return answer_to_num[doc["answer"]]


def doc_to_target(doc: dict) -> str:
    idx = doc["sentence"].index("_") + 1
    return doc["sentence"][idx:].strip()


def doc_to_choice(doc: dict) -> list[str]:
    idx = doc["sentence"].index("_")
    options = [doc["option1"], doc["option2"]]
    return [doc["sentence"][:idx] + opt for opt in options]
