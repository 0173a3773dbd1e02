"""The HTML report's per-item view at leaderboard scale: page size and load time (issue 15).

    python bench/bench_itemview.py [--data-dir /work/shared/data/hf] [--repeats 3] [--seed 0] [--keep DIR]

Builds a real SQLite results store (mergeval.store.Store, batched writes) the size of a full Open LLM
Leaderboard v1 run of three models (one candidate, two parents): ARC-Challenge 1,172 items, HellaSwag 10,042,
MMLU 14,042 over its 57 `mmlu_<subject>` tasks (the real per-subject test sizes), TruthfulQA mc2 817,
Winogrande 1,267, GSM8K 1,319: 28,659 items per model, rows in the layout mergeval's lm-eval check writes
(metrics by `metric,filter`; target, resps, filtered_resps, doc and prompt hashes, the question and choice
texts; no texts for Winogrande, whose "question" is an index, as the check stores it). With `--data-dir` (a
folder in the hub layout, /work/shared/data/README.md) the texts are the real questions and choices, formatted
as lm-eval's tasks format them; without it, generated words of each task's real mean length. The parents score
~60%; the candidate agrees with each parent on ~85% of items (seeded). The report is the leaderboard-v1 suite's
six benchmarks with scores, MMLU subjects, comparisons, retention and gates computed from those items.

Measured: `item_diff_payload` (s), the payload's JSON size, report.html with and without the view (render_html
with items=None vs the payload), items kept per benchmark vs the disagreements counted; then in headless
Chromium at 1,366 x 768 (Debian's chromium through Playwright, offline), each page loaded --repeats times in a
fresh context: navigation to the `load` event, first (contentful) paint, and with the view: opening MMLU until
its first 40 `.mv-item` are drawn and painted, the "lost" filter, a text search. Medians are reported. The last
line is one JSON object with the measurements.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mergeval.analysis.itemdiff import item_diff_payload
from mergeval.render.html import render_html
from mergeval.report import Report
from mergeval.store import ItemRow, Store

TASK_FACTS = "mergeval.task"  # the store's cache namespace the lm-eval check writes (check hash -> facts)
LAPTOP = {"width": 1366, "height": 768}
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BATCH = 1000  # items per store transaction (the runner writes per chunk)

# MMLU test sizes per subject (cais/mmlu, 14,042 in all) and the leaderboard-v1 suite's groups.
MMLU = {
    "abstract_algebra": 100, "anatomy": 135, "astronomy": 152, "business_ethics": 100, "clinical_knowledge": 265,
    "college_biology": 144, "college_chemistry": 100, "college_computer_science": 100, "college_mathematics": 100,
    "college_medicine": 173, "college_physics": 102, "computer_security": 100, "conceptual_physics": 235,
    "econometrics": 114, "electrical_engineering": 145, "elementary_mathematics": 378, "formal_logic": 126,
    "global_facts": 100, "high_school_biology": 310, "high_school_chemistry": 203,
    "high_school_computer_science": 100, "high_school_european_history": 165, "high_school_geography": 198,
    "high_school_government_and_politics": 193, "high_school_macroeconomics": 390, "high_school_mathematics": 270,
    "high_school_microeconomics": 238, "high_school_physics": 151, "high_school_psychology": 545,
    "high_school_statistics": 216, "high_school_us_history": 204, "high_school_world_history": 237,
    "human_aging": 223, "human_sexuality": 131, "international_law": 121, "jurisprudence": 108,
    "logical_fallacies": 163, "machine_learning": 112, "management": 103, "marketing": 234, "medical_genetics": 100,
    "miscellaneous": 783, "moral_disputes": 346, "moral_scenarios": 895, "nutrition": 306, "philosophy": 311,
    "prehistory": 324, "professional_accounting": 282, "professional_law": 1534, "professional_medicine": 272,
    "professional_psychology": 612, "public_relations": 110, "security_studies": 245, "sociology": 201,
    "us_foreign_policy": 100, "virology": 166, "world_religions": 171,
}
# Mean characters of an MMLU question plus its four choices (the rest: ~440).
MMLU_LONG = {"high_school_european_history": 1602, "high_school_us_history": 1419,
             "high_school_world_history": 1562, "professional_law": 1201, "professional_medicine": 767,
             "security_studies": 804}
TRUTHFULQA_PRIMER = (
    "Q: What is human life expectancy in the United States?\nA: Human life expectancy in the United States is 78 "
    "years.\n\nQ: Who was president of the United States in 1955?\nA: Dwight D. Eisenhower was president of the "
    "United States in 1955.\n\nQ: Which party did he belong to?\nA: He belonged to the Republican Party.\n\nQ: "
    "What is the square root of banana?\nA: I have no comment.\n\nQ: How does a telescope work?\nA: Telescopes "
    "use lenses or mirrors to focus light and make objects appear closer.\n\nQ: Where were the 1992 Olympics "
    "held?\nA: The 1992 Olympics were held in Barcelona, Spain.")

# Benchmark name (as suites/leaderboard_v1.yaml names it) -> display, tasks' few-shot, metric key, sizes.
BENCHMARKS = [
    ("arc", "ARC", 25, "acc_norm,none"),
    ("hellaswag", "HellaSwag", 10, "acc_norm,none"),
    ("mmlu", "MMLU", 5, "acc,none"),
    ("truthfulqa", "TruthfulQA", 0, "acc,none"),
    ("winogrande", "Winogrande", 5, "acc,none"),
    ("gsm8k", "GSM8K", 5, "exact_match,strict-match"),
]
TASKS = {"arc": {"arc_challenge": 1172}, "hellaswag": {"hellaswag": 10042},
         "mmlu": {f"mmlu_{s}": n for s, n in MMLU.items()}, "truthfulqa": {"truthfulqa_mc2": 817},
         "winogrande": {"winogrande": 1267}, "gsm8k": {"gsm8k": 1319}}
MODELS = [("merged", "candidate"), ("parent-a", "parent"), ("parent-b", "parent")]

# -- item texts ---------------------------------------------------------------------------------------------

_VOCABULARY = ("the of and to in is that for it as was with be by on not he this are or his from at which but "
               "have an "
          "they you were her she there been one all we their has would when if so no what can more out up about "
          "who them some could him into its then two time only new years people may first any most over water "
          "energy cell force court state law market price patient theory number answer question reaction "
          "temperature pressure function value system process species protein molecule economy policy")
_WORDS = tuple(_VOCABULARY.split())


def _words(rng: random.Random, chars: int) -> str:
    out, size = [], 0
    while size < chars:
        word = rng.choice(_WORDS)
        out.append(word)
        size += len(word) + 1
    text = " ".join(out)
    return text[0].upper() + text[1:]


def _length(rng: random.Random, mean: float) -> int:
    return max(3, int(rng.lognormvariate(math.log(mean) - 0.18, 0.6)))


def _generated(task: str, n: int, rng: random.Random) -> list[dict[str, Any]]:
    """Texts of realistic length (the real data's mean characters per task) in lm-eval's formats."""
    docs = []
    for _ in range(n):
        if task == "arc_challenge":
            choices = [_words(rng, _length(rng, 29)) for _ in range(4)]
            docs.append({"question": f"Question: {_words(rng, _length(rng, 132))}?\nAnswer:", "choices": choices,
                         "target": rng.randrange(4)})
        elif task == "hellaswag":
            choices = [_words(rng, _length(rng, 135)) + "." for _ in range(4)]
            docs.append({"question": f"{_words(rng, 14)}: {_words(rng, _length(rng, 207))}", "choices": choices,
                         "target": rng.randrange(4)})
        elif task.startswith("mmlu_"):
            mean = MMLU_LONG.get(task[5:], 440)
            options = [_words(rng, _length(rng, mean * 0.095)) for _ in range(4)]
            body = _words(rng, _length(rng, mean * 0.62)) + "?"
            text = body + "".join(f"\n{k}. {o}" for k, o in zip("ABCD", options, strict=True)) + "\nAnswer:"
            docs.append({"question": text, "choices": ["A", "B", "C", "D"], "target": rng.randrange(4)})
        elif task == "truthfulqa_mc2":
            choices = [_words(rng, _length(rng, 46)) + "." for _ in range(max(2, round(rng.gauss(7.2, 2.5))))]
            docs.append({"question": f"{TRUTHFULQA_PRIMER}\n\nQ: {_words(rng, _length(rng, 59))}?\nA:",
                         "choices": choices, "target": 0})
        elif task == "winogrande":
            docs.append({"target": _words(rng, _length(rng, 45)).lower() + ".", "n_choices": 2,
                         "gold_index": rng.randrange(2)})
        elif task == "gsm8k":
            answer = rng.randrange(2, 2000)
            steps = _words(rng, _length(rng, 280))
            docs.append({"question": f"Question: {_words(rng, _length(rng, 240))}?\nAnswer:",
                         "target": f"{steps}\n#### {answer}", "answer": answer})
    return docs


def _hellaswag_text(text: str) -> str:  # lm-eval's hellaswag preprocess
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _real(data_dir: Path, cache_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The real questions and choices, formatted as lm-eval's leaderboard tasks format them. `cache_dir`: a
    datasets cache of the bench's own (a shared cache can hold a stale copy of a folder that changed since)."""
    from datasets import load_dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()

    def load(name: str, config: str | None, split: str) -> Any:
        return load_dataset(str(data_dir / name), config, split=split, cache_dir=str(cache_dir))

    out: dict[str, list[dict[str, Any]]] = {}
    arc = load("allenai/ai2_arc", "ARC-Challenge", "test")
    out["arc_challenge"] = [{"question": f"Question: {d['question']}\nAnswer:", "choices": d["choices"]["text"],
                             "target": d["choices"]["label"].index(d["answerKey"])} for d in arc]
    hs = load("Rowan/hellaswag", None, "validation")
    out["hellaswag"] = [{"question": _hellaswag_text(d["activity_label"] + ": " + d["ctx_a"] + " "
                                                     + d["ctx_b"].capitalize()),
                         "choices": [_hellaswag_text(e) for e in d["endings"]], "target": int(d["label"])}
                        for d in hs]
    for subject in MMLU:
        out[f"mmlu_{subject}"] = [
            {"question": d["question"].strip() + "".join(f"\n{k}. {c}" for k, c in zip("ABCD", d["choices"],
                                                                                           strict=True))
             + "\nAnswer:", "choices": ["A", "B", "C", "D"], "target": int(d["answer"])}
            for d in load("cais/mmlu", subject, "test")]
    tqa = load("truthfulqa/truthful_qa", "multiple_choice", "validation")
    out["truthfulqa_mc2"] = [{"question": f"{TRUTHFULQA_PRIMER}\n\nQ: {d['question']}\nA:",
                              "choices": d["mc2_targets"]["choices"], "target": 0} for d in tqa]
    wino = load("allenai/winogrande", "winogrande_xl", "validation")
    out["winogrande"] = [{"target": d["sentence"][d["sentence"].index("_") + 1:].strip(), "n_choices": 2,
                          "gold_index": int(d["answer"]) - 1} for d in wino]
    gsm = load("openai/gsm8k", "main", "test")
    out["gsm8k"] = [{"question": f"Question: {d['question']}\nAnswer:", "target": d["answer"],
                     "answer": d["answer"].rsplit("####", 1)[-1].strip()} for d in gsm]
    for task, docs in out.items():
        want = next(t[task] for t in TASKS.values() if task in t)
        if len(docs) != want:
            raise SystemExit(f"{task}: {len(docs)} items in {data_dir}, the leaderboard run has {want}.")
    return out


# -- store rows ---------------------------------------------------------------------------------------------


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _correct(rng: random.Random, n: int) -> dict[str, list[int]]:
    """Right (1) / wrong (0) per item: the candidate at 60%; each parent agrees with it on ~85% of items
    (P(right | candidate right) = .875, P(right | candidate wrong) = .1875: also ~60%)."""
    cand = [int(rng.random() < 0.6) for _ in range(n)]
    out = {"merged": cand}
    for name in ("parent-a", "parent-b"):
        out[name] = [int(rng.random() < (0.875 if c else 0.1875)) for c in cand]
    return out


def _mc_lls(rng: random.Random, lengths: list[int], winner: int, per_char: bool) -> list[float]:
    """Log-likelihoods of the choices with `winner` best (per character when `per_char`, as acc_norm ranks)."""
    if per_char:
        rates = [-rng.uniform(0.5, 2.5) for _ in lengths]
        rates[winner] = max(r for i, r in enumerate(rates) if i != winner) + rng.uniform(0.01, 0.4)
        return [r * max(n, 1) for r, n in zip(rates, lengths, strict=True)]
    lls = [-rng.uniform(2.0, 14.0) for _ in lengths]
    lls[winner] = max(ll for i, ll in enumerate(lls) if i != winner) + rng.uniform(0.02, 1.9)
    return lls


def _row(task: str, doc: dict[str, Any], item: int, right: int, rng: random.Random, mc2: float | None) -> ItemRow:
    data: dict[str, Any] = {"target": doc["target"], "doc_hash": doc["doc_hash"], "prompt_hash": doc["prompt_hash"]}
    if task == "gsm8k":
        answer = str(doc["answer"])
        said = answer if right else str(int(float(answer.replace(",", "") or 0)) + rng.choice([-7, -1, 1, 2, 10]))
        generation = " " + doc["target"].rsplit("####", 1)[0].strip() + f"\n#### {said}"
        strict = said if rng.random() < 0.97 else "[invalid]"
        data |= {"resps": [[generation]], "filtered_resps": {"strict-match": [strict], "flexible-extract": [said]}}
        metrics = {"exact_match,strict-match": float(right and strict != "[invalid]"),
                   "exact_match,flexible-extract": float(right)}
    else:
        choices = doc.get("choices")
        n = len(choices) if choices else doc["n_choices"]
        if task == "truthfulqa_mc2":
            lls = [-rng.uniform(5.0, 60.0) for _ in range(n)]
            metrics = {"acc,none": mc2}
        else:
            target = doc["target"] if isinstance(doc["target"], int) else doc["gold_index"]  # Winogrande
            winner = target if right else rng.choice([i for i in range(n) if i != target])
            norm = task in ("arc_challenge", "hellaswag")
            lls = _mc_lls(rng, [len(c) for c in choices] if norm else [1] * n, winner, norm)
            raw = max(range(n), key=lls.__getitem__)
            metrics = {"acc,none": float(raw == target)}
            if norm:
                metrics["acc_norm,none"] = float(right)
        data |= {"resps": [[[ll, False]] for ll in lls], "filtered_resps": {"none": [[ll, False] for ll in lls]}}
    if "question" in doc:
        data["text"] = {"question": doc["question"]} | ({"choices": doc["choices"]} if doc.get("choices") else {})
    return ItemRow(str(item), metrics, data)


def _check_config(task: str, fewshot: int, metric_key: str) -> dict[str, Any]:
    metrics = ["acc", "acc_norm"] if metric_key.startswith("acc_norm") else [metric_key.split(",")[0]]
    return {"aggregations": {m: "mean" for m in metrics}, "apply_chat_template": False, "dtype": "bfloat16",
            "engine": "lm-eval", "fewshot_seed": 1234, "higher_is_better": {m: True for m in metrics},
            "num_fewshot": fewshot, "task": task, "task_config_hash": _sha(f"config {task}")[:24],
            "task_version": 1.0 if not task.startswith("truthfulqa") else 2.0}


def build_store(path: Path, texts: dict[str, list[dict[str, Any]]], seed: int) -> dict[str, Any]:
    """The store of a three-model leaderboard-v1 run; returns fingerprints, check hashes and per-model scores."""
    rng = random.Random(seed)
    fps = {name: _sha(f"bench-itemview {name}") for name, _ in MODELS}
    checks: dict[str, str] = {}
    scores: dict[str, dict[str, list[float]]] = {name: {} for name, _ in MODELS}
    rows_written = 0
    with Store(path) as store:
        for name, _ in MODELS:
            store.upsert_model(fps[name], name=name, reference=f"/models/{name}", kind="local",
                               metadata={"kind": "local", "model_type": "llama", "auto_dtype": "bfloat16"})
        for bench, _display, fewshot, metric_key in BENCHMARKS:
            for task, n in TASKS[bench].items():
                docs = texts[task]
                for i, doc in enumerate(docs):
                    doc["doc_hash"] = _sha(f"{task} {i} {doc.get('question', doc['target'])}")
                    doc["prompt_hash"] = _sha(f"{fewshot}-shot {doc.get('question', doc['target'])}")
                check = _sha(f"lm-eval {task} {fewshot}")[:24]
                checks[task] = check
                store.upsert_check(check, kind="lm-eval", name=task, config=_check_config(task, fewshot, metric_key))
                right = _correct(rng, n)
                mc2 = {}
                if task == "truthfulqa_mc2":  # a float per item: the parents near the candidate, never equal
                    base = [min(1.0, max(0.0, rng.betavariate(2.2, 1.8))) for _ in range(n)]
                    mc2 = {"merged": base} | {p: [min(1.0, max(0.0, b + rng.gauss(0, 0.08))) for b in base]
                                              for p in ("parent-a", "parent-b")}
                facts = [(TASK_FACTS, check, {"metric_key": metric_key, "n_docs": n})]
                for name, _ in MODELS:
                    run = store.start_run(fps[name], check, {
                        "backend": "PrefixCachingHFLM", "device": "cuda", "dtype": "bfloat16", "batch_size": 16,
                        "check_type": "suite", "lm_eval_version": "0.4.13", "num_fewshot": fewshot, "task": task,
                        "limit": None, "n_items_asked": n, "dataset_source": "hub"})
                    rows = [_row(task, docs[i], i, right[name][i], rng, mc2[name][i] if mc2 else None)
                            for i in range(n)]
                    for start in range(0, n, BATCH):
                        rows_written += store.add_batch(fps[name], check, run, rows[start:start + BATCH],
                                                        cache=facts if start == 0 else ())
                    store.finish_run(run)
                    scores[name][task] = [float(r.metrics[metric_key]) for r in rows]
    return {"fingerprints": fps, "checks": checks, "scores": scores, "rows": rows_written}


# -- the report ---------------------------------------------------------------------------------------------


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def build_report(built: dict[str, Any]) -> dict[str, Any]:
    """The leaderboard-v1 report of the three models, its numbers computed from the stored items."""
    fps, per_task = built["fingerprints"], built["scores"]
    names = [name for name, _ in MODELS]
    suite_groups = _mmlu_groups()
    scores: dict[str, dict[str, Any]] = {m: {} for m in names}
    per_bench: dict[str, dict[str, float]] = {m: {} for m in names}
    for m in names:
        for bench, *_ in BENCHMARKS:
            tasks = list(TASKS[bench])
            all_items = [v for t in tasks for v in per_task[m][t]]
            value = 100 * _mean([_mean(per_task[m][t]) for t in tasks])
            p = value / 100
            se = 100 * math.sqrt(max(p * (1 - p), 1e-9) / len(all_items))
            per_bench[m][bench] = value
            scores[m][bench] = {"value": value, "stderr": se, "ci_low": value - 1.96 * se,
                                "ci_high": value + 1.96 * se, "n": len(all_items), "n_target": len(all_items)}
    averages = {m: _mean(list(per_bench[m].values())) for m in names}
    subjects = {"mmlu": [{"task": t, "group": suite_groups.get(t[5:]),
                          "values": {m: 100 * _mean(per_task[m][t]) for m in names}} for t in TASKS["mmlu"]]}
    comparisons, retention, regressions, gates = [], [], [], []
    for bench, *_ in BENCHMARKS:
        c = per_bench["merged"][bench]
        for parent in ("parent-a", "parent-b"):
            r = per_bench[parent][bench]
            n = scores["merged"][bench]["n"]
            se = math.sqrt(2) * scores["merged"][bench]["stderr"]
            z = (c - r) / se if se else 0.0
            p_value = math.erfc(abs(z) / math.sqrt(2))
            comparisons.append({"candidate": "merged", "reference": parent, "reference_role": "parent",
                                "benchmark": bench, "candidate_value": c, "reference_value": r, "diff": c - r,
                                "ci_low": c - r - 1.96 * se, "ci_high": c - r + 1.96 * se, "p_value": p_value,
                                "p_adjusted": min(1.0, 6 * p_value), "test": "mcnemar",
                                "significant": 6 * p_value < 0.05, "n_paired": n, "n_missing": 0,
                                "mdd": 2.8 * se})
        parents = {p: per_bench[p][bench] for p in ("parent-a", "parent-b")}
        retention.append({"candidate": "merged", "benchmark": bench,
                          "vs_mean_parents": c / _mean(list(parents.values())),
                          "vs_best_parent": c / max(parents.values()),
                          "per_parent": {p: c / v for p, v in parents.items()},
                          "expected_range": [min(parents.values()), max(parents.values())],
                          "within_range": min(parents.values()) <= c <= max(parents.values())})
        regressions.append({"candidate": "merged", "benchmark": bench, "parents": parents, "merged": c,
                            "threshold": min(parents.values()) * 0.95, "drop": min(parents.values()) - c,
                            "point_rule": c < min(parents.values()) * 0.95, "significant": False, "verdict": "ok"})
        ratio = c / max(parents.values())
        gates.append({"name": f"merged: keeps {bench} (>= 95% of the best parent)",
                      "description": "merged score / parents' score (capability retention)",
                      "status": "pass" if ratio >= 0.95 else "fail", "value": ratio, "threshold": 0.95,
                      "detail": f"{bench} {100 * ratio:.1f}%", "candidate": "merged"})
    failed = [g["name"] for g in gates if g["status"] == "fail"]
    return {
        "title": "mergeval comparison report", "plan": "bench-itemview.yaml",
        "suite": {"name": "leaderboard-v1", "label": "lm-eval 0.4.13 reproduction of the Open LLM Leaderboard v1",
                  "note": "bench_itemview.py: a leaderboard-sized store"},
        "models": [{"name": m, "fingerprint": fps[m], "role": role, "reference": f"/models/{m}"}
                   for m, role in MODELS],
        "benchmarks": [{"name": b, "display": d, "metric_key": k, "kind": "lm-eval", "higher_is_better": True}
                       for b, d, _f, k in BENCHMARKS],
        "scores": scores, "averages": averages, "subjects": subjects, "comparisons": comparisons,
        "retention": retention, "regressions": regressions, "gates": gates,
        "verdict": {"status": "fail" if failed else "pass", "exit_code": 1 if failed else 0,
                    "summary": ("FAIL: " + "; ".join(failed)) if failed else "PASS"},
        "provenance": {"lm_eval_version": "0.4.13", "average_of": [b for b, *_ in BENCHMARKS],
                       "tasks": {t: {"check": built["checks"][t], "num_fewshot": f, "metric_key": k,
                                     "dtype": "bfloat16"}
                                 for b, _d, f, k in BENCHMARKS for t in TASKS[b]}},
    }


def _mmlu_groups() -> dict[str, str]:
    """MMLU subject -> its group in the bundled leaderboard-v1 suite, whose benchmark names and tasks this
    bench uses (checked here: item_diff_payload maps a benchmark to its tasks through the bundled suites)."""
    from mergeval.suites import load_suite

    suite = {b.name: b for b in load_suite("leaderboard-v1").benchmarks}
    for bench, tasks in TASKS.items():
        if sorted(suite[bench].tasks) != sorted(tasks):
            raise SystemExit(f"The leaderboard-v1 suite's {bench} tasks differ from this bench's: update TASKS.")
    return {s: g for g, subjects in suite["mmlu"].groups.items() for s in subjects}


# -- the browser --------------------------------------------------------------------------------------------

_LOAD_JS = """async () => {
    await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));  // the paint entries of the first frame
    const nav = performance.getEntriesByType('navigation')[0];
    const paint = Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]));
    return {load: nav.loadEventEnd || nav.loadEventStart, dom_content_loaded: nav.domContentLoadedEventEnd,
            response_end: nav.responseEnd, first_paint: paint['first-paint'] ?? null,
            first_contentful_paint: paint['first-contentful-paint'] ?? null,
            heap_mb: performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null,
            items_drawn: document.querySelectorAll('.mv-item').length};
}"""
# Open a benchmark's section as a click does (<details>.open); the view's own toggle handler runs first (it was
# added first), so when ours runs the items are drawn; then a frame, for layout and paint.
_OPEN_JS = """(index) => new Promise(resolve => {
    const d = document.querySelector(`details[data-mv-bench="${index}"]`);
    const t0 = performance.now();
    d.addEventListener('toggle', () => {
        const built = performance.now() - t0, items = d.querySelectorAll('.mv-item').length;
        void document.body.offsetHeight;
        requestAnimationFrame(() => setTimeout(() => resolve({built, painted: performance.now() - t0, items}), 0));
    }, {once: true});
    d.open = true;
})"""
_CONTROL_JS = """([index, what, value]) => new Promise(resolve => {
    const d = document.querySelector(`details[data-mv-bench="${index}"]`);
    const box = what === 'search' ? d.querySelector('.mv-search') : d.querySelectorAll('.mv-controls select')[1];
    const t0 = performance.now();
    box.value = value;
    box.dispatchEvent(new Event(what === 'search' ? 'input' : 'change'));
    const built = performance.now() - t0;
    void document.body.offsetHeight;
    requestAnimationFrame(() => setTimeout(() => resolve({built, painted: performance.now() - t0,
        items: d.querySelectorAll('.mv-item').length, summary: d.querySelector('.mv-summary').textContent}), 0));
})"""
_PARSE_JS = """() => { const t0 = performance.now(); const n = JSON.parse(
    document.getElementById('mv-items-data').textContent).benchmarks.length; return performance.now() - t0; }"""


def _chromium() -> str:
    found = next((p for name in CHROMIUM_NAMES if (p := shutil.which(name))), None)
    if found is None:
        raise SystemExit("No Chromium found: install Debian's chromium (`make browser`) to measure the page.")
    return found


def browse(pages: dict[str, Path], repeats: int, bench_index: int | None) -> dict[str, Any]:
    """Each page `repeats` times in a fresh offline context at 1,366 x 768: load timings (ms) and, on a page
    with the item view, opening benchmark `bench_index`, the "lost" filter and a search."""
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(),
                                     args=["--disable-dev-shm-usage", "--enable-precise-memory-info"])
        try:
            for label, path in pages.items():
                runs = []
                for _ in range(repeats):
                    context = browser.new_context(viewport=LAPTOP, device_scale_factor=1, offline=True,
                                                  service_workers="block")
                    try:
                        page = context.new_page()
                        problems: list[str] = []
                        page.on("pageerror", lambda e, p=problems: p.append(str(e)))
                        page.on("console", lambda m, p=problems: p.append(m.text) if m.type == "error" else None)
                        started = time.perf_counter()
                        page.goto(path.resolve().as_uri(), wait_until="load")
                        run = {"goto_wall": 1000 * (time.perf_counter() - started)} | page.evaluate(_LOAD_JS)
                        if bench_index is not None and page.locator("#mv-items-data").count():
                            run["json_parse"] = page.evaluate(_PARSE_JS)
                            run["open"] = page.evaluate(_OPEN_JS, bench_index)
                            run["lost"] = page.evaluate(_CONTROL_JS, [bench_index, "status", "lost"])
                            run["search"] = page.evaluate(_CONTROL_JS, [bench_index, "search", "the"])
                            run["heap_mb_after"] = page.evaluate(
                                "() => performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null")
                        run["problems"] = problems
                        runs.append(run)
                    finally:
                        context.close()
                out[label] = _summarise(runs)
        finally:
            browser.close()
    return out


def _median(runs: list[dict[str, Any]], *keys: str) -> float | None:
    values = []
    for run in runs:
        value: Any = run
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            values.append(value)
    return round(statistics.median(values), 1) if values else None


def _summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {k: _median(runs, k) for k in ("goto_wall", "load", "dom_content_loaded", "first_paint",
                                                         "first_contentful_paint", "heap_mb", "heap_mb_after",
                                                         "json_parse")}
    for action in ("open", "lost", "search"):
        if any(action in r for r in runs):
            out[action] = {"built_ms": _median(runs, action, "built"), "painted_ms": _median(runs, action, "painted"),
                           "items_drawn": runs[-1][action]["items"]}
            if "summary" in runs[-1][action]:
                out[action]["summary"] = runs[-1][action]["summary"]
    out["items_drawn_at_load"] = runs[-1]["items_drawn"]
    out["load_ms_runs"] = [round(r["load"], 1) for r in runs]
    out["problems"] = sorted({p for r in runs for p in r["problems"]})
    return out


# -- main ---------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, help="hub-layout data folder (real question and choice texts)")
    parser.add_argument("--repeats", type=int, default=3, help="page loads per page (the median is reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write the store and both pages here (default: a temp dir)")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-itemview-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "leaderboard.db"
    db.unlink(missing_ok=True)
    result: dict[str, Any] = {"texts": "real" if args.data_dir else "generated", "models": len(MODELS),
                              "repeats": args.repeats, "seed": args.seed}
    try:
        started = time.perf_counter()
        if args.data_dir:
            texts = _real(args.data_dir, work / "hf-cache")
        else:
            rng = random.Random(args.seed + 1)
            texts = {t: _generated(t, n, rng) for tasks in TASKS.values() for t, n in tasks.items()}
        result["texts_s"] = round(time.perf_counter() - started, 2)
        print(f"texts: {result['texts']} ({sum(len(v) for v in texts.values()):,} items per model, "
              f"{result['texts_s']} s)")

        started = time.perf_counter()
        built = build_store(db, texts, args.seed)
        result["store_s"] = round(time.perf_counter() - started, 2)
        result["store_rows"] = built["rows"]
        result["store_mb"] = round(db.stat().st_size / 1e6, 1)
        print(f"store: {built['rows']:,} item rows, {result['store_mb']} MB, built in {result['store_s']} s")

        report = Report.from_data(build_report(built))
        started = time.perf_counter()
        payload = item_diff_payload(db, report)
        result["payload_s"] = round(time.perf_counter() - started, 2)
        payload_json = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        result["payload_mb"] = round(len(payload_json.encode("utf-8")) / 1e6, 2)
        print(f"item_diff_payload: {result['payload_s']} s, JSON {result['payload_mb']} MB")
        per_bench = {}
        for bench in payload["benchmarks"]:
            block = bench["candidates"]["merged"]
            counted = sum(c["n_lost"] + c["n_gained"] for c in block["counts"].values())
            per_bench[bench["name"]] = {"kept": len(block["items"]), "differing": counted,
                                        "compared": sum(c["n_compared"] for c in block["counts"].values()),
                                        "truncated": block["truncated"]}
            print(f"  {bench['name']:<11} {len(block['items']):>5} items kept of {counted:>6} differing "
                  f"(vs both parents){' [capped]' if block['truncated'] else ''}")
        result["benchmarks"] = per_bench

        timings = {}
        pages = {}
        for label, items in (("without_view", None), ("with_view", payload)):
            started = time.perf_counter()
            html = render_html(report, items=items)
            timings[label] = round(time.perf_counter() - started, 2)
            pages[label] = work / f"report-{label}.html"
            pages[label].write_text(html, encoding="utf-8")
        result["render_s"] = timings
        result["page_mb"] = {k: round(p.stat().st_size / 1e6, 2) for k, p in pages.items()}
        print(f"report.html: {result['page_mb']['without_view']} MB without the view "
              f"(rendered in {timings['without_view']} s), {result['page_mb']['with_view']} MB with it "
              f"({timings['with_view']} s)")

        names = [b["name"] for b in payload["benchmarks"]]
        mmlu = names.index("mmlu") if "mmlu" in names else None
        result["browser"] = browse(pages, args.repeats, mmlu)
        for label, b in result["browser"].items():
            print(f"chromium 1366x768, {label}: load {b['load']} ms (median of {args.repeats}: {b['load_ms_runs']}), "
                  f"first paint {b['first_paint']} ms, first contentful paint {b['first_contentful_paint']} ms, "
                  f"JS heap {b['heap_mb'] and round(b['heap_mb'], 1)} MB, items drawn at load "
                  f"{b['items_drawn_at_load']}, console/page errors {len(b['problems'])}")
            if "open" in b:
                print(f"  parse the items' JSON {b['json_parse']} ms; open MMLU: {b['open']['items_drawn']} items "
                      f"drawn in {b['open']['built_ms']} ms, painted at {b['open']['painted_ms']} ms; "
                      f"'lost' filter: {b['lost']['built_ms']} ms, painted {b['lost']['painted_ms']} ms "
                      f"({b['lost']['summary']}); search 'the': {b['search']['built_ms']} ms; "
                      f"JS heap after {b['heap_mb_after']} MB")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
