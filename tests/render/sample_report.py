"""A realistic comparison report dict (schema ``mergeval.report/1``) for the report renderers' tests.

One SLERP merge of two Mistral-7B fine-tunes, its two parents and the base model as a baseline, on the six
Open LLM Leaderboard v1 benchmarks with all 57 MMLU subjects. The numbers are made up but hang together the
way mergeval.analysis's would: MMLU is the plain mean of its subjects, averages are the mean of the six
benchmarks, comparisons carry Holm-adjusted p-values per reference, retention ratios and regression verdicts
follow the methodology's rules. GSM8K regresses (so the verdict is "fail"), some gates are "not evaluated",
and the baseline's GSM8K run is incomplete (660 of 1319 items).

``build_sample_report()`` returns a fresh dict each call, so a test may mutate it freely.
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist, mean

CANDIDATE = "hermes-neural-slerp-7b"
PARENT_A = "teknium/OpenHermes-2.5-Mistral-7B"
PARENT_B = "Intel/neural-chat-7b-v3-3"
BASELINE = "mistralai/Mistral-7B-v0.1"

# (name, display, metric key, lm-eval task, few-shot, items in the full test set)
_BENCHMARKS = [
    ("arc", "ARC", "acc_norm,none", "arc_challenge", 25, 1172),
    ("hellaswag", "HellaSwag", "acc_norm,none", "hellaswag", 10, 10042),
    ("mmlu", "MMLU", "acc,none", "mmlu_*", 5, 14042),
    ("truthfulqa", "TruthfulQA", "acc,none", "truthfulqa_mc2", 0, 817),
    ("winogrande", "Winogrande", "acc,none", "winogrande", 5, 1267),
    ("gsm8k", "GSM8K", "exact_match,strict-match", "gsm8k", 5, 1319),
]

# Benchmark scores (0-100) for the non-MMLU benchmarks; MMLU is computed from the subjects below.
_SCORES = {
    "candidate": {"arc": 67.49, "hellaswag": 85.92, "truthfulqa": 59.81, "winogrande": 79.24, "gsm8k": 55.12},
    "parent_a": {"arc": 64.93, "hellaswag": 84.18, "truthfulqa": 52.24, "winogrande": 78.06, "gsm8k": 61.41},
    "parent_b": {"arc": 66.89, "hellaswag": 85.26, "truthfulqa": 63.39, "winogrande": 79.64, "gsm8k": 58.76},
    "baseline": {"arc": 59.98, "hellaswag": 83.31, "truthfulqa": 42.15, "winogrande": 78.37, "gsm8k": 37.83},
}
_MMLU_LEVEL = {"candidate": 63.4, "parent_a": 63.6, "parent_b": 62.9, "baseline": 64.2}

MMLU_GROUPS = {
    "stem": [
        "abstract_algebra",
        "anatomy",
        "astronomy",
        "college_biology",
        "college_chemistry",
        "college_computer_science",
        "college_mathematics",
        "college_physics",
        "computer_security",
        "conceptual_physics",
        "electrical_engineering",
        "elementary_mathematics",
        "high_school_biology",
        "high_school_chemistry",
        "high_school_computer_science",
        "high_school_mathematics",
        "high_school_physics",
        "high_school_statistics",
        "machine_learning",
    ],
    "humanities": [
        "formal_logic",
        "high_school_european_history",
        "high_school_us_history",
        "high_school_world_history",
        "international_law",
        "jurisprudence",
        "logical_fallacies",
        "moral_disputes",
        "moral_scenarios",
        "philosophy",
        "prehistory",
        "professional_law",
        "world_religions",
    ],
    "social_sciences": [
        "econometrics",
        "high_school_geography",
        "high_school_government_and_politics",
        "high_school_macroeconomics",
        "high_school_microeconomics",
        "high_school_psychology",
        "human_sexuality",
        "professional_psychology",
        "public_relations",
        "security_studies",
        "sociology",
        "us_foreign_policy",
    ],
    "other": [
        "business_ethics",
        "clinical_knowledge",
        "college_medicine",
        "global_facts",
        "human_aging",
        "management",
        "marketing",
        "medical_genetics",
        "miscellaneous",
        "nutrition",
        "professional_accounting",
        "professional_medicine",
        "virology",
    ],
}


def build_sample_report(
    candidate: str = CANDIDATE,
    parent_a: str = PARENT_A,
    parent_b: str = PARENT_B,
    baseline: str = BASELINE,
) -> dict:
    """The sample report; pass other model names (e.g. hostile ones) to test escaping."""
    names = {"candidate": candidate, "parent_a": parent_a, "parent_b": parent_b, "baseline": baseline}
    rng = random.Random(20240611)
    subjects = _mmlu_subjects(rng, names)
    values = {key: dict(_SCORES[key]) for key in names}
    for key, name in names.items():
        values[key]["mmlu"] = round(mean(row["values"][name] for row in subjects), 2)

    n_done = {b[0]: b[5] for b in _BENCHMARKS}
    scores = {}
    for key, name in names.items():
        scores[name] = {}
        for bench, *_rest, n_target in _BENCHMARKS:
            n = 660 if (key == "baseline" and bench == "gsm8k") else n_done[bench]
            scores[name][bench] = _score(values[key][bench], n, n_target)

    averages = {name: round(mean(values[key].values()), 2) for key, name in names.items()}
    comparisons = _comparisons(names, values)
    retention = _retention(names, values)
    regressions = _regressions(names, values, comparisons)
    leaderboard_bands = {name: _leaderboard_band(avg) for name, avg in averages.items()}

    return {
        "schema": "mergeval.report/1",
        "title": f"Is {candidate} better than its parents?",
        "generated_at": "2024-06-11T14:32:08+00:00",
        "mergeval_version": "0.1.0",
        "plan": "plans/hermes-neural-slerp.yaml",
        "suite": {
            "name": "leaderboard-v1",
            "label": "lm-eval 0.4.13 reproduction of the Open LLM Leaderboard v1 settings",
            "note": "The original leaderboard used a 2023 fork of lm-evaluation-harness; prompts and "
            "normalisation differ slightly, so numbers are close to, not identical with, the "
            "published leaderboard.",
        },
        "models": [
            {
                "name": candidate,
                "fingerprint": "sha256:9f1c2e7a4b0d5e6f",
                "role": "candidate",
                "reference": "./merges/hermes-neural-slerp-7b",
                "merge": {
                    "method": "slerp",
                    "parameters": {
                        "t": [
                            {"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]},
                            {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]},
                            {"value": 0.5},
                        ]
                    },
                    "seed": 42,
                    "mergekit_version": "0.1.5",
                    "parents": [parent_a, parent_b],
                },
            },
            {
                "name": parent_a,
                "fingerprint": "sha256:24ab0e11c6d8f3a2",
                "role": "parent",
                "reference": f"hf:{parent_a}@24c0bea",
                "merge": None,
            },
            {
                "name": parent_b,
                "fingerprint": "sha256:7de5b1c09a3f4e88",
                "role": "parent",
                "reference": f"hf:{parent_b}@7b86016",
                "merge": None,
            },
            {
                "name": baseline,
                "fingerprint": "sha256:5f0ea4d7c2b19e30",
                "role": "baseline",
                "reference": f"hf:{baseline}@26bca36",
                "merge": None,
            },
        ],
        "benchmarks": [
            {
                "name": name,
                "display": display,
                "metric_key": metric,
                "higher_is_better": True,
                "kind": "lm-eval",
            }
            for name, display, metric, *_rest in _BENCHMARKS
        ],
        "scores": scores,
        "averages": averages,
        "subjects": {"mmlu": subjects},
        "comparisons": comparisons,
        "retention": retention,
        "regressions": regressions,
        "gates": _gates(names, averages, values),
        "sanity": _sanity(names),
        "bands": {name: {"leaderboard": band, "mtbench": None} for name, band in leaderboard_bands.items()},
        "verdict": {
            "status": "fail",
            "exit_code": 1,
            "summary": "1 of 10 gates failed (no critical regressions: GSM8K dropped below 95% of the weaker "
            "parent); 4 not evaluated.",
        },
        "provenance": _provenance(names),
    }


# --------------------------------------------------------------------------------------------------


def _score(value: float, n: int, n_target: int) -> dict:
    p = value / 100
    se = math.sqrt(p * (1 - p) / n) * 100
    return {
        "value": value,
        "stderr": round(se, 3),
        "ci_low": round(value - 1.96 * se, 2),
        "ci_high": round(value + 1.96 * se, 2),
        "n": n,
        "n_target": n_target,
    }


def _mmlu_subjects(rng: random.Random, names: dict[str, str]) -> list[dict]:
    rows = []
    for group, subjects in MMLU_GROUPS.items():
        for subject in subjects:
            difficulty = rng.gauss(0, 12)  # subjects vary far more than models do
            row_values = {}
            for key, name in names.items():
                value = _MMLU_LEVEL[key] + difficulty + rng.gauss(0, 2.5)
                row_values[name] = round(min(max(value, 18.0), 95.0), 2)
            # Model merges tend to lose a little on maths-heavy subjects: make that visible in the sample.
            if subject in ("college_mathematics", "high_school_mathematics", "abstract_algebra"):
                row_values[names["candidate"]] = round(row_values[names["candidate"]] - 6.0, 2)
            rows.append({"task": f"mmlu_{subject}", "group": group, "values": row_values})
    return rows


def _holm(pvalues: list[float]) -> list[float]:
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def _comparisons(names: dict[str, str], values: dict[str, dict]) -> list[dict]:
    normal = NormalDist()
    comparisons = []
    for ref_key, role in (("parent_a", "parent"), ("parent_b", "parent"), ("baseline", "baseline")):
        rows = []
        for bench, *_rest, n_target in _BENCHMARKS:
            n = 660 if (ref_key == "baseline" and bench == "gsm8k") else n_target
            a, b = values["candidate"][bench], values[ref_key][bench]
            p = (a + b) / 200
            # Paired items are strongly correlated, so the difference is much tighter than two error bars.
            se = math.sqrt(2 * p * (1 - p) / n * 0.35) * 100
            diff = round(a - b, 2)
            p_value = 2 * (1 - normal.cdf(abs(diff) / se))
            rows.append(
                {
                    "candidate": names["candidate"],
                    "reference": names[ref_key],
                    "reference_role": role,
                    "benchmark": bench,
                    "candidate_value": a,
                    "reference_value": b,
                    "diff": diff,
                    "ci_low": round(diff - 1.96 * se, 2),
                    "ci_high": round(diff + 1.96 * se, 2),
                    "p_value": p_value,
                    "test": "bootstrap" if bench in ("truthfulqa", "mmlu") else "mcnemar",
                    "n_paired": n,
                    "n_missing": n_target - n,
                    "mdd": round(2.8 * se, 2),
                }
            )
        for row, adjusted in zip(rows, _holm([r["p_value"] for r in rows]), strict=True):
            row["p_adjusted"] = adjusted
            row["significant"] = adjusted < 0.05
        comparisons.extend(rows)
    return comparisons


def _retention(names: dict[str, str], values: dict[str, dict]) -> list[dict]:
    rows = []
    for bench, display, *_rest in _BENCHMARKS:
        merged = values["candidate"][bench]
        parents = {names[k]: values[k][bench] for k in ("parent_a", "parent_b")}
        lo, hi = min(parents.values()), max(parents.values())
        per_parent = {name: merged / value for name, value in parents.items()}
        weakest_kept = min(per_parent, key=per_parent.get)
        rows.append(
            {
                "candidate": names["candidate"],
                "benchmark": bench,
                "vs_mean_parents": merged / mean(parents.values()),
                "vs_best_parent": merged / hi,
                "per_parent": per_parent,
                "expected_range": [lo, hi],
                "within_range": lo <= merged <= hi,
                "summary": f"kept {per_parent[weakest_kept]:.0%} of {weakest_kept}'s {display} "
                f"({merged:.2f} vs {parents[weakest_kept]:.2f})",
            }
        )
    return rows


def _regressions(names: dict[str, str], values: dict[str, dict], comparisons: list[dict]) -> list[dict]:
    rows = []
    for bench, *_rest in _BENCHMARKS:
        merged = values["candidate"][bench]
        parents = {names[k]: values[k][bench] for k in ("parent_a", "parent_b")}
        weakest, strongest = min(parents, key=parents.get), max(parents, key=parents.get)
        vs = {c["reference"]: c for c in comparisons if c["benchmark"] == bench}
        threshold = round(parents[weakest] * 0.95, 2)
        point_rule = merged < threshold
        if merged < parents[weakest]:
            significant = vs[weakest]["significant"]
            verdict = (
                "regression"
                if (point_rule and significant)
                else ("possible regression" if (point_rule or significant) else "ok")
            )
        elif merged > parents[strongest]:
            significant = vs[strongest]["significant"]
            verdict = "improvement" if significant else "possible improvement"
        else:
            significant, verdict = False, "ok"
        rows.append(
            {
                "candidate": names["candidate"],
                "benchmark": bench,
                "parents": parents,
                "merged": merged,
                "threshold": threshold,
                "drop": round(parents[weakest] - merged, 2),
                "point_rule": point_rule,
                "significant": significant,
                "verdict": verdict,
                "critical": bench in ("gsm8k", "truthfulqa"),
            }
        )
    return rows


def _gates(names: dict[str, str], averages: dict[str, float], values: dict[str, dict]) -> list[dict]:
    parent_avgs = [averages[names["parent_a"]], averages[names["parent_b"]]]
    cand_avg = averages[names["candidate"]]
    return [
        {
            "name": "leaderboard_average",
            "description": "Open LLM Leaderboard average >= min(parent averages)",
            "status": "pass" if cand_avg >= min(parent_avgs) else "fail",
            "value": cand_avg,
            "threshold": min(parent_avgs),
            "detail": f"{cand_avg:.2f} vs parents {parent_avgs[0]:.2f} / {parent_avgs[1]:.2f}",
        },
        {
            "name": "mtbench",
            "description": "MT-Bench >= mean(parent MT-Bench)",
            "status": "not evaluated",
            "value": None,
            "threshold": None,
            "detail": "the plan has no MT-Bench check",
        },
        {
            "name": "domain_benchmarks",
            "description": "Domain benchmarks pass",
            "status": "not evaluated",
            "value": None,
            "threshold": None,
            "detail": "no domain benchmarks configured",
        },
        {
            "name": "no_critical_regressions",
            "description": "No regressions in critical tests",
            "status": "fail",
            "value": "1 (GSM8K)",
            "threshold": 0,
            "detail": f"GSM8K {values['candidate']['gsm8k']:.2f} < 0.95 x {values['parent_b']['gsm8k']:.2f} "
            f"({names['parent_b']}), significant after Holm correction",
        },
        {
            "name": "sanity",
            "description": "Sanity checks all pass",
            "status": "pass",
            "value": "4/4",
            "threshold": "all",
            "detail": "hello, capital continuation, instruction, no repetition",
        },
        {
            "name": "ab_win_rate",
            "description": "A/B win rate >= 45%",
            "status": "not evaluated",
            "value": None,
            "threshold": 45.0,
            "detail": "no A/B comparison in the plan",
        },
        {
            "name": "safety_truthfulqa",
            "description": "Safety checks pass (TruthfulQA >= min parent)",
            "status": "pass",
            "value": values["candidate"]["truthfulqa"],
            "threshold": min(values["parent_a"]["truthfulqa"], values["parent_b"]["truthfulqa"]),
            "detail": "",
        },
        {
            "name": "manual_testing",
            "description": "Manual testing on diverse prompts (a human signs this off)",
            "status": "not evaluated",
            "value": None,
            "threshold": None,
            "detail": "run `mergeval signoff` after testing by hand",
        },
        {
            "name": "model_size",
            "description": "Model size acceptable",
            "status": "pass",
            "value": "7.24B params",
            "threshold": "<= 7.5B params",
            "detail": "14.5 GB in bfloat16",
        },
        {
            "name": "inference_speed",
            "description": "Inference speed acceptable",
            "status": "pass",
            "value": 31.8,
            "threshold": 25.0,
            "detail": "tokens/s, batch 1, same hardware as the parents",
        },
    ]


def _sanity(names: dict[str, str]) -> list[dict]:
    rows = []
    for key in ("candidate", "parent_a", "parent_b"):
        rows += [
            {
                "model": names[key],
                "check": "hello",
                "status": "pass",
                "detail": "'Hello! How can I help you today?'",
            },
            {
                "model": names[key],
                "check": "capital_continuation",
                "status": "pass",
                "detail": "'The capital of France is' -> ' Paris, which is also its largest city.'",
            },
            {
                "model": names[key],
                "check": "instruction_following",
                "status": "pass",
                "detail": "answer mentions Paris",
            },
            {
                "model": names[key],
                "check": "no_repetition",
                "status": "pass",
                "detail": "longest repeated 4-gram run: 2 in 100 tokens",
            },
        ]
    return rows


def _provenance(names: dict[str, str]) -> dict:
    tasks = {}
    for bench, _display, metric, task, shots, n_target in _BENCHMARKS:
        tasks[task] = {
            "benchmark": bench,
            "num_fewshot": shots,
            "metric": metric,
            "n_items": n_target,
            "task_hash": f"{(sum(map(ord, task)) * 2654435761) % 16**12:012x}",
        }
    return {
        "lm_eval_version": "0.4.13",
        "transformers_version": "4.44.2",
        "torch_version": "2.4.0",
        "tasks": tasks,
        "checks": {
            "leaderboard-v1": {
                "config_hash": "c0f3e1d2a9b8",
                "dtype": "bfloat16",
                "batch_size": 8,
                "backend": "hf",
                "apply_chat_template": False,
            }
        },
        "models": {
            name: {"fingerprint": fp, "dtype": "bfloat16", "chat_template_hash": ch}
            for name, fp, ch in (
                (names["candidate"], "sha256:9f1c2e7a4b0d5e6f", "3b1f0c9d"),
                (names["parent_a"], "sha256:24ab0e11c6d8f3a2", "3b1f0c9d"),
                (names["parent_b"], "sha256:7de5b1c09a3f4e88", None),
                (names["baseline"], "sha256:5f0ea4d7c2b19e30", None),
            )
        },
        "store": "mergeval-results/results.sqlite",
    }


def _leaderboard_band(average: float) -> str:
    for upper, label in (
        (60, "poor, likely broken"),
        (65, "below average"),
        (70, "average"),
        (75, "good"),
        (80, "excellent"),
    ):
        if average < upper:
            return label
    return "state of the art"


FIFTH_MODEL = "NousResearch/Nous-Hermes-2-Mistral-7B-DPO"


def build_five_model_report() -> dict:
    """The sample report with a fifth model (role "model", a long hub name, every benchmark and subject)."""
    report = build_sample_report()
    shift = {"arc": 1.7, "hellaswag": -0.4, "mmlu": -0.9, "truthfulqa": 3.2, "winogrande": 0.6, "gsm8k": 4.1}
    values = {b: round(report["scores"][CANDIDATE][b]["value"] + d, 2) for b, d in shift.items()}
    for row in report["subjects"]["mmlu"]:
        row["values"][FIFTH_MODEL] = round(row["values"][CANDIDATE] + shift["mmlu"], 2)
    values["mmlu"] = round(mean(row["values"][FIFTH_MODEL] for row in report["subjects"]["mmlu"]), 2)
    n_target = {b[0]: b[5] for b in _BENCHMARKS}
    report["models"].append({"name": FIFTH_MODEL, "fingerprint": "sha256:0b5c7e2f9a1d3c44", "role": "model",
                             "reference": f"hf:{FIFTH_MODEL}@ebec0a6", "merge": None})
    report["scores"][FIFTH_MODEL] = {b: _score(v, n_target[b], n_target[b]) for b, v in values.items()}
    report["averages"][FIFTH_MODEL] = round(mean(values.values()), 2)
    report["bands"][FIFTH_MODEL] = {"leaderboard": _leaderboard_band(report["averages"][FIFTH_MODEL]),
                                    "mtbench": None}
    report["provenance"]["models"][FIFTH_MODEL] = {"fingerprint": "sha256:0b5c7e2f9a1d3c44", "dtype": "bfloat16",
                                                   "chat_template_hash": None}
    return report


# --------------------------------------------------------------------------------------------------
# A wide report: 16 benchmarks x 6 models, two candidates
# --------------------------------------------------------------------------------------------------

WIDE_CANDIDATES = ("NousResearch/Nous-Hermes-2-Mistral-7B-DPO-ties-merge", "hermes-neural-dare-linear-7b")
WIDE_PARENTS = (PARENT_A, PARENT_B)
WIDE_BASE = "mistralai/Mistral-7B-v0.1"
WIDE_BASELINE = "HuggingFaceH4/zephyr-7b-beta"
# (name, display, metric key, kind): twelve lm-eval benchmarks of the primary suite, four other checks
_WIDE_BENCHMARKS = [
    ("arc", "ARC", "acc_norm,none", "lm-eval"),
    ("hellaswag", "HellaSwag", "acc_norm,none", "lm-eval"),
    ("mmlu", "MMLU", "acc,none", "lm-eval"),
    ("truthfulqa", "TruthfulQA", "acc,none", "lm-eval"),
    ("winogrande", "Winogrande", "acc,none", "lm-eval"),
    ("gsm8k", "GSM8K", "exact_match,strict-match", "lm-eval"),
    ("bbh", "BBH", "acc_norm,none", "lm-eval"),
    ("gpqa", "GPQA", "acc_norm,none", "lm-eval"),
    ("ifeval", "IFEval", "prompt_level_strict_acc,none", "lm-eval"),
    ("math_hard", "MATH Lvl 5", "exact_match,none", "lm-eval"),
    ("mmlu_pro", "MMLU-Pro", "acc,none", "lm-eval"),
    ("musr", "MuSR", "acc_norm,none", "lm-eval"),
    ("humaneval", "HumanEval", "pass@1", "humaneval"),
    ("mtbench", "MT-Bench", "score", "mtbench"),
    ("bleu", "BLEU (de-en)", "bleu", "bleu"),
    ("consistency", "Consistency", "consistent", "consistency"),
]


def build_wide_report() -> dict:
    """16 benchmarks (12 of the primary suite, 4 other checks) x 6 models (2 candidates, 2 parents, a base, a
    baseline), 96 paired comparisons, 16 gates. The Average covers the 12 suite benchmarks only; one
    comparison has no differing item (MDD undefined); one candidate lands above its parents' range."""
    rng = random.Random(1366)
    models = [*WIDE_CANDIDATES, *WIDE_PARENTS, WIDE_BASE, WIDE_BASELINE]
    roles = ["candidate", "candidate", "parent", "parent", "base", "baseline"]
    n_target = 500
    level = {b: rng.uniform(30, 80) for b, *_ in _WIDE_BENCHMARKS}  # benchmarks differ far more than models
    values = {m: {b: round(level[b] + rng.gauss(0, 3), 2) for b, *_ in _WIDE_BENCHMARKS} for m in models}
    suite = [b for b, *_rest, kind in _WIDE_BENCHMARKS if kind == "lm-eval"]
    # the first candidate beats both parents on ARC (an improvement, above the parents' range)
    values[WIDE_CANDIDATES[0]]["arc"] = max(values[p]["arc"] for p in WIDE_PARENTS) + 4.0
    # the second candidate answers every MuSR item like the first parent
    values[WIDE_CANDIDATES[1]]["musr"] = values[WIDE_PARENTS[0]]["musr"]
    scores = {m: {b: _score(values[m][b], n_target, n_target) for b, *_ in _WIDE_BENCHMARKS} for m in models}
    averages = {m: round(mean(values[m][b] for b in suite), 2) for m in models}

    comparisons = []
    for cand in WIDE_CANDIDATES:
        for ref, role in ((WIDE_PARENTS[0], "parent"), (WIDE_PARENTS[1], "parent"), (WIDE_BASE, "base")):
            rows = []
            for b, *_ in _WIDE_BENCHMARKS:
                diff = round(values[cand][b] - values[ref][b], 2)
                same = diff == 0
                se = 0.0 if same else 1.6
                p_value = 1.0 if same else 2 * (1 - NormalDist().cdf(abs(diff) / se))
                rows.append({
                    "candidate": cand, "reference": ref, "reference_role": role, "benchmark": b,
                    "candidate_value": values[cand][b], "reference_value": values[ref][b], "diff": diff,
                    "ci_low": round(diff - 1.96 * se, 2), "ci_high": round(diff + 1.96 * se, 2),
                    "p_value": p_value, "test": "mcnemar", "n_paired": n_target, "n_missing": 0,
                    "mdd": round(2.8 * se, 2),
                })
            for row, adjusted in zip(rows, _holm([r["p_value"] for r in rows]), strict=True):
                row["p_adjusted"] = adjusted
                row["significant"] = adjusted < 0.05
            comparisons += rows

    retention = []
    for cand in WIDE_CANDIDATES:
        for b in [*suite, "average"]:
            merged = averages[cand] if b == "average" else values[cand][b]
            parents = {p: (averages[p] if b == "average" else values[p][b]) for p in WIDE_PARENTS}
            lo, hi = min(parents.values()), max(parents.values())
            retention.append({
                "candidate": cand, "benchmark": b, "vs_mean_parents": merged / mean(parents.values()),
                "vs_best_parent": merged / hi, "per_parent": {p: merged / v for p, v in parents.items()},
                "expected_range": [lo, hi], "within_range": lo <= merged <= hi, "summary": "",
            })

    gates = []
    for cand in WIDE_CANDIDATES:
        kept = next(r["vs_mean_parents"] for r in retention if r["candidate"] == cand and r["benchmark"] == "average")
        parent_min = min(averages[p] for p in WIDE_PARENTS)
        gsm8k_bar = round(max(values[p]["gsm8k"] for p in WIDE_PARENTS) + 2, 2)
        for label, description, status, value, threshold in (
            ("average >= min(parents)", "a measured number against a threshold",
             "pass" if averages[cand] >= parent_min else "fail", averages[cand], parent_min),
            ("retention >= 95%", "merged score / parents' score (capability retention)",
             "pass" if kept >= 0.95 else "fail", kept, 0.95),
            ("gsm8k >= max(parents) + 2", "a measured number against a threshold",
             "pass" if values[cand]["gsm8k"] >= gsm8k_bar else "fail", values[cand]["gsm8k"], gsm8k_bar),
            ("no regressions on gsm8k, truthfulqa", "no critical benchmark below min(parents) x (1 - tolerance)",
             "fail", 1, 0),
            ("mtbench >= 7", "a measured number against a threshold", "not evaluated", None, 7),
            ("sanity checks pass", "generation and weight sanity checks all pass", "pass", "4/4 passed", "4/4"),
            ("manual testing signed off", "manual testing on diverse prompts, signed off by a person",
             "not evaluated", None, None),
            ("humaneval >= 30", "a measured number against a threshold", "pass", 31.7, 30.0),
        ):
            gates.append({"name": f"{cand}: {label}", "description": description, "status": status,
                          "value": value, "threshold": threshold, "detail": f"{label}: {status}",
                          "candidate": cand})

    return {
        "schema": "mergeval.report/1",
        "title": "Two merges of two Mistral fine-tunes",
        "generated_at": "2026-12-03T19:00:00+00:00",
        "mergeval_version": "0.1.0",
        "suite": {"name": "leaderboard-mix", "label": "twelve leaderboard benchmarks"},
        "models": [
            {"name": m, "role": r, "fingerprint": f"sha256:{i:016x}", "reference": f"hf:{m}",
             "merge": {"method": "ties", "parents": list(WIDE_PARENTS)} if r == "candidate" else None}
            for i, (m, r) in enumerate(zip(models, roles, strict=True))
        ],
        "benchmarks": [
            {"name": b, "display": d, "metric_key": k, "higher_is_better": True, "kind": kind}
            for b, d, k, kind in _WIDE_BENCHMARKS
        ],
        "scores": scores,
        "averages": averages,
        "comparisons": comparisons,
        "retention": retention,
        "gates": gates,
        "verdict": {"status": "fail", "exit_code": 1, "summary": "FAIL: gates failed for both candidates"},
        "provenance": {
            "lm_eval_version": "0.4.13",
            "average_of": suite,
            "settings": {"backend": None, "device": None, "retention": 0.95},
            "models": {m: {"fingerprint": f"sha256:{i:016x}", "dtype": "bfloat16", "backend": "HFLM",
                           "device": "cuda:0"} for i, m in enumerate(models)},
        },
    }
